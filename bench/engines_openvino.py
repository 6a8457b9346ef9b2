"""OpenVINO on the same weights: the Hugging Face model converted with `openvino.convert_model`, in float32,
bfloat16, static int8 (`nncf.quantize`) and weight-only int8 (`nncf.compress_weights`), each under the
LATENCY and the THROUGHPUT performance hint.

What a user who wants speed on a CPU tries besides PyTorch and ONNX Runtime. The prepare step
`export-openvino` converts the model once (the sum of the last four layers as its output, like the ONNX
export) and writes the three IRs; the engines only read and compile them, so neither torch nor nncf is in
their processes. Every engine gives OpenVINO 2 threads in all (`INFERENCE_NUM_THREADS`): the LATENCY hint
makes one stream of two threads and runs the batches one after the other; the THROUGHPUT hint makes two
streams of one thread each, and the engine keeps both busy through an `AsyncInferQueue` (its model time
is then the time from the first batch submitted to the last one back, not a sum of calls).

The inference precision is always set (`INFERENCE_PRECISION_HINT`): OpenVINO's CPU default is bfloat16 on
CPUs with native bfloat16, which would make its "float32" engine a bfloat16 one there. The int8 models run
their other operations in float32, so that an int8 engine means the same thing on every CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from bench.context import THREADS, Context
from bench.engines_peers import TINY_CALL, hf_tokenizer, padded_batches, peer_fidelity, sorted_pass
from bench.measure import ModelTimer, measure_passes, rss_now
from bench.registry import engine

NEEDS = ("openvino", "nncf", "torch", "transformers", "tokenizers")  # nncf and torch: the conversion step
#: The prepare step that writes the IRs.
STEP = "export-openvino"
#: model -> IR file (in `ctx.meta["openvino_dir"]`) and what it is.
MODELS = {
    "f32": ("bert_f32.xml", "`openvino.convert_model` of the HF model (float32 weights, `compress_to_fp16=False`)"),
    "int8": ("bert_int8.xml", "`nncf.quantize` of it (static int8: activations and weights, "
                              "`ModelType.TRANSFORMER`, ranges from calibration sentences)"),
    "int8w": ("bert_int8w.xml", "`nncf.compress_weights` of it (weight-only int8, asymmetric, per channel; "
                                "computes in float32)"),
}
#: How many workload sentences calibrate the static int8 model.
CALIBRATION_SENTENCES = 32
HINTS = ("LATENCY", "THROUGHPUT")


def export_openvino(hf_dir: str, out_dir: Path, calibration: list[list[int]]) -> dict:
    """Converts the HF model at `hf_dir` to OpenVINO IRs in `out_dir` (`MODELS`): float32, static int8
    calibrated on `calibration` (token ids of whole sentences, [CLS] and [SEP] included, one sentence per
    calibration call) and weight-only int8.

    The conversion traces the PyTorch model on an example batch with padding, so that the traced graph
    keeps the attention mask (a batch without padding lets transformers drop it).
    """
    import nncf
    import openvino as ov
    import torch

    from bench.onnx_models import last_four_model

    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    with torch.inference_mode():
        model = ov.convert_model(last_four_model(hf_dir), example_input=(ids, (ids > 0).long()))
    model.outputs[0].get_tensor().set_names({"last4"})
    ov.save_model(model, out_dir / MODELS["f32"][0], compress_to_fp16=False)
    convert_s = time.perf_counter() - t
    t = time.perf_counter()
    items = [{"input_ids": np.array([seq], np.int64), "attention_mask": np.ones((1, len(seq)), np.int64)}
             for seq in calibration]
    quantized = nncf.quantize(ov.Core().read_model(out_dir / MODELS["f32"][0]), nncf.Dataset(items),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    ov.save_model(quantized, out_dir / MODELS["int8"][0], compress_to_fp16=False)
    quantize_s = time.perf_counter() - t
    t = time.perf_counter()
    compressed = nncf.compress_weights(ov.Core().read_model(out_dir / MODELS["f32"][0]))
    ov.save_model(compressed, out_dir / MODELS["int8w"][0], compress_to_fp16=False)
    return {"openvino_dir": str(out_dir), "convert_s": convert_s, "quantize_s": quantize_s,
            "compress_weights_s": time.perf_counter() - t, "calibration_sentences": len(items),
            "models": {k: how for k, (_, how) in MODELS.items()}, "openvino": ov.__version__,
            "nncf": nncf.__version__}


def compile_model(path: str, precision: str, hint: str):
    """The IR at `path` compiled for the CPU: `hint` ("LATENCY" or "THROUGHPUT"), 2 threads in all, and the
    inference precision ("f32" or "bf16") set explicitly."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": precision}
    return ov.Core().compile_model(path, "CPU", config)


def model_path(ctx: Context, model: str) -> str:
    return str(Path(ctx.meta["openvino_dir"]) / MODELS[model][0])


