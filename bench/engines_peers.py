"""The peers on the same weights: Hugging Face's BertModel on PyTorch, and its ONNX export in ONNX Runtime."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from bench.context import BERT_TF_PLAN, PAD_TO, THREADS, Context
from bench.fidelity import FIDELITY_SENTENCES, LAST, LAST4, save_token_vectors
from bench.measure import ModelTimer, measure_passes, rss_now, timed_passes
from bench.registry import engine

TORCH = ("torch", "transformers", "safetensors")
ORT = ("onnxruntime", "onnx", "onnxscript", "torch", "transformers", "tokenizers")
TINY_CALL = [[101, 7592, 102]]  # [CLS] hello [SEP]: the first call that makes an engine ready


def hf_tokenizer(ctx: Context):
    """HF's fast BERT tokenizer on the checkpoint's vocabulary, lower-casing as BERT uncased does.

    transformers 5 takes the vocabulary as `vocab=` (a path or dict); `vocab_file=` is
    silently ignored there and every token becomes [UNK], so the vocab is passed explicitly.
    """
    from transformers import BertTokenizerFast

    with open(os.path.join(ctx.checkpoint, "vocab.txt"), encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return BertTokenizerFast(vocab=vocab, do_lower_case=True)


def padded_batches(ctx: Context, tokenizer, batches=None, texts=None):
    """Tokenize everything, sort by length, pad each batch to its longest.

    Batches are `ctx.batch_size` sentences in length order, or `batches` (lists of text
    indices, shortest first) when given. `texts`: others than the workload's.

    Returns:
        The token ids of each text, and (text indices, ids, mask) per batch, int64, padded with 0.
    """
    encoded = tokenizer(ctx.texts if texts is None else texts, add_special_tokens=True)["input_ids"]
    if batches is None:
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]))
        batches = [order[start:start + ctx.batch_size] for start in range(0, len(order), ctx.batch_size)]
    padded = []
    for batch in batches:
        longest = max(len(encoded[k]) for k in batch)
        ids = np.zeros((len(batch), longest), np.int64)
        mask = np.zeros((len(batch), longest), np.int64)
        for row, k in enumerate(batch):
            ids[row, :len(encoded[k])] = encoded[k]
            mask[row, :len(encoded[k])] = 1
        padded.append((batch, ids, mask))
    return encoded, padded


def sorted_pass(ctx: Context, tokenizer, model_call, timer: ModelTimer, batches=None, texts=None):
    """Tokenize everything, sort by length, pad each batch to its longest, run, return per-text vectors
    (`padded_batches` says how the batches are made; each model call is timed on its own)."""
    encoded, padded = padded_batches(ctx, tokenizer, batches, texts)
    outputs = [None] * len(encoded)
    for batch, ids, mask in padded:
        t = time.perf_counter()
        vectors = model_call(ids, mask)
        timer.add(time.perf_counter() - t, len(batch), ids.shape[1], int(mask.sum()))
        for row, k in enumerate(batch):
            outputs[k] = vectors[row, :len(encoded[k])]
    return outputs


# ---------------------------------------------------------------------------- PyTorch


#: How a PyTorch engine computes: the weights' dtype and the autocast around the call.
TORCH_MODES = {
    "float32": "float32 weights, no autocast",
    "bfloat16": "`model.to(torch.bfloat16)`: bfloat16 weights and activations throughout",
    "autocast": "float32 weights under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`",
}


def torch_ready(ctx: Context, mode: str = "float32"):
    """The PyTorch model, its call (ids, mask -> last four layers summed, float32) and the HF tokenizer, after a
    first tiny call; `info` says how long that took and how much RSS it left. `mode`: one of `TORCH_MODES`."""
    import contextlib

    t0 = time.perf_counter()
    import torch
    import transformers

    import_s = time.perf_counter() - t0
    torch.set_num_threads(THREADS)
    t = time.perf_counter()
    model = transformers.BertModel.from_pretrained(ctx.meta["hf_dir"]).eval()
    if mode == "bfloat16":
        model = model.to(torch.bfloat16)
    load_s = time.perf_counter() - t
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if mode == "autocast" else contextlib.nullcontext

    def call(ids, mask, layers: str = LAST4):
        with torch.inference_mode(), autocast():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        output_hidden_states=True)
            hs = out.hidden_states
            if layers == LAST:  # the last layer alone, for the engines that return nothing else (CTranslate2)
                return hs[-1].float().numpy()
            # The layer sum in float32 (a no-op for float32), as a user after faithful vectors would.
            return (hs[-4].float() + hs[-3].float() + hs[-2].float() + hs[-1].float()).numpy()

    tokenizer = hf_tokenizer(ctx)
    call(*[np.array(TINY_CALL)] * 2)
    info = {"threads": {"torch.get_num_threads": torch.get_num_threads()}, "torch_mode": TORCH_MODES[mode],
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "attn_implementation": model.config._attn_implementation, "load_s": load_s, "import_s": import_s,
            "ready_s": time.perf_counter() - t0, "rss_ready": rss_now()}
    return model, call, info, tokenizer


def _torch_probe(ctx: Context, model, tokenizer, name: str) -> dict:
    """One sentence at a time, no padding: the last four layers summed and the mean of layer -2."""
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
    return {"probe": f"probe_{name}.npz", "probe_sentences": f"probe_{name}_sentences.npz"}


def peer_fidelity(ctx: Context, name: str, tokenizer, call, layers: str = LAST4) -> dict:
    """The fidelity check's token vectors, after the timing: the first sentences, sorted and batched as timed.
    `layers`: what `call` returns (`fidelity.LAYERS`)."""
    vectors = sorted_pass(ctx, tokenizer, call, ModelTimer(), texts=ctx.texts[:FIDELITY_SENTENCES])
    return save_token_vectors(ctx.workdir, name, vectors, layers)


def _torch_sorted(ctx: Context, name: str, mode: str) -> dict:
    model, call, info, tokenizer = torch_ready(ctx, mode)
    timer = ModelTimer()
    result = measure_passes(lambda: sorted_pass(ctx, tokenizer, call, timer), ctx.runs, on_pass=timer.new_pass)
    probe = _torch_probe(ctx, model, tokenizer, name) if mode == "float32" else {}
    if mode == "float32":  # the float32 reference of the last-layer engines (CTranslate2) too
        last = peer_fidelity(ctx, name, tokenizer, lambda ids, mask: call(ids, mask, LAST), LAST)
        probe["fidelity_file_last_layer"] = last["fidelity_file"]
    return {**result, **info, **timer.record(), **probe, **peer_fidelity(ctx, name, tokenizer, call)}


@engine("hf_torch_sorted", "HF transformers BertModel, PyTorch, sorted, padded per batch", TORCH)
def hf_torch_sorted(ctx: Context) -> dict:
    return _torch_sorted(ctx, "hf_torch_sorted", "float32")


@engine("hf_torch_bf16", "HF BertModel, PyTorch `model.to(torch.bfloat16)`, sorted, padded per batch", TORCH,
        precision="bfloat16", reference="hf_torch_sorted")
def hf_torch_bf16(ctx: Context) -> dict:
    return _torch_sorted(ctx, "hf_torch_bf16", "bfloat16")


@engine("hf_torch_autocast", "HF BertModel, PyTorch float32 under `torch.autocast(\"cpu\", bfloat16)`, sorted",
        TORCH, precision="bfloat16", reference="hf_torch_sorted")
def hf_torch_autocast(ctx: Context) -> dict:
    return _torch_sorted(ctx, "hf_torch_autocast", "autocast")


# It runs one shape only ([32, 128]), so its passes hardly vary, and it is several times slower
# than the others: fewer passes by default.
@engine("hf_torch_pad128", "HF transformers BertModel, PyTorch, input order, padded to 128", TORCH, default_runs=2)
def hf_torch_pad128(ctx: Context) -> dict:
    _, call, info, tokenizer = torch_ready(ctx)
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
    warmup_s = time.perf_counter() - t
    timer.restart()
    result = timed_passes(run_pass, ctx.runs, on_pass=timer.new_pass)
    return {**result, **info, "warmup_s": warmup_s, "warmup": "one batch", **timer.record(slice(None))}


# ---------------------------------------------------------------------------- ONNX Runtime


def ort_session(ctx: Context, model: str = "onnx"):
    """The exported model (`ctx.meta[model]`: "onnx", or "onnx_int8" for its quantization) in ONNX Runtime:
    2 intra-op threads, sequential, every graph optimisation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(ctx.meta[model], options, providers=["CPUExecutionProvider"])


