"""Directories that appear complete or not at all.

Checkpoint folders, converted models and SavedModel versions are all built in a
temporary folder beside their target and renamed into place in one step, so a
crash, a full disk or Ctrl-C never leaves a half-written folder where a reader
(the loader, TensorFlow Serving) would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _chmod_like_mkdir(path: Path) -> None:
    """`mkdtemp` creates 0700; give the final folder the mode a plain mkdir would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)


def replace_dir(new: Path, target: Path) -> None:
    """Renames `new` to `target`; an existing `target` is moved aside first and removed after.

    If the final rename fails, the old `target` is put back.
    """
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yields an empty folder beside `target`; on success it becomes `target`, on any error it is removed.

    The temporary name starts with a dot and ends in `.tmp` (`.NAME.XXXX.tmp`), so
    neither the checkpoint resolver nor TensorFlow Serving (which watches integer
    version folders) mistakes it for the real thing.

    Args:
        target: the folder to create.
        replace: allow replacing an existing `target` (otherwise `FileExistsError`).

    Example:
        >>> with staged_directory("checkpoints/my-model") as tmp:
        ...     (tmp / "bert_config.json").write_text("{}")
    """
    target = Path(target)
    if (target.exists() or target.is_symlink()) and not replace:
        raise FileExistsError(f"{target} already exists (pass force=True / --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _chmod_like_mkdir(staging)
        yield staging
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
