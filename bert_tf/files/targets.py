"""Whether a file or folder may be written at a path, and how to tell the user to force it.

The lowest of `bert_tf.files`' modules (standard library only): the atomic writers
(`atomic`, `output`) and the ownership rules (`owned`) all word their refusals with
`force_hint` and start with `check_target`.
"""

from __future__ import annotations

import contextlib
import contextvars
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