def _ort_engine(ctx: Context, name: str, batches=None, model: str = "onnx") -> dict:
    t0 = time.perf_counter()
    import onnxruntime as ort
    import transformers  # noqa: F401  (for the tokenizer; it does not import torch)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    session = ort_session(ctx, model)
    tokenizer = hf_tokenizer(ctx)

    def call(ids, mask):
        return session.run(["last4"], {"input_ids": ids, "attention_mask": mask})[0]

    call(*[np.array(TINY_CALL, np.int64)] * 2)
    ready_s = time.perf_counter() - t0
    rss_ready = rss_now()
    timer = ModelTimer()
    result = measure_passes(lambda: sorted_pass(ctx, tokenizer, call, timer, batches=batches), ctx.runs,
                            on_pass=timer.new_pass)
    probe = [call(np.array([ids], np.int64), np.ones((1, len(ids)), np.int64))[0]
             for ids in tokenizer(ctx.texts[:4])["input_ids"]]
    np.savez(ctx.workdir / f"probe_{name}.npz", *probe)
    if batches is None:
        result.update(peer_fidelity(ctx, name, tokenizer, call))
    result.update(timer.record())
    result.update({"threads": {"intra_op_num_threads": THREADS, "inter_op_num_threads": 1},
                   "ready_s": ready_s, "rss_ready": rss_ready, "import_s": import_s,
                   "probe": f"probe_{name}.npz", "torch_imported": "torch" in sys.modules,
                   "graph_optimization_level": "ORT_ENABLE_ALL", "onnxruntime": ort.__version__})
    return result


@engine("ort_sorted", "ONNX Runtime (torch.onnx export of the HF model), sorted, padded per batch", ORT)
def ort_sorted(ctx: Context) -> dict:
    return _ort_engine(ctx, "ort_sorted")


@engine("ort_budget", "ONNX Runtime, same export, on bert_tf's own batch plan, padded per batch", ORT)
def ort_budget(ctx: Context) -> dict:
    """ONNX Runtime on exactly the batches bert_tf runs (its plan, computed by the prepare step),
    each padded to its longest: what bert_tf's batching alone would give the strongest peer."""
    plan = json.loads((ctx.workdir / BERT_TF_PLAN).read_text())
    return _ort_engine(ctx, "ort_budget", batches=plan["batches"])


@engine("ort_int8", "ONNX Runtime, the same export quantized to int8 (`quantize_dynamic`), sorted, padded per batch",
        ORT, precision="int8", reference="ort_sorted")
def ort_int8(ctx: Context) -> dict:
    return _ort_engine(ctx, "ort_int8", model="onnx_int8")
