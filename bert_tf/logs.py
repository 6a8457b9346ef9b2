"""The package's logging conventions (no TensorFlow import here: the CLI reads this at start-up).

Everything logs to the "bert_tf" logger. Info lines are detail, shown by the CLI with
`--verbose`; a few are the user's to see whatever the verbosity (what `precision="auto"`
chose, say), and carry `extra={ANNOUNCE: True}` so the CLI's handler lets them through.
"""

from __future__ import annotations

import logging

#: The `LogRecord` attribute that marks an info line the CLI shows without `--verbose`.
ANNOUNCE = "bert_tf_announce"

logger = logging.getLogger("bert_tf")


def announce(message: str, *args) -> None:
    """Logs an info line that the CLI shows even without `--verbose`."""
    logger.info(message, *args, extra={ANNOUNCE: True})
