"""The steps that run before and between the engines, each in its own process (`--step NAME`)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from context import BERT_BASE, BERT_TF_PLAN, MATMUL_SHAPES, WEIGHT_SEED, Context
from measure import numpy_matmul


def prepare(ctx: Context) -> dict:
    """Writes the Google checkpoint, re-reads it into HF safetensors, checks the workload's token counts,
    and writes bert_tf's batch plan for `ort_budget` (which must not import TensorFlow)."""
    from bert_tf.embed.batching import MAX_BATCH_POSITIONS, plan as plan_calls
    from bert_tf.model.config import BertConfig
    from bert_tf.runtime import tf
    from bert_tf.testing import google_to_hf_weights, write_random_checkpoint
    from bert_tf.text.tokenization import BertTokenizer
    from safetensors.numpy import save_file

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
    save_file(google_to_hf_weights(weights, config.num_hidden_layers), str(hf_dir / "model.safetensors"))
    hf_config = {"architectures": ["BertModel"], "model_type": "bert", "layer_norm_eps": 1e-12, "pad_token_id": 0,
                 **BERT_BASE}
    (hf_dir / "config.json").write_text(json.dumps(hf_config, indent=2))
    shutil.copy(ckpt / "vocab.txt", hf_dir / "vocab.txt")
    # Verify the workload with bert_tf's own tokenizer: exact lengths, no [UNK].
    tokenizer = BertTokenizer(vocab, lower_case=True)
    words = tokenizer.tokenize_words(ctx.texts)
    counts = [2 + sum(len(w.ids) for w in ws) for ws in words]
    unk = sum(i == tokenizer.unk_id for ws in words for w in ws for i in w.ids)
    mismatched = sum(c != n for c, n in zip(counts, ctx.lengths))
    # The library's own planner: texts of the workload are one window each, so a call's segments are texts.
    calls = plan_calls(np.asarray(ctx.lengths) - 2, BERT_BASE["max_position_embeddings"], ctx.bert_tf_batch_size)
    texts = calls["seg_text"][calls["order"]]
    batches = [texts[a:b].tolist() for a, b in zip(calls["call_splits"][:-1], calls["call_splits"][1:])]
    rows = sorted(len(b) for b in batches)
    plan = {"batches": batches, "batch_size": ctx.bert_tf_batch_size, "max_batch_positions": MAX_BATCH_POSITIONS,
            "calls": len(batches), "rows_min": rows[0], "rows_median": rows[len(rows) // 2], "rows_max": rows[-1]}
    (ctx.workdir / BERT_TF_PLAN).write_text(json.dumps(plan))
    return {"write_checkpoint_s": write_s, "parameters": int(sum(v.size for v in weights.values())),
            "bert_tf_tokenizer": {"mismatched_lengths": mismatched, "unk": unk, "real_tokens": sum(counts)},
            "bert_tf_plan": {k: v for k, v in plan.items() if k != "batches"}}


def export_onnx(ctx: Context) -> dict:
    """Exports the HF model (returning the last-four-layer sum, as the other engines do) to ONNX."""
    return export_last_four(ctx.meta["hf_dir"], Path(ctx.meta["onnx"]), ctx.meta["max_position_embeddings"])


def export_last_four(hf_dir: str, path: Path, max_positions: int) -> dict:
    """The HF model at `hf_dir`, returning the sum of its last four layers, as ONNX at `path`.

    Dynamic batch and length. The TorchScript exporter on the eager attention path is
    tried first: ORT's CPU graph fusions recognise that graph best, and it ran faster than
    the dynamo export of the default SDPA model (bench/README.md). The dynamo exporter
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
    names = dict(input_names=["input_ids", "attention_mask"], output_names=["last4"])
    t = time.perf_counter()
    try:
        model = transformers.BertModel.from_pretrained(hf_dir, attn_implementation="eager").eval()
        axes = {"batch": 0, "seq": 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(LastFour(model).eval(), (ids, mask), str(path), dynamo=False, opset_version=17,
                              dynamic_axes={n: {v: k for k, v in axes.items()}
                                            for n in ("input_ids", "attention_mask", "last4")}, **names)
        exporter = "torch.onnx.export(dynamo=False), eager attention, opset 17"
    except Exception as e:  # the TorchScript exporter is deprecated; fall back to dynamo
        print(f"TorchScript export failed ({e!r}); trying the dynamo exporter", file=sys.stderr)
        model = transformers.BertModel.from_pretrained(hf_dir).eval()
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=max_positions)
        program = torch.onnx.export(LastFour(model).eval(), (ids, mask), dynamo=True,
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                    "attention_mask": {0: batch, 1: seq}}, **names)
        program.save(str(path), external_data=True)
        exporter = "torch.onnx.export(dynamo=True), SDPA attention"
    return {"onnx": str(path), "export_s": time.perf_counter() - t, "exporter": exporter,
            "torch": torch.__version__}


def quantize_onnx(ctx: Context) -> dict:
    """ONNX Runtime's int8 dynamic quantization of the float32 export (`quantize_int8`)."""
    return quantize_int8(Path(ctx.meta["onnx"]), Path(ctx.meta["onnx_int8"]))


def quantize_int8(source: Path, target: Path) -> dict:
    """ONNX Runtime's int8 dynamic quantization of `source`: int8 weights (per tensor, signed),
    activations quantized to uint8 at run time, as `quantize_dynamic` does by default (MatMul and Gather
    nodes; LayerNorm, softmax and GELU stay float32)."""
    from onnxruntime import __version__
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t = time.perf_counter()
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     # the dynamo fallback writes its weights beside the graph; keep that layout then
                     use_external_data_format=any(source.parent.glob(source.name + ".data")))
    return {"onnx_int8": str(target), "quantize_s": time.perf_counter() - t,
            "how": "onnxruntime.quantization.quantize_dynamic(weight_type=QuantType.QInt8), defaults otherwise",
            "onnxruntime": __version__, "bytes": target.stat().st_size}


def matmul_probe(ctx: Context) -> dict:
    """The machine's matmul rate right now (numpy, 2048^3, best of 5), in a process of its own so that
    its arrays never count in an engine's RSS. The driver runs it just before and just after each
    model engine: this VM's speed drifts over minutes with nothing visible inside it, and an engine's
    efficiency is best judged against the peak of its own minutes."""
    return numpy_matmul(*MATMUL_SHAPES[0], reps=5)


def real_fidelity(ctx: Context) -> dict:
    """Every reduced-precision mode against its own float32 on the real all-MiniLM-L6-v2 (real_fidelity.py)."""
    from real_fidelity import measure

    return measure(ctx)


STEPS = {"prepare": prepare, "export-onnx": export_onnx, "quantize-onnx": quantize_onnx, "matmul-probe": matmul_probe,
         "real-fidelity": real_fidelity}
