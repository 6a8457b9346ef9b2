"""Directories that appear complete or not at all, one writer at a time, and no debris.

Checkpoint folders, converted models and SavedModel versions are all built in a
temporary folder beside their target and renamed into place in one step, so a
crash, a full disk or Ctrl-C never leaves a half-written folder where a reader
(the loader, TensorFlow Serving) would take it for a finished one.

Every writer of a target holds an exclusive `flock` on `.NAME.lock` beside it
(`target_lock`) for as long as it works on it. That does two things:

* Two processes writing the same target (two downloads of one checkpoint) take
  turns instead of renaming each other's files away; the second one finds the
  finished target.
* A `.NAME.*.tmp` staging folder (or `.NAME.*.old` from a replace) found by a
  process that holds the lock belongs to no live writer: the kernel releases a
  `flock` when its owner dies, even by SIGKILL, and unlike a recorded pid it
  cannot be fooled by pid reuse. Such leftovers are removed before the next
  build of the same target.

The lock file is removed when the lock is released, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Iterable, Iterator

from bert_tf import interrupts
from bert_tf.files.targets import check_target

try:
    import fcntl
except ImportError:  # Windows: no flock, so writers are not serialised and leftovers are kept
    fcntl = None

logger = logging.getLogger("bert_tf")

#: `.NAME.<8 characters>.tmp|.old`: ours and `tempfile.mkdtemp`'s (earlier versions) random tokens.
_LEFTOVER = r"^\.{name}\.[a-z0-9_]{{8}}\.(tmp|old)$"

_held = threading.local()  # lock paths this thread holds, for re-entry


def _chmod_like_mkdir(path: Path) -> None:
    """Our staging folders are created 0700; give the final folder the mode a plain mkdir would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)


def _make_hidden_dir(parent: Path, name: str, suffix: str) -> Path:
    """Creates `parent/.NAME.<token>.SUFFIX` (mode 0700) and returns it."""
    while True:
        path = parent / f".{name}.{secrets.token_hex(4)}.{suffix}"
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def not_writable(error: OSError, path: str | os.PathLike, what: str = "write there",
                 advice: str | None = None) -> OSError:
    """A one-line version of `error` for a place the user chose: names it and says what to do.

    Permission problems (EACCES, EPERM, a read-only file system) become `PermissionError`,
    a file where a folder is needed `FileExistsError`; the rest keep their type.

    Args:
        error: the error as the OS raised it.
        path: the user's path it concerns.
        what: the action, e.g. "create exports/bert" (the message starts "cannot ...").
        advice: what to do, replacing the default advice for the error.
    """
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        cls, default = PermissionError, "choose a folder you can write to, or fix its permissions"
    elif error.errno in (errno.ENOTDIR, errno.EEXIST):
        cls, default = FileExistsError, "a file is in the way of a folder there; choose another path"
    elif error.errno == errno.ENOSPC:
        cls, default = OSError, "free some space or choose another folder"
    else:
        cls, default = (type(error) if isinstance(error, OSError) else OSError), "choose another folder"
    where = f"{error.filename}: " if error.filename is not None and str(error.filename) != str(path) else ""
    out = cls(f"cannot {what} ({where}{reason}); {advice or default}")
    out.errno = error.errno
    return out


@contextlib.contextmanager
def target_lock(target: str | os.PathLike, *, on_wait=None) -> Iterator[None]:
    """Holds the exclusive lock for writing `target` (`.NAME.lock` beside it); re-entrant in one thread.

    Blocks while another process or thread holds it. The parent folder is created
    if needed.

    Args:
        target: the file or folder about to be written.
        on_wait: called once, with no arguments, if the lock is busy (to say why we wait).

    Raises:
        PermissionError, FileExistsError, OSError: the parent cannot be created or
            written (one-line messages naming it).
    """
    target = Path(target)
    lock_path = target.parent / f".{target.name}.lock"
    key = os.path.abspath(lock_path)
    held = getattr(_held, "paths", None)
    if held is None:
        held = _held.paths = set()
    if key in held:
        yield
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise not_writable(e, target.parent, f"create {target.parent}") from None
    fd = _acquire(lock_path, on_wait)
    held.add(key)
    try:
        yield
    finally:
        held.discard(key)
        _release(fd, lock_path)


def _release(fd: int, lock_path: Path) -> None:
    if fcntl is None:  # Windows cannot remove an open file
        os.close(fd)
    # Unlinked while still held: a waiter that then gets the lock on the old inode
    # sees the path gone (or another inode) and starts again, so two never both hold it.
    with contextlib.suppress(OSError):
        os.unlink(lock_path)
    if fcntl is not None:
        os.close(fd)


