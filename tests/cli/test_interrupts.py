"""`bert_tf.interrupts`: a signal Python would drop where it lands is raised where it can be, and an
interrupted run publishes nothing."""

import os
import signal
import time

import pytest

from bert_tf import interrupts
from bert_tf.files.atomic import staged_directory
from bert_tf.files.output import AtomicFile


@pytest.fixture
def handlers():
    """The CLI's handlers, installed over Python's defaults (whatever an earlier test or library left)."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    assert set(interrupts.install_handlers()) >= {signal.SIGTERM, signal.SIGINT}
    interrupts.forget()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    interrupts.forget()


def _busy():
    total = 0
    for i in range(20_000):  # the signal's handler runs between these steps
        total += i
    return total


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_that_lands_in_a_finalizer_is_raised_once_the_finalizer_has_returned(handlers, capfd, signum):
    """Raised inside `__del__` (TensorFlow's objects have them), the exception would be printed with its
    traceback ("Exception ignored in ...") and dropped; it is raised right after the finaliser instead."""
    finalized = []

    class Collected:
        def __del__(self):
            os.kill(os.getpid(), signum)
            _busy()
            finalized.append(True)

    with pytest.raises(KeyboardInterrupt) as raised:
        Collected()  # collected at once, its finaliser run in this frame
        time.sleep(5)  # the signal comes back within milliseconds
    assert finalized == [True]
    assert isinstance(raised.value, interrupts.Terminated) == (signum == signal.SIGTERM)
    assert interrupts.received_signal() == signum
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_interrupted_run_publishes_nothing(handlers, tmp_path, kind):
    """An interruption that Python dropped where it landed (`interrupts.check`) still stops a file or a folder
    (an index, a checkpoint) from replacing its target: the old one stays, the temporaries go."""
    target = tmp_path / "vectors.jsonl"
    target.write_text("an earlier run\n")
    with pytest.raises(interrupts.Terminated):
        if kind == "file":
            with AtomicFile(target, "w", encoding="utf-8") as f:
                f.write("{}\n")
                _dropped_sigterm()
        else:
            with staged_directory(tmp_path / "index") as staging:
                (staging / "words.npy").write_bytes(b"")
                _dropped_sigterm()
    assert target.read_text() == "an earlier run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.jsonl"]


def _dropped_sigterm():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        _busy()
    except interrupts.Terminated:
        pass  # caught and dropped, as a callback's exception is
