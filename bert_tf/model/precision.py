"""Which number format the encoder computes in: the `precision` option.

* `"float32"` (the default): every operation in float32, matching the reference
  implementation to float32 rounding.
* `"bfloat16"`: mixed precision. The matmuls (dense and attention) and GELU run in
  bfloat16 with float32 accumulation inside the kernels; the residual stream,
  LayerNorm, softmax and everything after the encoder (layer sums, pooling,
  sentence vectors) stay float32, so the vectors returned are float32 and within
  bfloat16's rounding of the float32 ones.
* `"float16"`: the same with float16, for GPUs without bfloat16.
* `"int8"`: dynamic int8 quantization of the six dense layers of each block
  (`quantize.py`), as ONNX Runtime's `quantize_dynamic` does it but with one
  kernel scale per column and one input range per token: kernels rounded once to
  int8, each token's input to uint8 over its own range (so a text's vectors do
  not depend on its batch), products summed in int32 by oneDNN (VNNI
  instructions where the CPU has them); attention, LayerNorm, the residual stream
  and everything after the encoder stay float32; what a LayerNorm writes is smoothed
  first (`quantize.py`). The fastest mode on a CPU, and the least faithful (a trained
  model's token vectors on natural text at about 0.9996 cosine to float32, 0.9986
  at worst: within the fidelity bar). Never chosen by `"auto"`; CPU only.
* `"int8-litert"`: int8 run by LiteRT, TensorFlow Lite's interpreter, on XNNPACK's kernels
  (`litert.py`): each kernel column and each token's input rounded to int8 on its own, as
  in `"int8"` but by other kernels, so its vectors are its own vector space. The fastest mode
  on a CPU, on a short text most of all (a query about 2.5 times `"bfloat16"`'s speed on
  BERT-Base, an AMD Zen 4), a little less faithful than `"int8"` (on the real model's natural
  sentences 0.99958 mean and 0.99846 worst token cosine to float32: within the bar). The
  model is converted once per checkpoint (about half a minute for BERT-Base) and cached. It
  runs outside TensorFlow's graphs, so it cannot be exported or used as a Keras layer.
* `"auto"`: bfloat16 where the hardware computes it natively and faster (a CPU with
  AVX512_BF16 or AMX-BF16 and TensorFlow's oneDNN kernels, where a bfloat16 matmul
  times at least `AUTO_BFLOAT16_MIN_SPEEDUP` the float32 speed; or a GPU of compute
  capability 8.0 or later), float16 on an older GPU, float32 elsewhere. One log line
  says which was chosen and why.

On a CPU without those instructions bfloat16 still gives the right numbers, but
oneDNN emulates it and it runs slower than float32: asking for it says so once, and
so does float16 on a CPU without AVX512_FP16 or AMX-FP16. Native is not always faster
either (an Intel Xeon with AMX hidden runs bfloat16 matmuls at about half its float32
speed), so on a CPU with native bfloat16 `"auto"` and `"bfloat16"` time one matmul in
each dtype first (`hardware.bfloat16_matmul_speedup`, once per process): `"auto"` then
keeps float32, and `"bfloat16"` warns once. The CPU and oneDNN probes are
`bert_tf.model.hardware`'s.
"""

from __future__ import annotations

from bert_tf.errors import InvalidValue
from bert_tf.logs import once
from bert_tf.model.hardware import (Hardware, bfloat16_has_no_kernel, bfloat16_matmul_speedup, detect_hardware,
                                    float16_has_no_kernel, float16_missing)

PRECISIONS = ("float32", "bfloat16", "float16", "int8", "int8-litert", "auto")

#: How much faster than float32 a bfloat16 matmul must run on a CPU for `"auto"` to choose
#: bfloat16, which costs fidelity (cosine 0.99999 instead of exact): it must pay for it.
AUTO_BFLOAT16_MIN_SPEEDUP = 1.1


