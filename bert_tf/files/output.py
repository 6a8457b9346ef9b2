"""Output files that appear complete or not at all, and the checks made before one is written.

Every file the command line writes (JSON Lines, `.npz`, PNG) is built in a
temporary beside its target and renamed over it only when complete, so a
failed, interrupted or killed run leaves an existing file exactly as it was.

Temporaries carry their owner in their name,
`.NAME.bert-tf-PID-HOST.XXXXXXXX.tmp` (a file) or `...npz-parts` (a folder), so
a later run can tell debris from a process that was killed (SIGKILL, a power
cut) from the work of one still running, and remove only the former
(`remove_stale_temps`).
"""

from __future__ import annotations

import errno as errno_codes
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from typing import IO, Iterable

from bert_tf import interrupts
from bert_tf.errors import InvalidValue, UserError

logger = logging.getLogger(__name__)

#: Suffix of a temporary file and of the folder holding an `.npz`'s parts.
FILE_SUFFIX = ".tmp"
DIR_SUFFIX = ".npz-parts"

# The base name is shortened in temporaries so that base + owner tag stays under NAME_MAX (255).
_MAX_BASE = 150
_OWNED = re.compile(r"\.bert-tf-(?P<pid>\d+)-(?P<host>[A-Za-z0-9]*)\.[A-Za-z0-9_]+"
                    rf"(?:{re.escape(FILE_SUFFIX)}|{re.escape(DIR_SUFFIX)})$")


class OutputError(UserError, OSError):
    """Writing one of the user's outputs failed; `str()` is one line naming the user's path and why.

    An `OSError` (with `errno` and `filename`) so callers can still tell a full disk from a
    read-only one; the message never names the internal temporary the error came from.
    """

    def __init__(self, path: str | os.PathLike, reason: str, errno: int | None = None):
        super().__init__(errno, reason, os.fspath(path))

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"

    @classmethod
    def from_os_error(cls, path: str | os.PathLike, error: OSError) -> "OutputError":
        if isinstance(error, OutputError):
            return error
        return cls(path, error.strerror or str(error), error.errno)


