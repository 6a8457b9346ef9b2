"""Ctrl-C and terminating signals: how a run is told it was interrupted, in one place.

The CLI makes SIGTERM and SIGHUP unwind like Ctrl-C (`install_handlers`), so every writer removes its
temporaries on the way out. Code that catches `Exception` to carry on past a failure (the Beam model
handler retries a failed batch one text at a time) asks `interrupt_behind(error)` first: an interruption
that reached it wrapped in an ordinary exception (by TensorFlow or Beam, which at times keep only its
message) must end the run, not be retried as a bad batch.
"""

from __future__ import annotations

import signal

#: Signals that end a run the way Ctrl-C does (temporaries removed), with the shell's exit status 128 + N.
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every writer removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_terminating_signal(signum, frame):
    _received.append(signum)
    # A second signal must not interrupt the clean-up the first one started.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def install_handlers() -> dict:
    """Makes SIGTERM/SIGHUP unwind like Ctrl-C; returns the previous handlers. Signals already ignored
    (`nohup`) stay ignored; off the main thread (an embedding application) nothing is changed."""
    previous = {}
    for signum in TERMINATING:
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, _on_terminating_signal)
        except ValueError:
            break
    return previous


def forget() -> None:
    """Forgets the signals received so far (a new run in the same process)."""
    del _received[:]


def received_signal() -> int | None:
    """The first terminating signal this run received (`install_handlers`), or None."""
    return _received[0] if _received else None


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or terminating signal `error` is, or was raised while handling (its cause or context),
    or a terminating signal this run received; None when it is an ordinary failure."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        if str(error).startswith(("KeyboardInterrupt", "Terminated")):  # Beam at times keeps only the message
            return KeyboardInterrupt()
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    if _received:
        return Terminated(_received[0])
    return None
