"""Streams: how many model calls run at once, and TensorFlow's thread pools sized for them.

OpenVINO's THROUGHPUT hint splits the cores into streams that each run one inference;
`BertEmbedder(streams=N)` does the same with its batch plan: N Python threads take consecutive
model calls and run the same traced graph at once (TensorFlow releases the GIL while it runs),
and the head reduces their outputs in plan order, so the vectors are those of one stream.

TensorFlow's intra-op pool (the threads one op may use) is per process and fixed when TensorFlow
starts. With `BERT_TF_STREAMS=N` in the environment (the CLI's `--streams N` sets it), `bert_tf.runtime`
sizes the pools before TensorFlow is imported so that N streams each get `cores / N` threads. Without
it the pools are TensorFlow's own, and concurrent calls share them: each call may use every core, and
each fills the other's idle moments (launches, small ops), while a lone call (a query) keeps every core.
`streams="auto"` is `BERT_TF_STREAMS` where it is set, else `AUTO_STREAMS` calls on those shared pools.
The CLI, which knows the precision before TensorFlow starts, splits the pools for int8
(`process_streams_for`: `SPLIT_POOL_PRECISIONS`).
Which runs fastest is measured, not assumed (`python -m bench.streams`, figures in bench/README.md).

Importable without TensorFlow (the CLI checks `--streams` before anything starts it).
"""

from __future__ import annotations

import os
from typing import Mapping

from bert_tf.errors import InvalidValue

#: The environment variable that says how many streams a process runs (read once, when TensorFlow starts).
ENV = "BERT_TF_STREAMS"
#: The streams the pools are sized for where `BERT_TF_STREAMS` is unset: one, TensorFlow's own pools.
DEFAULT_STREAMS = 1
#: What `streams="auto"` means where `BERT_TF_STREAMS` is unset, with two cores or more: two model calls at
#: once on TensorFlow's own pools. On the 2-core machine measured (bench/README.md#streams) they beat one
#: call at a time in all 15 pairs: float32 1.06x, bfloat16 1.02x, int8 1.05x (medians of 5 pairs).
AUTO_STREAMS = 2


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


def _environment_streams(environ: Mapping[str, str] | None) -> int | str:
    """`BERT_TF_STREAMS` checked: a count, or "auto" where it is unset or says so."""
    environ = os.environ if environ is None else environ
    return check_streams(environ.get(ENV, "auto").strip() or "auto", ENV)


def process_streams(environ: Mapping[str, str] | None = None) -> int:
    """The streams this process's thread pools are sized for: `BERT_TF_STREAMS`, else `DEFAULT_STREAMS`.

    Raises:
        InvalidValue: a `BERT_TF_STREAMS` that is not "auto" or a positive integer.
    """
    value = _environment_streams(environ)
    return DEFAULT_STREAMS if value == "auto" else value


def auto_streams(environ: Mapping[str, str] | None = None) -> int:
    """What `streams="auto"` means in this process: `BERT_TF_STREAMS` where it sets a count (the pools
    are sized for it), else `AUTO_STREAMS` on a process with two cores or more, else 1.

    Raises:
        InvalidValue: a `BERT_TF_STREAMS` that is not "auto" or a positive integer.
    """
    value = _environment_streams(environ)
    if value != "auto":
        return value
    return AUTO_STREAMS if cores() >= 2 else 1


#: Precisions for which a process that embeds in nothing else splits its cores into `AUTO_STREAMS` pools
#: (`BERT_TF_STREAMS`) where nothing says otherwise: the CLI knows the precision before TensorFlow starts.
#: int8 calls on shared pools wait on each other's threads (oneDNN's int8 matmuls split their work over every
#: pool thread, XLA's kernels hold one): on an AMD Zen 4, two calls of one thread each ran 1.13x one call,
#: two on shared pools 1.08x; a lone int8 call (a query) is no slower on one thread (bench/README.md#streams).
#: float32 and bfloat16 keep the shared pools, where a lone call takes every core.
SPLIT_POOL_PRECISIONS = ("int8",)


def process_streams_for(streams: int | str | None, precision: str | None,
                        environ: Mapping[str, str] | None = None, n_cores: int | None = None) -> int | None:
    """The `BERT_TF_STREAMS` a process should start TensorFlow with, for a command that runs `streams` calls
    at once (`--streams`: a count, or "auto"/None) in `precision`; None: leave the environment as it is.

    A count asked for is that count. Otherwise a `BERT_TF_STREAMS` already set wins, and a precision of
    `SPLIT_POOL_PRECISIONS` gets `AUTO_STREAMS` pools of its own on two cores or more.
    """
    if isinstance(streams, int) and not isinstance(streams, bool):
        return streams
    environ = os.environ if environ is None else environ
    if environ.get(ENV, "").strip() or precision not in SPLIT_POOL_PRECISIONS:
        return None
    return AUTO_STREAMS if (cores() if n_cores is None else n_cores) >= 2 else None


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