class output_errors:  # noqa: N801 - used as a context manager, reads like one
    """Turns any `OSError` inside the block into an `OutputError` naming `path`.

    `BrokenPipeError` passes through unchanged: a reader that stopped early
    (`bert-tf embed ... | head`) is not an error.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is not None and isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
            raise OutputError.from_os_error(self.path, error) from error
        return False


# ---------------------------------------------------------------------- owned temporaries


def _host_tag() -> str:
    # Pids are only meaningful on the host (and pid namespace) that issued them: a temporary
    # from another machine sharing the folder is never judged by our process table.
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def owner_tag(pid: int | None = None) -> str:
    """`bert-tf-PID-HOST`, the mark that names the process owning a temporary."""
    return f"bert-tf-{os.getpid() if pid is None else int(pid)}-{_host_tag()}"


def temp_prefix(target: str | os.PathLike, pid: int | None = None) -> str:
    """The start of a temporary's name for `target`: `.NAME.bert-tf-PID-HOST.` (for `mkstemp`/`mkdtemp`)."""
    base = os.path.basename(os.fspath(target))[:_MAX_BASE]
    return f".{base}.{owner_tag(pid)}."


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists here (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # unknown: keep its files
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[str]:
    """Removes this tool's temporaries in `directory` whose owning process is gone; returns their paths.

    Only names of the form this module creates are considered, only those made on
    this host, and never one whose process is alive (a concurrent run's work).
    """
    directory = os.fspath(directory) or "."
    host = _host_tag()
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _OWNED.search(name) if name.startswith(".") else None
        if match is None or match["host"] != host or pid_alive(int(match["pid"])):
            continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue  # another run cleaned it first
        except OSError as e:
            logger.warning("could not remove %s, left by process %s that is gone: %s", path, match["pid"],
                           e.strerror)
            continue
        logger.info("removed %s, left by process %s that is gone", path, match["pid"])
        removed.append(path)
    return removed


def make_temp_file(target: str | os.PathLike) -> tuple[int, str]:
    """A new owned temporary file beside `target` (stale ones there are removed first): `(fd, path)`."""
    directory = os.path.dirname(os.path.abspath(os.fspath(target)))
    remove_stale_temps(directory)
    return tempfile.mkstemp(prefix=temp_prefix(target), suffix=FILE_SUFFIX, dir=directory)


def make_temp_dir(target: str | os.PathLike) -> str:
    """A new owned temporary folder beside `target` (stale ones there are removed first)."""
    directory = os.path.dirname(os.path.abspath(os.fspath(target)))
    remove_stale_temps(directory)
    return tempfile.mkdtemp(prefix=temp_prefix(target), suffix=DIR_SUFFIX, dir=directory)


# ---------------------------------------------------------------------- checks before any work


def is_regular_or_missing(path: str | os.PathLike) -> bool:
    """True for a regular file or nothing at all: a target that may be replaced by a rename.

    False for devices, pipes and sockets (`/dev/null`, `/dev/stdout`, a FIFO): those are
    written in place, since renaming over them would destroy them.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_output(path: str | os.PathLike, *, force: bool, inputs: Iterable[tuple[str, os.stat_result]] = (),
                 option: str = "--output") -> None:
    """Refuses an output that would destroy something, before any work is done.

    Args:
        path: the output the user gave.
        force: whether an existing regular file may be replaced: only one bert_tf wrote
            (`bert_tf.files.targets.is_own_file`), or an empty one.
        inputs: `(name, os.stat_result)` of each file being read; the output may not be one of
            them (compared by device and inode, so symbolic and hard links are seen through).
        option: the flag's name, for the messages.

    Raises:
        ValueError: the output is one of the inputs (even with `force`).
        IsADirectoryError: the output is a folder.
        FileExistsError: the output exists and `force` is false (says to pass --force, or
            force=True outside the command line), or it is not bert_tf's (whatever `force`).
        OutputError: the output's folder does not exist or is not a folder.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputError.from_os_error(path, e) from None
    if st is not None:
        for name, input_stat in inputs:
            if stat.S_ISREG(input_stat.st_mode) and _same_file(st, input_stat):
                raise InvalidValue(f"{option} {path} is the input file {name}; it would be overwritten while "
                                   "being read: write the output to another file")
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{option} {path} is a folder; give a file name")
        if stat.S_ISREG(st.st_mode) and not force:
            from bert_tf.files.targets import force_hint

            raise FileExistsError(f"{path} already exists; pass {force_hint()} to replace it")
        if stat.S_ISREG(st.st_mode):
            from bert_tf.files.targets import force_hint, is_own_file

            if not is_own_file(path):
                raise FileExistsError(f"{option} {path} exists and is not a file bert_tf wrote; {force_hint()} "
                                      "replaces only bert_tf's own outputs: choose another name, or move it away")
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        raise OutputError(path, f"the folder {os.path.dirname(path) or parent} does not exist",
                          errno_codes.ENOENT)
    if not os.path.isdir(parent):
        raise OutputError(path, f"{os.path.dirname(path) or parent} is not a folder", errno_codes.ENOTDIR)


# ---------------------------------------------------------------------- the atomic file


def _final_mode(final: str) -> int:
    try:
        return stat.S_IMODE(os.stat(final).st_mode)  # replacing a file keeps its permissions
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask  # what open() would have created; mkstemp makes 0600


def commit(temp: str, final: str) -> None:
    """Gives `temp` the permissions `final` would have and renames it over `final`; first raises an
    interruption Python dropped where it landed (`interrupts.check`): an interrupted run publishes nothing."""
    interrupts.check()
    os.chmod(temp, _final_mode(final))
    os.replace(temp, final)


class AtomicFile:
    """A file that replaces `path` only when `commit()` is called; `abort()` leaves `path` untouched.

    Symbolic links are followed (the file they point at is replaced, the link stays). A target
    that is not a regular file (`/dev/null`, a FIFO) is written in place. Every `OSError` is
    raised as an `OutputError` naming `path`.

    Example:
        >>> with AtomicFile("vectors.jsonl", "w", encoding="utf-8") as f:
        ...     f.write("{}\\n")
    """

    def __init__(self, path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None):
        self.path = os.fspath(path)
        self.final = os.path.realpath(self.path)
        self.temp: str | None = None
        with output_errors(self.path):
            if is_regular_or_missing(self.final):
                fd, self.temp = make_temp_file(self.final)
                try:
                    self.file: IO = os.fdopen(fd, mode, encoding=encoding)
                except BaseException:
                    os.close(fd)
                    os.unlink(self.temp)
                    raise
            else:
                self.file = open(self.final, mode, encoding=encoding)

    def commit(self) -> None:
        """Flushes the data to disk and puts the file in place."""
        try:
            with output_errors(self.path):
                self.file.flush()
                if self.temp is not None:
                    os.fsync(self.file.fileno())
                self.file.close()
                if self.temp is not None:
                    commit(self.temp, self.final)
                    self.temp = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discards what was written; an existing `path` stays as it was."""
        try:
            self.file.close()
        except OSError:
            pass  # the buffered data is being discarded anyway
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None

    def __enter__(self) -> IO:
        return self.file

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            self.commit()
        else:
            self.abort()
        return False
