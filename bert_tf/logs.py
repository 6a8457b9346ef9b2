"""The package's logging conventions (no TensorFlow import here: the CLI reads this at start-up).

Everything logs to the "bert_tf" logger. Info lines are detail, shown by the CLI with
`--verbose`; a few are the user's to see whatever the verbosity (what `precision="auto"`
chose, say), and carry `extra={ANNOUNCE: True}` so the CLI's handler lets them through.
"""

from __future__ import annotations

import logging
import threading

#: The `LogRecord` attribute that marks an info line the CLI shows without `--verbose`.
ANNOUNCE = "bert_tf_announce"

logger = logging.getLogger("bert_tf")


def announce(message: str, *args) -> None:
    """Logs an info line that the CLI shows even without `--verbose`."""
    logger.info(message, *args, extra={ANNOUNCE: True})


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
