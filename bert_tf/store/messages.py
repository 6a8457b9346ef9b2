"""What the store tells the user: its two exceptions, status lines on stderr, and sizes."""

from __future__ import annotations

import sys

from bert_tf.errors import UserError


class DownloadError(UserError):
    """A download, verification or unpacking that failed; the message is the one-line reason and what to do."""


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a download; the message says what was kept and how to resume.

    A `KeyboardInterrupt`, so `except Exception` does not swallow it.
    """


def human(n: int | None) -> str:
    """Decimal units, as browsers and `ls -h --si` show them: 407.7 MB.

    Example:
        >>> human(407_727_000)
        '407.7 MB'
    """
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


def say(progress: bool, message: str) -> None:
    """One status line on stderr, when `progress` is on."""
    if progress:
        print(message, file=sys.stderr, flush=True)
