"""The ONNX models the ONNX Runtime engines run: the Hugging Face model exported, and its int8 quantization.

The model with the last-four-layer output (`last_four_model`) is OpenVINO's source too (engines_openvino.py).
Used by the prepare steps (`bench.prepare`, on the bench's BERT-Base) and by the real-model fidelity
measurement (`bench.real_fidelity`, on all-MiniLM-L6-v2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def last_four_model(hf_dir: str, attn_implementation: str | None = None):
    """The HF BertModel at `hf_dir` as a `torch.nn.Module` (eval mode) whose output is the sum of its last four
    layers, the vectors every engine of the bench returns; (input_ids, attention_mask) in.

    Args:
        attn_implementation: "eager", "sdpa", or None for transformers' default.
    """
    import torch
    import transformers

    class LastFour(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hs = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
            return hs[-4] + hs[-3] + hs[-2] + hs[-1]

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return LastFour(transformers.BertModel.from_pretrained(hf_dir, **kwargs).eval()).eval()


def export_last_four(hf_dir: str, path: Path, max_positions: int) -> dict:
    """The HF model at `hf_dir`, returning the sum of its last four layers, as ONNX at `path`.

    Dynamic batch and length. The TorchScript exporter on the eager attention path is
    tried first: ORT's CPU graph fusions recognise that graph best, and it ran faster than
    the dynamo export of the default SDPA model (bench/README.md). The dynamo exporter
    (needs onnxscript) is the fallback.
    """
    import warnings

    import torch

    ids = torch.tensor([[101, 7592, 2088, 102]] * 2)
    mask = torch.ones_like(ids)
    names = dict(input_names=["input_ids", "attention_mask"], output_names=["last4"])
    t = time.perf_counter()
    try:
        axes = {"batch": 0, "seq": 1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(last_four_model(hf_dir, "eager"), (ids, mask), str(path), dynamo=False, opset_version=17,
                              dynamic_axes={n: {v: k for k, v in axes.items()}
                                            for n in ("input_ids", "attention_mask", "last4")}, **names)
        exporter = "torch.onnx.export(dynamo=False), eager attention, opset 17"
    except Exception as e:  # the TorchScript exporter is deprecated; fall back to dynamo
        print(f"TorchScript export failed ({e!r}); trying the dynamo exporter", file=sys.stderr)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=max_positions)
        program = torch.onnx.export(last_four_model(hf_dir), (ids, mask), dynamo=True,
                                    dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                    "attention_mask": {0: batch, 1: seq}}, **names)
        program.save(str(path), external_data=True)
        exporter = "torch.onnx.export(dynamo=True), SDPA attention"
    return {"onnx": str(path), "export_s": time.perf_counter() - t, "exporter": exporter,
            "torch": torch.__version__}


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
