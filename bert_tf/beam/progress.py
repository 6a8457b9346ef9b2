"""How far a `beam-embed` run on this machine has got: lines read, embedded, dead letters, rate.

Beam's local runners report their metrics only once the pipeline has finished, so the
DoFns that count Beam's metrics also call `note`. The launcher turns the counting on for
its run (`counting`, only when it will show it): a note made in the launcher's own process
(the in-process DirectRunner) adds to a tally; one made in a worker process the launcher
started (`--direct_running_mode multi_processing`, which inherits the switch and our
stderr) is a `bert-tf-progress:` line on stderr, which the launcher's stderr filter hands
to `read_line`. A remote runner's workers never see the switch, and a note there costs one
environment lookup.
"""

from __future__ import annotations

import contextlib
import os
import threading

#: The environment variable that turns counting on; its value is the launcher's process id.
ENV = "BERT_TF_BEAM_PROGRESS"
KINDS = ("read", "embedded", "dead_letters")
LINE_PREFIX = b"bert-tf-progress: "

_lock = threading.Lock()
_tally = dict.fromkeys(KINDS, 0)


def note(kind: str, n: int = 1) -> None:
    """Counts `n` of `kind` ("read", "embedded", "dead_letters") when the launcher asked for progress."""
    owner = os.environ.get(ENV)
    if not owner:
        return
    if owner == str(os.getpid()):
        with _lock:
            _tally[kind] += n
    else:  # a worker process: the launcher's stderr filter adds it up
        with contextlib.suppress(OSError):
            os.write(2, LINE_PREFIX + f"{kind} {n}\n".encode("ascii"))


def read_line(line: bytes) -> bool:
    """Adds a worker's `bert-tf-progress:` line to the tally; False for any other line."""
    if not line.startswith(LINE_PREFIX):
        return False
    kind, _, n = line[len(LINE_PREFIX):].decode("ascii", "replace").partition(" ")
    with contextlib.suppress(ValueError):
        if kind in _tally:
            with _lock:
                _tally[kind] += int(n)
    return True


def snapshot() -> dict[str, int]:
    """The counts so far."""
    with _lock:
        return dict(_tally)


@contextlib.contextmanager
def counting():
    """Counts the notes of this process and the workers it starts while the block runs (from zero)."""
    with _lock:
        _tally.update(dict.fromkeys(KINDS, 0))
    before = os.environ.get(ENV)
    os.environ[ENV] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def format_progress(counts: dict[str, int], seconds: float) -> str:
    """One line of progress: `1,234 lines read, 1,200 embedded, 3 dead letters, 41.2 texts/s`."""
    done = counts["embedded"] + counts["dead_letters"]
    rate = done / seconds if seconds > 0 else 0.0
    return (f"{counts['read']:,} lines read, {counts['embedded']:,} embedded, "
            f"{counts['dead_letters']:,} dead letters, {rate:,.1f} texts/s")