def _acquire(lock_path: Path, on_wait) -> int:
    if fcntl is None:
        try:
            return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise not_writable(e, lock_path.parent, f"write in {lock_path.parent}") from None
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError as e:
            try:  # another user's lock file: flock works on a read-only descriptor too
                fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                raise not_writable(e, lock_path.parent, f"write in {lock_path.parent}") from None
        except OSError as e:
            raise not_writable(e, lock_path.parent, f"write in {lock_path.parent}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)  # its holder removed it as it let go: lock the file that is there now


def remove_leftovers(target: str | os.PathLike) -> list[Path]:
    """Removes `.NAME.*.tmp` / `.NAME.*.old` folders beside `target` left by writers that died.

    Call it only while holding `target_lock(target)`: then no live writer owns them.

    Returns:
        The folders removed.
    """
    target = Path(target)
    pattern = re.compile(_LEFTOVER.format(name=re.escape(target.name)))
    removed = []
    if fcntl is None:  # without the lock we cannot tell a dead writer's folder from a live one's
        return removed
    try:
        entries = sorted(os.scandir(target.parent), key=lambda e: e.name)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        if match.group(1) == "old" and not target.exists() and not target.is_symlink():
            # The writer died between moving the old target aside and renaming the new one
            # into place: the old one is still whole, so it goes back.
            os.rename(entry.path, target)
            logger.warning("restored %s from %s, left by an interrupted replace", target, entry.name)
        elif entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        elif match.group(1) == "old":  # a link that was the old target
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d unfinished temporary folder(s) beside %s left by an earlier run: %s",
                    len(removed), target, ", ".join(p.name for p in removed))
    return removed


def replace_dir(new: Path, target: Path) -> None:
    """Renames `new` to `target`; an existing `target` is moved aside first and removed after.

    If the final rename fails, the old `target` is put back. First raises an interruption Python dropped
    where it landed (`interrupts.check`), as `output.commit` does for a file: an interrupted run publishes nothing.
    """
    interrupts.check()
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return
    old = _make_hidden_dir(target.parent, target.name, "old")
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
def staged_directory(target: str | os.PathLike, *, replace: bool = False, owner: str | None = None,
                     inputs: Iterable[tuple[str, str | os.PathLike]] = ()) -> Iterator[Path]:
    """Yields an empty folder beside `target`; on success it becomes `target`, on any error it is removed.

    The temporary name starts with a dot and ends in `.tmp` (`.NAME.XXXXXXXX.tmp`), so
    neither the checkpoint resolver nor TensorFlow Serving (which watches integer
    version folders) mistakes it for the real thing. The target's lock is held
    throughout (`target_lock`), and leftovers of earlier runs that died are removed
    first (`remove_leftovers`).

    Args:
        target: the folder to create.
        replace: allow replacing an existing `target` folder (otherwise `FileExistsError`).
        owner: the kind of bert_tf folder written (`bert_tf.files.owned.INDEX`, ...): then an
            existing `target` is replaced only if it is empty, or with `replace` one of ours of
            that kind (`bert_tf.files.owned.check_replaceable`, which also refuses the cwd).
        inputs: with `owner`, `(description, path)` of what is read: `target` may not hold them.

    Raises:
        FileExistsError: `target` exists and `replace` is False, or it is a file; with `owner`,
            a folder that `check_replaceable` refuses.
        ValueError: with `owner`, `target` is the current folder or holds it or an input.
        PermissionError, OSError: its parent cannot be written (the message names it).

    Example:
        >>> with staged_directory("checkpoints/my-model") as tmp:
        ...     (tmp / "bert_config.json").write_text("{}")
    """
    target, inputs = Path(target), tuple(inputs)
    if owner is None:
        check = functools.partial(check_target, target, replace=replace)
    else:
        from bert_tf.files.owned import check_replaceable

        check = functools.partial(check_replaceable, target, owner, force=replace, inputs=inputs)
    check()
    with target_lock(target):
        remove_leftovers(target)
        check()  # again: another writer may have finished meanwhile
        try:
            staging = _make_hidden_dir(target.parent, target.name, "tmp")
        except OSError as e:
            raise not_writable(e, target.parent, f"write in {target.parent}") from None
        try:
            _chmod_like_mkdir(staging)
            yield staging
            replace_dir(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
