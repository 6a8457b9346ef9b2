"""Whether a file or folder may be written at a path, and how to tell the user to force it.

The lowest of `bert_tf.files`' modules (standard library only): the atomic writers
(`atomic`, `output`) and the ownership rules (`owned`) all word their refusals with
`force_hint` and start with `check_target`. `is_own_file` tells a file bert_tf wrote
(which `--force` may replace) from anyone else's.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from pathlib import Path
from typing import Iterator

# How the flag is spelled to the user: the command line sets "--force" while it runs a command.
_force_spelling = contextvars.ContextVar("bert_tf_force_spelling", default="force=True")


def force_hint() -> str:
    """`--force` while the command line runs, `force=True` for Python callers: the one the user can pass."""
    return _force_spelling.get()


@contextlib.contextmanager
def command_line_spelling() -> Iterator[None]:
    """Within the block, messages name the command line's `--force` (see `force_hint`)."""
    token = _force_spelling.set("--force")
    try:
        yield
    finally:
        _force_spelling.reset(token)


def check_target(target: str | os.PathLike, *, replace: bool = False) -> None:
    """Fails early, before any work, when `target` cannot be created: cheap checks only.

    Raises:
        FileExistsError: `target` exists and `replace` is False, or a file is in the way
            of one of its parent folders.
        PermissionError: the nearest existing parent is not writable.
    """
    target = Path(target)
    if (target.exists() or target.is_symlink()) and not replace:
        raise FileExistsError(f"{target} already exists (pass {force_hint()} to replace it)")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a folder; {force_hint()} replaces folders only: "
                              "choose another path or remove the file")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FileExistsError(f"cannot create {target}: {parent} is a file, not a folder; choose another path")
    read_only = hasattr(os, "statvfs") and os.statvfs(parent).f_flag & os.ST_RDONLY
    if read_only or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot create {target}: {parent} is not writable"
                              f"{' (a read-only file system)' if read_only else ''}; "
                              "choose a folder you can write to, or fix its permissions")


#: The `Software` text of every PNG bert_tf saves (`bert_tf.files.figures.save_png`).
PNG_SOFTWARE = "bert_tf"
#: The fields of every line `bert-tf embed` writes as JSON Lines (`bert_tf.cli.writers.JsonLinesWriter`).
EMBED_JSONL_FIELDS = frozenset({"line", "text", "words", "sentence_vector"})
#: Arrays every `.npz` of `bert-tf embed` holds (`bert_tf.cli.writers.NpzWriter`).
EMBED_NPZ_ARRAYS = frozenset({"sentence_vectors.npy", "line.npy", "text.npy", "word_vectors.npy"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_own_file(path: str | os.PathLike) -> bool:
    """Whether the regular file `path` is one bert_tf wrote, and so may be replaced by `--force`.

    Reads at most the PNG's text chunks, the first line of a JSON Lines file, or a zip's
    list of members: cheap whatever the file's size. An empty file holds nothing to lose.
    """
    import zipfile

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if not head:
                return True
            if head == _PNG_SIGNATURE:
                return _png_software(f) == PNG_SOFTWARE
            if head.startswith(b"PK"):
                try:
                    with zipfile.ZipFile(path) as archive:
                        return EMBED_NPZ_ARRAYS <= set(archive.namelist())
                except zipfile.BadZipFile:
                    return False
            first = head + f.readline(1 << 26)  # a line holds one text's vectors: megabytes at most
    except OSError:
        return False
    try:
        record = json.loads(first)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and EMBED_JSONL_FIELDS <= set(record)


def _png_software(f) -> str | None:
    """The start of the `Software` text chunk of the PNG open at `f` (after its signature), or None."""
    import struct

    while True:
        header = f.read(8)
        if len(header) < 8:
            return None
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):  # text chunks that matter come before the image data
            return None
        data = f.read(length)
        f.seek(4, os.SEEK_CUR)  # the chunk's CRC
        if kind == b"tEXt" and data.startswith(b"Software\x00"):
            return data[len(b"Software\x00"):].decode("latin-1").split(" ")[0]
