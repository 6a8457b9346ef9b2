"""Ctrl-C and terminating signals: how a run is told it was interrupted, in one place.

The CLI makes SIGTERM and SIGHUP unwind like Ctrl-C (`install_handlers`), so every writer removes its
temporaries on the way out, and records every such signal and Ctrl-C as it arrives: an interruption that
lands where Python cannot raise it (a callback, whose exceptions Python reports and drops) is still known,
and `check()` raises it at the next batch and before anything is published. One that lands in an object's
`__del__` is raised again as soon as the finaliser has returned.

Code that catches `Exception` to carry on past a failure (the Beam model handler retries a failed batch
one text at a time) asks `interrupt_behind(error)` first: an interruption that reached it wrapped in an
ordinary exception (by TensorFlow or Beam, which at times keep only its message) must end the run, not
be retried as a bad batch. Nor is a batch whose calls Python's exit stopped (`Exiting`): a Beam worker process
gets the terminal's Ctrl-C too, its main thread ends, and the batch its worker thread runs fails for that alone.
"""

from __future__ import annotations

import os
import signal
import threading

#: Signals that end a run the way Ctrl-C does (temporaries removed), with the shell's exit status 128 + N.
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every writer removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_finalizer(frame) -> bool:
    """Whether `frame` runs inside an object's `__del__` (a garbage collection), where Python would report
    an exception with its traceback and drop it."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _postponed(signum: int, frame) -> bool:
    """True when the signal landed in a finaliser (`_in_finalizer`), where raising it would drop it: it is
    then sent to this process again in a few milliseconds, from another thread (sent from its own handler,
    it would run again at once, still inside the finaliser), and raised once the finaliser has returned."""
    if not _in_finalizer(frame):
        return False
    timer = threading.Timer(0.005, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()
    return True


def _on_terminating_signal(signum, frame):
    if _postponed(signum, frame):
        return
    _received.append(signum)
    # A second signal must not interrupt the clean-up the first one started.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def _on_ctrl_c(signum, frame):
    if _postponed(signum, frame):
        return
    _received.append(signum)
    raise KeyboardInterrupt


class Exiting(KeyboardInterrupt):
    """Python is exiting, so its thread pools take no more work (a Beam worker process whose main thread a
    Ctrl-C ended, while a worker thread still runs a batch): unwinds like Ctrl-C, not as that batch's error."""


def install_handlers() -> dict:
    """Makes SIGTERM/SIGHUP unwind like Ctrl-C and records them and Ctrl-C; returns the previous handlers.
    Signals already ignored (`nohup`) stay ignored; off the main thread (an embedding application)
    nothing is changed."""
    previous = {}
    for signum, default, handler in ([(signum, signal.SIG_DFL, _on_terminating_signal) for signum in TERMINATING]
                                     + [(signal.SIGINT, signal.default_int_handler, _on_ctrl_c)]):
        try:
            if signal.getsignal(signum) is default:
                previous[signum] = signal.signal(signum, handler)
        except ValueError:
            break
    return previous


def check() -> None:
    """Raises the interruption this run received, if any (KeyboardInterrupt, or `Terminated`), even where
    the signal's own exception was dropped."""
    if _received:
        raise _exception(_received[0])


def _exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def forget() -> None:
    """Forgets the signals received so far (a new run in the same process)."""
    del _received[:]


def received_signal() -> int | None:
    """The first signal that interrupted this run (`install_handlers`: SIGINT, SIGTERM or SIGHUP), or None."""
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
        return _exception(_received[0])
    return None
