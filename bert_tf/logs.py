"""The package's logging conventions (no TensorFlow import here: the CLI reads this at start-up).

Everything logs to the "bert_tf" logger. Info lines are detail, shown by the CLI with
`--verbose`; a few are the user's to see whatever the verbosity (what `precision="auto"`
chose, say), and carry `extra={ANNOUNCE: True}` so the CLI's handler lets them through.
"""

from __future__ import annotations

import logging
import os
import threading

#: The `LogRecord` attribute that marks an info line the CLI shows without `--verbose`.
ANNOUNCE = "bert_tf_announce"

logger = logging.getLogger("bert_tf")


def announce(message: str, *args) -> None:
    """Logs an info line that the CLI shows even without `--verbose`."""
    logger.info(message, *args, extra={ANNOUNCE: True})


class quiet_root_logging:  # noqa: N801 - used as a context manager, reads like one
    """Drops what libraries log on the root logger while they are imported (Beam's "WARNING:root:apitools
    not found ..." on every import without the GCP extras), and keeps `logging.warning` from installing
    a root handler of its own (`basicConfig`) that would print Beam's later lines in another format.
    The user's own root handlers and filters are left as they were."""

    def __enter__(self):
        root = logging.getLogger()
        self._handler = logging.NullHandler() if not root.handlers else None
        if self._handler is not None:
            root.addHandler(self._handler)
        self._filter = lambda record: False
        root.addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        root.removeFilter(self._filter)
        if self._handler is not None:
            root.removeHandler(self._handler)
        return False


#: The environment variable that lets TensorFlow's and gRPC's own C++ logging through (the CLI's `--verbose`).
VERBOSE_ENV = "BERT_TF_VERBOSE_TF"


#: The environment variable and level that keep each C++ library's own log lines off the terminal; each
#: library reads it once, when it loads.
NATIVE_QUIET = {
    # Its errors too: a failing op raises in Python with the same message, and the rest is advice for
    # TensorFlow's developers (see `bert_tf.runtime`).
    "tensorflow": ("TF_CPP_MIN_LOG_LEVEL", "3"),
    # Beam's runners load gRPC; its event engine logs "E... ev_epoll1_linux.cc ... epoll_wait error: Bad file
    # descriptor" when a Ctrl-C stops a pipeline while its poller still runs, under the CLI's one line.
    "grpc": ("GRPC_VERBOSITY", "NONE"),
}


def quiet_native_logs(*libraries: str) -> None:
    """Keeps `libraries`' (keys of `NATIVE_QUIET`) own C++ log lines off the terminal, unless
    `BERT_TF_VERBOSE_TF=1`. Call it before the library loads. `setdefault`: a user's own setting wins.
    Only the libraries bert_tf itself starts: gRPC is quieted where Beam runs (`bert_tf.beam`), so a
    program that imports bert_tf to embed keeps its own gRPC services' logging."""
    if os.environ.get(VERBOSE_ENV) == "1":
        return
    for library in libraries:
        name, level = NATIVE_QUIET[library]
        os.environ.setdefault(name, level)


_said: set[str] = set()
_said_lock = threading.Lock()


def once(level: str, key: str, message: str, *args) -> None:
    """Logs `message` the first time this process sees `key`, and never again.

    For advice that does not change while the process runs (a CPU feature that is missing,
    the default checkpoint that is not downloaded): every model load would otherwise repeat it.

    Args:
        level: "announce" (an info line the CLI always shows, see `announce`) or a `logging` level
            name in lower case ("warning", "info").
        key: what makes two messages the same advice (e.g. the reason in it).
    """
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    (announce if level == "announce" else getattr(logger, level))(message, *args)
