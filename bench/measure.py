"""Measuring inside a process: passes, model-call timers, RSS, thread settings, matmul rates, CPU load."""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from typing import Callable

import numpy as np

from bench.context import THREADS


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class RssSampler:
    """Polls this process's RSS every `interval` seconds while active; keeps the maximum."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.max = max(self.max, rss_now())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.max = max(self.max, rss_now())


class ModelTimer:
    """Accumulates time spent inside model calls, per pass, and the shapes executed.

    `flops`, when given, counts each call's executed FLOPs from (rows, padded length,
    real tokens); they are recorded with the shapes.
    """

    def __init__(self, flops: Callable[[int, int, int], int] | None = None):
        self.per_pass: list[float] = []
        self._spans: list[tuple[float, float]] = []  # this pass's call spans (`ModelCall.span`)
        self._unspanned = 0.0  # this pass's seconds of calls without one
        self.shapes: list[tuple[int, int, int]] = []  # (rows, padded length, real tokens), first pass only
        self.real_tokens = 0  # first pass only
        self.flops = flops
        self.executed_flops = 0  # first pass only, when `flops` is given
        self._recording = True

    def new_pass(self):
        if self.per_pass:
            self._recording = False
        self.per_pass.append(0.0)
        self._spans, self._unspanned = [], 0.0

    def restart(self):
        """Forgets everything so far (a warm-up that was not a whole pass)."""
        self.per_pass, self.shapes, self.real_tokens, self.executed_flops = [], [], 0, 0
        self._spans, self._unspanned = [], 0.0

    def add(self, seconds: float, rows: int, length: int, real: int, span: tuple[float, float] | None = None):
        """One call: the pass's model time is the union of its calls' `span`s (`ModelCall.span`), so that
        concurrent calls (several streams) are not counted twice, plus the `seconds` of calls without one."""
        if not self.per_pass:
            self.per_pass.append(0.0)
        if span is None:
            self._unspanned += seconds
        else:
            self._spans.append(span)
        self.per_pass[-1] = union_seconds(self._spans) + self._unspanned
        if self._recording:
            self.shapes.append((rows, length, real))
            self.real_tokens += real
            if self.flops:
                self.executed_flops += self.flops(rows, length, real)

    def add_seconds(self, seconds: float):
        """Model time not tied to one call: concurrent calls (several streams) timed together, their shapes
        recorded by `add` with 0 seconds each."""
        if not self.per_pass:
            self.per_pass.append(0.0)
        self._unspanned += seconds
        self.per_pass[-1] = union_seconds(self._spans) + self._unspanned

    def record(self, recorded_passes: slice = slice(1, None)) -> dict:
        """The shapes and model time as an engine reports them; `recorded_passes`: which passes count
        (by default all but the warm-up)."""
        out = {"shapes": self.shapes, "shapes_how": "recorded from the model calls",
               "real_tokens": self.real_tokens, "model_s_per_pass": self.per_pass[recorded_passes]}
        if self.flops:
            out["executed_flops"] = self.executed_flops
        return out


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """The length of the union of `(start, end)` intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def timed(run: Callable[[], object], runs: int, before_each: Callable[[], None] | None = None) -> list[float]:
    """The seconds of each of `runs` calls of `run` (`before_each`, untimed, before each)."""
    times = []
    for _ in range(runs):
        if before_each:
            before_each()
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


def timed_passes(run_pass: Callable[[], object], runs: int, on_pass: Callable[[], None] | None = None) -> dict:
    """`runs` timed passes, RSS sampled throughout."""
    rss_before = rss_now()
    with RssSampler() as sampler:
        times = timed(run_pass, runs, on_pass)
    return {"times": times, "rss_warm": rss_before, "rss_embedding_max": sampler.max}


def measure_passes(run_pass: Callable[[], object], runs: int, on_pass: Callable[[], None] | None = None) -> dict:
    """One warm-up pass, then `runs` timed passes, RSS sampled throughout the timed ones."""
    t = time.perf_counter()
    run_pass()
    warmup = time.perf_counter() - t
    return {"warmup_s": warmup, **timed_passes(run_pass, runs, on_pass)}


def tf_threads(tf) -> dict:
    """Applies the intra-op thread setting; bert_tf.runtime initialises TF's runtime on import,
    after which `set_intra_op_parallelism_threads` raises, so the driver also exports
    TF_NUM_INTRAOP_THREADS (read by TF when it creates its thread pools)."""
    note = "tf.config.threading.set_intra_op_parallelism_threads(2)"
    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    except RuntimeError:
        note = (f"TF_NUM_INTRAOP_THREADS={os.environ.get('TF_NUM_INTRAOP_THREADS', THREADS)} "
                f"(runtime already initialised by bert_tf.runtime)")
    return {"intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS", THREADS)), "how": note,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "streams": os.environ.get("BERT_TF_STREAMS"),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "default"}


def best_matmul(matmul: Callable[[], object], m: int, k: int, n: int, reps: int = 8) -> dict:
    for _ in range(2):
        matmul()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        matmul()
        times.append(time.perf_counter() - t)
    flops = 2.0 * m * k * n
    return {"shape": [m, k, n], "best_gflops": flops / min(times) / 1e9,
            "median_gflops": flops / statistics.median(times) / 1e9}


def numpy_matmul(m: int, k: int, n: int, reps: int = 8) -> dict:
    """numpy's (OpenBLAS's) float32 rate on an m x k x n matmul of seeded random matrices."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    return best_matmul(lambda: a @ b, m, k, n, reps=reps)


def cpu_seconds() -> tuple[float, float]:
    """Machine-wide (busy, stolen) CPU seconds so far, all cores, from /proc/stat.

    Stolen time is time the hypervisor gave this VM's virtual CPUs to someone else.
    """
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
