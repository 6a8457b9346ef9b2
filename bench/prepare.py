"""The steps that run before and between the engines, each in its own process (`--step NAME`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from bench.context import BERT_BASE, BERT_TF_PLAN, MATMUL_SHAPES, WEIGHT_SEED, Context
from bench.measure import numpy_matmul
from bench.onnx_models import export_last_four, quantize_int8
from bench.real_fidelity import measure as measure_real_fidelity


def prepare(ctx: Context) -> dict:
    """Writes the Google checkpoint, re-reads it into HF safetensors, checks the workload's token counts,
    and writes bert_tf's batch plan for `ort_budget` (which must not import TensorFlow)."""
    from bert_tf.embed.batching import MAX_BATCH_POSITIONS
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
    # position_embedding_type: transformers 5 no longer writes it; CTranslate2's converter reads it.
    hf_config = {"architectures": ["BertModel"], "model_type": "bert", "layer_norm_eps": 1e-12, "pad_token_id": 0,
                 "position_embedding_type": "absolute", **BERT_BASE}
    (hf_dir / "config.json").write_text(json.dumps(hf_config, indent=2))
    shutil.copy(ckpt / "vocab.txt", hf_dir / "vocab.txt")
    # Verify the workload with bert_tf's own tokenizer: exact lengths, no [UNK].
    tokenizer = BertTokenizer(vocab, lower_case=True)
    words = tokenizer.tokenize_words(ctx.texts)
    counts = [2 + sum(len(w.ids) for w in ws) for ws in words]
    unk = sum(i == tokenizer.unk_id for ws in words for w in ws for i in w.ids)
    mismatched = sum(c != n for c, n in zip(counts, ctx.lengths))
    batches = bert_tf_batches(ctx.lengths, ctx.bert_tf_batch_size, BERT_BASE["max_position_embeddings"])
    rows = sorted(len(b) for b in batches)
    plan = {"batches": batches, "batch_size": ctx.bert_tf_batch_size, "max_batch_positions": MAX_BATCH_POSITIONS,
            "calls": len(batches), "rows_min": rows[0], "rows_median": rows[len(rows) // 2], "rows_max": rows[-1]}
    (ctx.workdir / BERT_TF_PLAN).write_text(json.dumps(plan))
    return {"write_checkpoint_s": write_s, "parameters": int(sum(v.size for v in weights.values())),
            "bert_tf_tokenizer": {"mismatched_lengths": mismatched, "unk": unk, "real_tokens": sum(counts)},
            "bert_tf_plan": {k: v for k, v in plan.items() if k != "batches"}}


def bert_tf_batches(lengths, batch_size: int | None, max_seq_length: int) -> list[list[int]]:
    """The texts of each of bert_tf's model calls, as `BertEmbedder` plans them (`batching.plan`).

    Args:
        lengths: each text's length in pieces, [CLS] and [SEP] included (no text is windowed:
            the workload stays under `max_seq_length`).

    Returns:
        Lists of text indices, shortest first, one list per call.
    """
    from bert_tf.embed.batching import plan

    planned = plan([length - 2 for length in lengths], max_seq_length, batch_size)
    if len(planned["seg_text"]) != len(lengths):
        raise ValueError(f"the workload has texts longer than {max_seq_length} pieces: bert_tf windows them")
    texts = planned["seg_text"][planned["order"]].tolist()
    splits = planned["call_splits"].tolist()
    return [texts[start:end] for start, end in zip(splits, splits[1:])]


def export_onnx(ctx: Context) -> dict:
    """Exports the HF model (returning the last-four-layer sum, as the other engines do) to ONNX."""
    return export_last_four(ctx.meta["hf_dir"], Path(ctx.meta["onnx"]), ctx.meta["max_position_embeddings"])


def quantize_onnx(ctx: Context) -> dict:
    """ONNX Runtime's int8 dynamic quantization of the float32 export (`quantize_int8`)."""
    return quantize_int8(Path(ctx.meta["onnx"]), Path(ctx.meta["onnx_int8"]))


def export_openvino(ctx: Context) -> dict:
    """The HF model as OpenVINO IRs: float32, static int8 calibrated on the workload's first sentences, and
    weight-only int8 (`engines_openvino.export_openvino`)."""
    from bench.engines_openvino import CALIBRATION_SENTENCES
    from bench.engines_openvino import export_openvino as export
    from bench.engines_peers import hf_tokenizer

    calibration = hf_tokenizer(ctx)(ctx.texts[:CALIBRATION_SENTENCES])["input_ids"]
    return export(ctx.meta["hf_dir"], Path(ctx.meta["openvino_dir"]), calibration)


def convert_ctranslate2(ctx: Context) -> dict:
    """The HF model as a float32 CTranslate2 model (`engines_ctranslate2.convert_ctranslate2`)."""
    from bench.engines_ctranslate2 import convert_ctranslate2 as convert

    return convert(ctx.meta["hf_dir"], Path(ctx.meta["ctranslate2_dir"]))


def matmul_probe(ctx: Context) -> dict:
    """The machine's matmul rate right now (numpy, 2048^3, best of 5), in a process of its own so that
    its arrays never count in an engine's RSS. The driver runs it just before and just after each
    model engine: this VM's speed drifts over minutes with nothing visible inside it, and an engine's
    efficiency is best judged against the peak of its own minutes."""
    return numpy_matmul(*MATMUL_SHAPES[0], reps=5)


def real_fidelity(ctx: Context) -> dict:
    """Every reduced-precision mode against its own float32 on the real all-MiniLM-L6-v2 (real_fidelity.py)."""
    return measure_real_fidelity(ctx)


STEPS = {"prepare": prepare, "export-onnx": export_onnx, "quantize-onnx": quantize_onnx, "matmul-probe": matmul_probe,
         "export-openvino": export_openvino, "convert-ctranslate2": convert_ctranslate2, "real-fidelity": real_fidelity}