def resolve_precision(precision: str, hardware: Hardware | None = None, *,
                      bfloat16_speedup: float | None = None) -> str:
    """The compute dtype name for a `precision` option value: "float32", "bfloat16", "float16", "int8" or
    "int8-litert".

    Logs the choice of `"auto"` once per process and reason; warns once when bfloat16,
    float16 or int8 will be emulated (slower than float32), naming the missing CPU feature
    or kernel, and when native bfloat16 measures slower than float32.

    Args:
        precision: one of `PRECISIONS`.
        hardware: what the machine offers (default: `detect_hardware()`, this machine's).
        bfloat16_speedup: a CPU's bfloat16 matmul speed over float32's. Default: measured here
            (`hardware.bfloat16_matmul_speedup`) when `hardware` is this machine's and its CPU
            has native bfloat16; with a `hardware` passed in, the flags alone decide.

    Raises:
        ValueError: `precision` is not one of `PRECISIONS`, int8 on a GPU, or bfloat16 or float16 where
            `ONEDNN_MAX_CPU_ISA` leaves oneDNN without the kernel TensorFlow hands it.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InvalidValue(f"precision must be one of {', '.join(map(repr, PRECISIONS))}; got {precision!r}")
    if precision == "float32":
        return precision
    if precision == "int8-litert":
        from bert_tf.model import litert

        why = litert.available()
        if why:
            raise InvalidValue(f"precision='int8-litert' cannot run here: {why}; use precision='int8'")
        return precision
    if hardware is None:
        hardware = detect_hardware()
        if (bfloat16_speedup is None and hardware.gpu is None and hardware.native_bf16
                and precision in ("auto", "bfloat16")):
            bfloat16_speedup = bfloat16_matmul_speedup()
    slow_bf16 = bfloat16_speedup is not None and bfloat16_speedup < AUTO_BFLOAT16_MIN_SPEEDUP
    if precision == "int8":
        check_int8_runs(hardware)
        return precision
    if precision == "bfloat16" and hardware.gpu is None:
        check_bfloat16_runs()
    if precision == "float16" and hardware.gpu is None:
        check_float16_runs()
    if precision == "auto":
        if hardware.gpu is not None:
            chosen = "bfloat16" if hardware.native_bf16 else "float16"
            reason = hardware.reason
        else:
            chosen = "bfloat16" if hardware.native_bf16 and not slow_bf16 else "float32"
            reason = hardware.reason + ("" if bfloat16_speedup is None or not hardware.native_bf16 else
                                        f", where a bfloat16 matmul runs at {bfloat16_speedup:.2f}x the float32 speed")
        once("announce", f"auto:{chosen}:{hardware.reason}", "precision='auto' chose %s: %s", chosen, reason)
        return chosen
    if hardware.gpu is None:
        if precision == "float16":
            why = float16_missing()
        else:
            why = None if hardware.native_bf16 else hardware.reason
        if why:
            once("warning", f"slow:{precision}:{why}", "precision=%r will be slower than float32 here: %s, so it "
                 "is emulated; the results are still correct. Use precision='auto' to get float32 on such machines.",
                 precision, why)
        elif precision == "bfloat16" and bfloat16_speedup is not None and bfloat16_speedup < 1.0:
            # Only where it is slower: from 1.0x to AUTO_BFLOAT16_MIN_SPEEDUP, "auto" keeps float32 for its
            # exact numbers, but bfloat16 asked for by name is not slower.
            once("warning", "slow:bfloat16:measured", "precision='bfloat16' will be slower than float32 here: %s, "
                 "but a bfloat16 matmul runs at %.2fx the float32 speed on it (no AMX, or AMX hidden from this "
                 "machine); the results are correct. Use precision='auto' to get the faster one, float32 here.",
                 hardware.reason, bfloat16_speedup)
    return precision


#: Precisions whose encoder runs outside TensorFlow's graph (`litert.py`): nothing saved as a graph can hold it.
OUTSIDE_GRAPH_PRECISIONS = ("int8-litert",)


def check_in_graph(precision: str, what: str) -> None:
    """Refuses a precision that runs outside TensorFlow's graph where `what` (e.g. "a SavedModel export")
    must hold the whole model in one.

    Raises:
        ValueError: saying what to use instead.
    """
    if precision in OUTSIDE_GRAPH_PRECISIONS:
        raise InvalidValue(f"precision={precision!r} runs its encoder in LiteRT's interpreter, outside TensorFlow's "
                           f"graph, so {what} cannot hold it; use precision='int8' (the same idea in TensorFlow) "
                           f"or 'float32'")


def check_bfloat16_runs(flags: frozenset[str] | None = None, environ=None) -> None:
    """Refuses bfloat16 where it would abort the process: an AVX-512 CPU (so TensorFlow hands bfloat16
    matmuls to oneDNN) whose oneDNN `ONEDNN_MAX_CPU_ISA` holds below AVX512_CORE (so oneDNN has no
    kernel for them). A CPU that really lacks AVX-512 gets TensorFlow's own, emulated, kernels.

    Raises:
        ValueError: saying what to change.
    """
    isa = bfloat16_has_no_kernel(flags, environ)
    if isa is not None:
        raise InvalidValue(f"precision='bfloat16' cannot run with ONEDNN_MAX_CPU_ISA={isa} on this AVX-512 CPU: "
                           f"TensorFlow gives bfloat16 matmuls to oneDNN, which that setting leaves without a kernel "
                           f"for them; unset ONEDNN_MAX_CPU_ISA (or set it to AVX512_CORE or above), set "
                           f"TF_ENABLE_ONEDNN_OPTS=0, or use precision='float32' or 'auto'")


def check_float16_runs(flags: frozenset[str] | None = None, environ=None) -> None:
    """Refuses float16 where it would crash the process: a CPU with AVX512_FP16 or AMX-FP16 (so
    TensorFlow hands float16 matmuls to oneDNN) whose `ONEDNN_MAX_CPU_ISA` holds oneDNN below its
    float16 instructions. Elsewhere TensorFlow's own, emulated, kernels run.

    Raises:
        ValueError: saying what to change.
    """
    isa = float16_has_no_kernel(flags, environ)
    if isa is not None:
        raise InvalidValue(f"precision='float16' cannot run with ONEDNN_MAX_CPU_ISA={isa} on this CPU: TensorFlow "
                           f"gives float16 matmuls to oneDNN, which that setting leaves without a kernel for them; "
                           f"unset ONEDNN_MAX_CPU_ISA (or set it to AVX512_CORE_FP16 or above), set "
                           f"TF_ENABLE_ONEDNN_OPTS=0, or use precision='float32' or 'auto'")


def check_int8_runs(hardware: Hardware, onednn_int8: bool | None = None) -> None:
    """Refuses int8 on a GPU (its kernels are oneDNN's, CPU only); warns once where TensorFlow has
    no oneDNN int8 kernel, so the int8 arithmetic is emulated in float32 (correct, slower).

    Args:
        hardware: `detect_hardware()`'s answer.
        onednn_int8: whether oneDNN's int8 matmul runs here (default: asks TensorFlow,
            `quantize.onednn_int8_available`).

    Raises:
        ValueError: on a GPU machine, saying what to use instead.
    """
    if hardware.gpu is not None:
        raise InvalidValue("precision='int8' uses oneDNN's CPU int8 kernels, and this machine computes on a GPU; "
                           "use precision='auto' (bfloat16 or float16 there) or 'float32'")
    if onednn_int8 is None:
        from bert_tf.model.quantize import onednn_int8_available

        onednn_int8 = onednn_int8_available()
    if not onednn_int8:
        once("warning", "slow:int8", "precision='int8' will be slower than float32 here: this TensorFlow has no "
             "oneDNN int8 matmul kernel (_QuantizedMatMul), so the int8 arithmetic is emulated in float32; the "
             "results are the same.")
