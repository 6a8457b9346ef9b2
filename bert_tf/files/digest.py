"""The SHA-256 of a file, read in blocks: one helper for the store (a checkpoint zip) and the index (its files)."""

from __future__ import annotations

import hashlib
import os

_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of the file at `path`, read 1 MiB at a time (any size in bounded memory).

    Example:
        >>> sha256_file(os.devnull)  # the SHA-256 of no bytes
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
