"""Running a batch plan's model calls: one at a time, or `streams` at once, handed back in plan order.

`BertEmbedder` runs each chunk's calls through its `CallPool`. With more than one stream, up to
`streams` consecutive calls run at once on the pool's threads (TensorFlow releases the GIL while it
runs), one more waits its turn, and the caller reduces the earliest while the others run; which
thread runs a call changes nothing in its arithmetic (`bert_tf.streams` says how the cores are
shared). `progress_bar` draws the bar over a chunk's calls.
"""

from __future__ import annotations

import collections
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

from bert_tf.interrupts import Exiting

T = TypeVar("T")


class CallPool:
    """The threads of one embedder's concurrent model calls: made when first needed, remade when the
    stream count changes (the old pool's threads exit once no caller holds it). Thread-safe."""

    def __init__(self):
        self._pool: tuple[int, ThreadPoolExecutor] | None = None  # (streams, its threads)
        self._lock = threading.Lock()

    def run(self, call: Callable[[int], T], count: int, streams: int) -> Iterator[T]:
        """`call(0)`, ..., `call(count - 1)`, yielded in order: on the caller's thread with one stream,
        else `streams` at a time on the pool."""
        if streams == 1:
            return map(call, range(count))
        with self._lock:
            if self._pool is None or self._pool[0] != streams:
                self._pool = (streams, ThreadPoolExecutor(streams, thread_name_prefix="bert_tf-stream"))
            pool = self._pool[1]
        return in_order(pool, call, count, streams + 1)


def in_order(pool: ThreadPoolExecutor, fn: Callable[[int], T], count: int, ahead: int) -> Iterator[T]:
    """`fn(0)`, ..., `fn(count - 1)` computed on `pool` with at most `ahead` submitted at a time, yielded in
    order; calls not yet started are cancelled if the consumer stops early (an error, a closed generator)."""
    futures: collections.deque[Future] = collections.deque()
    try:
        for c in range(count):
            try:
                futures.append(pool.submit(fn, c))
            except RuntimeError as error:  # a pool refuses work once Python is exiting (CallPool shuts none down)
                raise Exiting(f"the model calls stopped: {error}") from error
            if len(futures) >= ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()
    finally:
        for future in futures:
            future.cancel()


def progress_bar(batches, progress: bool | None, total_texts: int):
    """`batches`, with a bar on stderr advanced once per call: where `progress` says so, or by default
    where there are more than 4 calls and stderr is a terminal."""
    show = progress if progress is not None else (len(batches) > 4 and sys.stderr.isatty())
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"embedding {total_texts} texts", unit="batch", file=sys.stderr, leave=False)
