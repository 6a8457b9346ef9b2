"""A real HTTP server on 127.0.0.1 for tests, serving bytes from memory, with scripted faults.

    with LoopbackServer() as server:
        url = server.serve("/model.zip", data)
        server.script("/model.zip", Behaviour(status=500), Behaviour(drop_after=1000))
        ...                                  # then the default Behaviour() for later requests
        assert server.requests[-1].range == "bytes=1000-"

It speaks enough HTTP/1.0 for a downloader: `Range: bytes=N-` (206 with
`Content-Range`, 416 past the end), `If-Range` against a per-file ETag,
`Content-Length` always. Every request is recorded with the body bytes it was sent.

Bounded by construction: it binds 127.0.0.1 on a free port only, answers at most
`max_requests` requests (then 503), stalls for at most `stall_seconds` and ends
them at once when closed; `close()` (or leaving the `with`) stops it and joins its thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import threading
from collections import deque


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """How to answer one request.

    Attributes:
        status: answer with this error status (and a short body) instead of the file.
        honour_range: when False, ignore `Range` and send the whole file with 200.
        drop_after: send this many body bytes, then close the connection.
        stall_after: send this many body bytes, then keep the connection open and send nothing.
        stall_before_headers: accept the request and never answer.
    """

    status: int | None = None
    honour_range: bool = True
    drop_after: int | None = None
    stall_after: int | None = None
    stall_before_headers: bool = False


@dataclasses.dataclass
class Request:
    """One request as the server saw it."""

    path: str
    range: str | None
    if_range: str | None
    status: int | None = None
    sent: int = 0  # body bytes handed to the socket
    # Set once the handler has written all it will write: the client can finish reading
    # before the server thread has counted the last piece.
    written: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False, compare=False)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with a free port; see the module docstring."""

    def __init__(self, *, max_requests: int = 50, stall_seconds: float = 10.0):
        self.max_requests = max_requests
        self.stall_seconds = stall_seconds
        self.default = Behaviour()
        self.requests: list[Request] = []
        self._files: dict[str, bytes] = {}
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loopback-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, data: bytes) -> str:
        """Serves `data` at `path`; returns its URL."""
        with self._lock:
            self._files[path] = bytes(data)
        return self.url(path)

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self._files[path]).hexdigest()[:16] + '"'

    def script(self, path: str, *behaviours: Behaviour) -> None:
        """The next requests for `path` get these behaviours in order, then `self.default`."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(behaviours)

    @property
    def bytes_served(self) -> int:
        """Body bytes sent over all requests, once every handler has finished writing."""
        with self._lock:
            requests = list(self.requests)
        for r in requests:
            if not r.written.wait(timeout=10):
                raise TimeoutError(f"the handler of {r} is still writing")
        return sum(r.sent for r in requests)

    def close(self) -> None:
        self._closed.set()  # ends any stall at once
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "LoopbackServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _begin(self, path: str, headers) -> tuple[Request, Behaviour | None, bytes | None]:
        """Records a request; the behaviour is None once `max_requests` is exceeded."""
        with self._lock:
            record = Request(path, headers.get("Range"), headers.get("If-Range"))
            self.requests.append(record)
            if len(self.requests) > self.max_requests:
                return record, None, None
            script = self._scripts.get(path)
            behaviour = script.popleft() if script else self.default
            return record, behaviour, self._files.get(path)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-body is what these tests do on purpose


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection, closed after the response
    server: _HTTPServer

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        record, behaviour, data = owner._begin(self.path, self.headers)
        try:
            self._respond(owner, record, behaviour, data)
        finally:
            record.written.set()

    def _respond(self, owner, record, behaviour, data):
        if behaviour is None:
            return self._error(record, 503, "request limit of the test server reached")
        if behaviour.stall_before_headers:
            record.written.set()  # nothing will be written
            owner._closed.wait(owner.stall_seconds)
            return
        if data is None:
            return self._error(record, 404, "Not Found")
        if behaviour.status is not None:
            return self._error(record, behaviour.status, "scripted failure")

        start = _range_start(record.range) if behaviour.honour_range else None
        if start is not None and record.if_range is not None and record.if_range != owner.etag(self.path):
            start = None  # the client's copy is of another version: send it all
        if start is not None and start >= len(data):
            record.status = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start or 0:]
        record.status = 206 if start is not None else 200
        self.send_response(record.status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", owner.etag(self.path))
        if behaviour.honour_range:
            self.send_header("Accept-Ranges", "bytes")
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()

        limit = len(body)
        for cut in (behaviour.drop_after, behaviour.stall_after):
            if cut is not None:
                limit = min(limit, cut)
        try:
            for i in range(0, limit, 8192):
                piece = body[i:min(i + 8192, limit)]
                self.wfile.write(piece)
                record.sent += len(piece)
            self.wfile.flush()
        except OSError:
            return
        record.written.set()
        if behaviour.stall_after is not None:
            owner._closed.wait(owner.stall_seconds)

    def _error(self, record: Request, status: int, message: str) -> None:
        record.status = status
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _range_start(value: str | None) -> int | None:
    """N from `bytes=N-` (the only form a resuming downloader sends)."""
    match = re.match(r"^bytes=(\d+)-$", (value or "").strip())
    return int(match.group(1)) if match else None
