"""CTranslate2 on the same weights: `ctranslate2.Encoder` on the Hugging Face model converted by CTranslate2's
own converter, in float32 and int8.

The prepare step `convert-ctranslate2` converts the HF safetensors the prepare step wrote (offline: the
converter reads that directory, its config.json and vocab.txt) into a float32 CTranslate2 model; the
engines load it with `compute_type` "float32" or "int8" (CTranslate2 quantizes the weights when it loads
them, and the activations at run time). 2 intra-op threads, 1 inter-op thread.

**The last layer only.** `Encoder.forward_batch` returns the last hidden state and the pooler's output, and
no other layer, so these engines cannot return the sum of the last four layers the others do. They do
the same work otherwise (every layer runs), and their fidelity is measured like for like: the last layer
of CTranslate2 float32 against the last layer of Hugging Face float32 (`hf_torch_sorted` writes both),
CTranslate2 int8 against CTranslate2 float32.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.context import THREADS, Context
from bench.engines_peers import TINY_CALL, hf_tokenizer, peer_fidelity, sorted_pass
from bench.fidelity import LAST
from bench.measure import ModelTimer, measure_passes, rss_now
from bench.registry import engine

NEEDS = ("ctranslate2", "torch", "transformers", "tokenizers")  # torch: the converter loads the HF model
#: The prepare step that converts the model.
STEP = "convert-ctranslate2"


def convert_ctranslate2(hf_dir: str, out_dir: Path) -> dict:
    """CTranslate2's `TransformersConverter` on the HF BertModel at `hf_dir`, float32 weights, into `out_dir`.

    The converter insists on `config.position_embedding_type == "absolute"`, which transformers 5's
    BertConfig no longer sets unless config.json has it (the bench's does; all-MiniLM-L6-v2's does).
    """
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    t = time.perf_counter()
    TransformersConverter(hf_dir).convert(str(out_dir), quantization=None, force=True)
    return {"ctranslate2_dir": str(out_dir), "convert_s": time.perf_counter() - t,
            "ctranslate2": ctranslate2.__version__}


def encoder_call(model_dir: str, compute_type: str):
    """The CTranslate2 encoder at `model_dir` (2 threads) and its call: (ids, mask), int64 and padded, to the last
    layer of every position, float32 [batch, length, hidden]."""
    import ctranslate2

    encoder = ctranslate2.Encoder(model_dir, device="cpu", compute_type=compute_type, intra_threads=THREADS,
                                  inter_threads=1)

    def call(ids, mask):
        lengths = np.count_nonzero(mask, axis=1).astype(np.int32)
        out = encoder.forward_batch(ctranslate2.StorageView.from_array(np.ascontiguousarray(ids, np.int32)),
                                    ctranslate2.StorageView.from_array(lengths))
        return np.array(out.last_hidden_state)

    return encoder, call


def _ctranslate2_engine(ctx: Context, name: str, compute_type: str) -> dict:
    t0 = time.perf_counter()
    import ctranslate2
    import transformers  # noqa: F401  (for the tokenizer; it does not import torch)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder, call = encoder_call(ctx.meta["ctranslate2_dir"], compute_type)
    tokenizer = hf_tokenizer(ctx)
    call(*[np.array(TINY_CALL, np.int64)] * 2)
    ready_s = time.perf_counter() - t0
    rss_ready = rss_now()
    timer = ModelTimer()
    result = measure_passes(lambda: sorted_pass(ctx, tokenizer, call, timer), ctx.runs, on_pass=timer.new_pass)
    result.update(peer_fidelity(ctx, name, tokenizer, call, LAST))
    result.update(timer.record())
    result.update({"threads": {"intra_threads": THREADS, "inter_threads": 1}, "compute_type": encoder.compute_type,
                   "ready_s": ready_s, "rss_ready": rss_ready, "import_s": import_s, "layers": LAST,
                   "ctranslate2": ctranslate2.__version__})
    return result


@engine("ct2_f32", "CTranslate2 `Encoder`, float32, sorted, padded per batch (last layer only)", NEEDS,
        reference="hf_torch_sorted", layers=LAST, steps=(STEP,))
def ct2_f32(ctx: Context) -> dict:
    return _ctranslate2_engine(ctx, "ct2_f32", "float32")


@engine("ct2_int8", "CTranslate2 `Encoder`, `compute_type=\"int8\"`, sorted, padded per batch (last layer only)",
        NEEDS, precision="int8", reference="ct2_f32", layers=LAST, steps=(STEP,))
def ct2_int8(ctx: Context) -> dict:
    return _ctranslate2_engine(ctx, "ct2_int8", "int8")
