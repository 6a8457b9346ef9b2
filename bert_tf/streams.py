"""Streams: how many model calls run at once, and TensorFlow's thread pools sized for them.

OpenVINO's THROUGHPUT hint splits the cores into streams that each run one inference;
`BertEmbedder(streams=N)` does the same with its batch plan: N Python threads take consecutive
model calls and run the same traced graph at once (TensorFlow releases the GIL while it runs),
and the head reduces their outputs in plan order, so the vectors are those of one stream.

TensorFlow's intra-op pool (the threads one op may use) is per process and fixed when TensorFlow
starts. N streams should each get `cores / N` of them, so the stream count a process is meant for
is read from `BERT_TF_STREAMS` by `bert_tf.runtime` before TensorFlow is imported (the CLI's
`--streams` sets it); `streams="auto"` is that count. Which count runs fastest is measured, not
assumed (`python -m bench.streams`, figures in bench/README.md): `DEFAULT_STREAMS`.

Importable without TensorFlow (the CLI checks `--streams` before anything starts it).
"""

from __future__ import annotations

import os
from typing import Mapping

from bert_tf.errors import InvalidValue

#: The environment variable that says how many streams a process runs (read once, when TensorFlow starts).
ENV = "BERT_TF_STREAMS"
#: What `streams="auto"` and an unset `BERT_TF_STREAMS` mean: one model call at a time, with every core.
#: On the 2-core machine measured (bench/README.md), two streams of one thread lost in 14 of 15 pairs.
DEFAULT_STREAMS = 1


def check_streams(value, name: str = "streams") -> int | str:
    """"auto" or a positive integer (an int, or its decimal string as the environment spells it).

    Raises:
        InvalidValue: anything else, in one line that says what is allowed.
    """
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise InvalidValue(f"{name} must be 'auto' or a positive integer (model calls run at once); got {value!r}")


def cores() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_streams(environ: Mapping[str, str] | None = None) -> int:
    """The streams this process's thread pools are sized for: `BERT_TF_STREAMS`, else `DEFAULT_STREAMS`.

    Raises:
        InvalidValue: a `BERT_TF_STREAMS` that is not "auto" or a positive integer.
    """
    environ = os.environ if environ is None else environ
    value = check_streams(environ.get(ENV, "auto").strip() or "auto", ENV)
    return DEFAULT_STREAMS if value == "auto" else value


def threads_per_stream(streams: int, n_cores: int | None = None) -> int:
    """Intra-op threads for each of `streams` concurrent calls: the cores shared out, at least one."""
    return max(1, (cores() if n_cores is None else n_cores) // streams)


def configure_thread_pools(environ: Mapping[str, str] | None = None) -> int:
    """Sizes TensorFlow's pools for this process's streams, before TensorFlow starts; returns the streams.

    With more than one stream, intra-op threads are `threads_per_stream` and inter-op threads at least
    the streams (so the calls' ops can all be scheduled at once). `setdefault`: a user's own
    `TF_NUM_INTRAOP_THREADS` / `TF_NUM_INTEROP_THREADS` win. One stream leaves TensorFlow's defaults.
    """
    environ = os.environ if environ is None else environ
    streams = process_streams(environ)
    if streams > 1:
        environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads_per_stream(streams)))
        environ.setdefault("TF_NUM_INTEROP_THREADS", str(max(streams, cores())))
    return streams