def bf16_unsupported() -> str | None:
    """Why OpenVINO bfloat16 is not measured on this CPU (None where it is native): without avx512_bf16 or
    AMX, OpenVINO would run it in float32 or emulate it, and the engine would not measure bfloat16. From the
    CPU's flags alone (bench.cpu's fuller answer asks TensorFlow about GPUs, which this process must not
    load)."""
    from bert_tf.model.hardware import NATIVE_BF16_FLAGS, cpu_flags

    if any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS):
        return None
    return f"skipped: this CPU has no native bfloat16 (none of {', '.join(NATIVE_BF16_FLAGS)} in /proc/cpuinfo)"


def _async_pass(ctx: Context, tokenizer, queue, timer: ModelTimer, texts=None):
    """`sorted_pass` with the batches in flight together on the compiled model's streams (THROUGHPUT hint),
    through `queue` (an `openvino.AsyncInferQueue` of the compiled model)."""
    encoded, padded = padded_batches(ctx, tokenizer, texts=texts)
    outputs = [None] * len(encoded)

    def done(request, batch):
        vectors = request.get_tensor("last4").data
        for row, k in enumerate(batch):
            outputs[k] = vectors[row, :len(encoded[k])].copy()

    queue.set_callback(done)
    t = time.perf_counter()
    for batch, ids, mask in padded:
        queue.start_async({"input_ids": ids, "attention_mask": mask}, batch)
        timer.add(0.0, len(batch), ids.shape[1], int(mask.sum()))
    queue.wait_all()
    timer.add_seconds(time.perf_counter() - t)
    return outputs


def _openvino_engine(ctx: Context, name: str, model: str, precision: str, hint: str) -> dict:
    if precision == "bf16" and bf16_unsupported():
        return {"skipped": bf16_unsupported()}
    t0 = time.perf_counter()
    import openvino as ov
    import transformers  # noqa: F401  (for the tokenizer; it does not import torch)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = compile_model(model_path(ctx, model), precision, hint)
    tokenizer = hf_tokenizer(ctx)
    request = compiled.create_infer_request()

    def call(ids, mask):  # one batch at a time (the LATENCY hint, and the fidelity vectors)
        return request.infer({"input_ids": ids, "attention_mask": mask}, share_outputs=False)["last4"]

    call(*[np.array(TINY_CALL, np.int64)] * 2)
    ready_s = time.perf_counter() - t0
    rss_ready = rss_now()
    timer = ModelTimer()
    if hint == "THROUGHPUT":
        queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        run_pass = lambda: _async_pass(ctx, tokenizer, queue, timer)  # noqa: E731
    else:
        run_pass = lambda: sorted_pass(ctx, tokenizer, call, timer)  # noqa: E731
    result = measure_passes(run_pass, ctx.runs, on_pass=timer.new_pass)
    result.update(peer_fidelity(ctx, name, tokenizer, call))
    result.update(timer.record())
    result.update({
        "threads": {"INFERENCE_NUM_THREADS": compiled.get_property("INFERENCE_NUM_THREADS"),
                    "NUM_STREAMS": compiled.get_property("NUM_STREAMS"),
                    "OPTIMAL_NUMBER_OF_INFER_REQUESTS": compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")},
        "performance_hint": hint,
        "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
        "model": MODELS[model][1], "ready_s": ready_s, "rss_ready": rss_ready, "import_s": import_s,
        "torch_imported": "torch" in sys.modules, "openvino": ov.__version__,
        "precision": {"f32": "float32", "bf16": "bfloat16"}[precision] if model == "f32" else "int8",
    })
    return result


#: engine name -> (model, inference precision, registry precision, title's description, reference).
_VARIANTS = {
    "f32": ("f32", "f32", "float32", "float32", "hf_torch_sorted"),
    "bf16": ("f32", "bf16", "bfloat16", "`INFERENCE_PRECISION_HINT` bf16", "ov_f32_latency"),
    "int8": ("int8", "f32", "int8", "static int8 (`nncf.quantize`, 32 calibration sentences)", "ov_f32_latency"),
    "int8w": ("int8w", "f32", "int8", "weight-only int8 (`nncf.compress_weights`)", "ov_f32_latency"),
}


def _register(variant: str, hint: str) -> None:
    model, precision, registry_precision, how, reference = _VARIANTS[variant]
    name = f"ov_{variant}_{hint.lower()}"
    streams = "1 stream of 2 threads" if hint == "LATENCY" else "2 streams of 1 thread, batches in flight together"
    title = f"OpenVINO {how}, {hint} hint ({streams}), sorted, padded per batch"
    engine(name, title, NEEDS, precision=registry_precision, reference=reference, steps=(STEP,))(
        lambda ctx: _openvino_engine(ctx, name, model, precision, hint))


for _variant in _VARIANTS:
    for _hint in HINTS:
        _register(_variant, _hint)
