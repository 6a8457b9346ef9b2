"""The engines: what each measures, what it needs, and the function that runs it in its own process.

An engine is one function `fn(ctx: Context) -> dict`, decorated with `@engine(...)` in
the module that holds its kind (`ENGINE_MODULES`); the order of that list and of the
functions in each module is the order of the report. A "model" engine returns at
least `times` (seconds per timed pass) and `shapes` ((rows, padded length, real
tokens) of each model call of one pass); see `report.summarise` for what else it may give.
An engine that cannot run here (a library without the feature it measures) returns
`{"skipped": "skipped: why"}` instead. A reduced-precision engine names its float32
`reference`, and both write their token vectors for the fidelity check (fidelity.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from typing import Callable

#: The modules that define engines, in report order.
ENGINE_MODULES = ("bench.engines_matmul", "bench.engines_bert_tf", "bench.engines_peers", "bench.engines_openvino",
                  "bench.engines_ctranslate2", "bench.interleaved")
#: The engine the report's "vs" column divides by.
BASELINE = "bert_tf_words"
#: bert_tf in bfloat16: the engine the bfloat16 targets (`report.TARGETS`) are about.
BF16 = "bert_tf_bf16"
#: bert_tf in int8 (dynamic quantization), compared with ONNX Runtime's int8.
INT8 = "bert_tf_int8"
#: bert_tf in int8 in a process of its own precision: the pools split for two calls, as `bert-tf embed
#: --precision int8` starts them (`bert_tf.streams.process_streams_for`).
INT8_SPLIT = "bert_tf_int8_split"
#: bert_tf int8 run by LiteRT on XNNPACK's kernels (`precision="int8-litert"`, `bert_tf.model.litert`).
INT8_LITERT = "bert_tf_int8_litert"
#: The modules of the peers: the engines bert_tf is compared with ("the fastest peer").
PEER_MODULES = ("bench.engines_peers", "bench.engines_openvino", "bench.engines_ctranslate2")
#: The engines that run the ONNX export (the driver exports once for all of them).
ORT_ENGINES = ("ort_sorted", "ort_budget", "ort_int8")
#: The engines that run the int8 quantization of that export (the driver quantizes once).
ORT_INT8_ENGINES = ("ort_int8",)


@dataclasses.dataclass(frozen=True)
class Engine:
    name: str
    title: str
    needs: tuple[str, ...]  # importable modules
    kind: str  # "model" (timed on the workload), "matmul" (peak) or "interleaved" (variants batch by batch)
    run: Callable
    default_runs: int = 3  # timed passes when --runs is not given
    precision: str = "float32"  # what the engine computes in ("float32", "bfloat16", "int8")
    reference: str | None = None  # the float32 engine of the same model its fidelity is measured against
    layers: str = "last4"  # the token vectors compared with the reference's (fidelity.LAYERS)
    steps: tuple[str, ...] = ()  # preparation steps (prepare.STEPS) it needs, run once for all engines that do
    env: tuple[tuple[str, str], ...] = ()  # environment its process starts with, over the bench's own

    @property
    def is_peer(self) -> bool:
        return self.run.__module__ in PEER_MODULES

    def missing_modules(self) -> list[str]:
        return [m for m in self.needs if importlib.util.find_spec(m) is None]


ENGINES: dict[str, Engine] = {}


def engine(name: str, title: str, needs: tuple[str, ...], kind: str = "model", default_runs: int = 3,
           precision: str = "float32", reference: str | None = None, layers: str = "last4",
           steps: tuple[str, ...] = (), env: tuple[tuple[str, str], ...] = ()):
    """Registers the decorated function as the engine `name`."""
    def register(fn: Callable) -> Callable:
        if name in ENGINES:
            raise ValueError(f"engine {name} is defined twice")
        ENGINES[name] = Engine(name, title, needs, kind, fn, default_runs, precision, reference, layers, steps, env)
        return fn

    return register


def load() -> dict[str, Engine]:
    """Every engine, in report order (importing the engine modules is cheap: each imports its
    framework only when it runs)."""
    for module in ENGINE_MODULES:
        importlib.import_module(module)
    # Whichever module was imported first (report.py imports interleaved.py), the report keeps this order;
    # the sort is stable, so a module's engines stay in the order they are defined.
    ordered = sorted(ENGINES.values(), key=lambda e: ENGINE_MODULES.index(e.run.__module__))
    ENGINES.clear()
    ENGINES.update((e.name, e) for e in ordered)
    return ENGINES
