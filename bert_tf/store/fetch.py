"""HTTP bytes to a file, resumable and retried: what a 400 MB download on a flaky connection needs.

* The connection drops or stalls: bytes go to `NAME.zip.part` beside the zip;
  the next attempt (or the next run) resumes with an HTTP `Range` request, with
  `If-Range` so a file that changed on the server is fetched whole rather than
  spliced. A server that ignores ranges is downloaded again from the start.
* The server fails: 5xx, 408 and 429 are retried with exponential backoff; other
  4xx end the run at once with the status and URL.

Only the standard library talks HTTP (plus `tqdm` for the bar).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bert_tf.files.output import AtomicFile
from bert_tf.store.messages import DownloadError, human, say
from bert_tf.store.unpack import check_disk_space

_CHUNK = 1 << 20
_MAX_DELAY = 60.0
_RETRY_STATUSES = (408, 429)
_USER_AGENT = "bert_tf-downloader/1 (+python-urllib)"


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable



def part_path(zip_path: Path) -> Path:
    """Where the bytes of `zip_path` collect until it is whole."""
    return zip_path.with_name(zip_path.name + ".part")


def partial_size(zip_path: Path) -> int:
    """How many bytes of `zip_path` have been fetched so far (0 when none are kept)."""
    return _size(part_path(zip_path))


def discard(zip_path: Path) -> None:
    """Removes a fetched zip and the record of where it came from (after unpacking, or when it is bad)."""
    _remove(zip_path, _state_path(zip_path))


def _state_path(zip_path: Path) -> Path:
    # What the .part was fetched from (URL, ETag, total size): a .part from another URL is
    # never resumed, and If-Range makes the server resend everything if its file changed.
    return zip_path.with_name(zip_path.name + ".download.json")


def _open(request: urllib.request.Request, timeout: float):
    """The one place a connection is opened (tests wrap it)."""
    return urllib.request.urlopen(request, timeout=timeout)



def fetch(url: str, zip_path: Path, *, timeout: float, retries: int, backoff: float,
          progress: bool, label: str) -> None:
    """Downloads `url` to `zip_path` through `zip_path.part`, resuming and retrying.

    Raises:
        DownloadError: a refusal (4xx), too many failed attempts in a row, or a full disk.
        KeyboardInterrupt: the `.part` is kept for the next run to resume.
    """
    """Downloads `url` to `zip_path` through `zip_path.part`, resuming and retrying."""
    part, state_path = part_path(zip_path), _state_path(zip_path)
    state = _read_json(state_path)
    if state.get("url") != url:
        _remove(part)
        state = {"url": url}
    elif zip_path.is_file():
        say(progress, f"using {zip_path}, downloaded earlier from {url}")
        return
    resume = f" (resuming after {human(_size(part))})" if _size(part) else ""
    say(progress, f"downloading {url}{resume}")
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
            say(progress, f"{e}; retrying in {delay:.1f} s")
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
                say(progress, f"{host} does not resume downloads; starting from the beginning")
            offset, mode = 0, "wb"
            total = _content_length(response)
        else:
            raise DownloadError(f"{url}: unexpected HTTP {response.status} {response.reason}")
        state.update(url=url, total=total, etag=response.headers.get("ETag"),
                     last_modified=response.headers.get("Last-Modified"))
        _write_json(state_path, state)
        if total is not None:
            # The zip, and about as much again once unpacked (checkpoint floats barely compress).
            check_disk_space(part.parent, (total - offset) + total, "the download")
        expected = None if total is None else total - offset
        received = 0
        with open(part, mode) as out, _progress_bar(total, offset, label, progress) as bar:
            while True:
                try:
                    chunk = response.read1(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Retryable(f"connection to {host} lost after {human(offset + received)} "
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
        raise _Retryable(f"{host} closed the connection after {human(offset + received)} of {human(total)}")


def _give_up_message(url: str, error: _Retryable, attempts: int, part: Path) -> str:
    if error.unreachable:
        return f"{error}: download {url} by hand and run with --from-zip PATH"
    kept = f"; {human(_size(part))} kept in {part}, rerun to resume" if _size(part) else ""
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
    with AtomicFile(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
