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
  kernel scale per column: kernels rounded once to int8, each call's input to
  uint8 over its own range, products summed in int32 by oneDNN (VNNI
  instructions where the CPU has them); attention, LayerNorm, the residual stream
  and everything after the encoder stay float32. The fastest mode on a CPU, and
  the least faithful (token vectors of a trained model at about 0.995 cosine to
  float32). Never chosen by `"auto"`; CPU only.
* `"auto"`: bfloat16 where the hardware computes it natively (a CPU with
  AVX512_BF16 or AMX-BF16 and TensorFlow's oneDNN kernels, or a GPU of compute
  capability 8.0 or later), float16 on an older GPU, float32 elsewhere. One log line
  says which was chosen and why.

On a CPU without those instructions bfloat16 still gives the right numbers, but
oneDNN emulates it and it runs slower than float32: asking for it says so once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform

logger = logging.getLogger("bert_tf")

PRECISIONS = ("float32", "bfloat16", "float16", "int8", "auto")

#: CPU flags (as /proc/cpuinfo spells them) whose instructions compute bfloat16 dot products.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

#: `ONEDNN_MAX_CPU_ISA` values that leave oneDNN its bfloat16 instructions (oneDNN's names, upper case).
_BF16_ISAS = {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2"}

#: `ONEDNN_MAX_CPU_ISA` values below AVX512_CORE: oneDNN there has no bfloat16 matmul at all, yet on a CPU
#: with AVX-512 TensorFlow still hands it bfloat16 matmuls, and the process aborts in the kernel.
_NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI"}

#: CPU flags whose instructions sum u8 x s8 products in int32 directly (VNNI, AMX-INT8).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

#: `ONEDNN_MAX_CPU_ISA` values that leave oneDNN without VNNI: its u8 x s8 kernels there add pairs of
#: products in saturating int16 (`vpmaddubsw`), which 8-bit inputs times 8-bit kernels can overflow.
_NO_VNNI_ISAS = {"SSE41", "AVX", "AVX2", "AVX512_CORE"}

_warned: set[str] = set()


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU in `path` (empty where the file does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86, ARM
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the machine offers for bfloat16.

    Attributes:
        native_bf16: True when the CPU computes bfloat16 dot products and oneDNN may use them.
        gpu: the first GPU's compute capability `(major, minor)`, or None without a GPU.
        reason: one sentence saying why, naming the CPU feature found or missing.
    """

    native_bf16: bool
    gpu: tuple[int, int] | None
    reason: str


def _onednn_settings(environ) -> tuple[bool, str]:
    """`(oneDNN on, ONEDNN_MAX_CPU_ISA upper-cased or "")` as TensorFlow reads them from `environ`."""
    enabled = environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return enabled, environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()


def detect_hardware(flags: frozenset[str] | None = None, environ=None) -> Hardware:
    """What the CPU flags, TensorFlow and oneDNN say about bfloat16 here.

    Args:
        flags: CPU flags (default: `cpu_flags()`); tests pass their own.
        environ: the environment (default `os.environ`), for `TF_ENABLE_ONEDNN_OPTS` and
            `ONEDNN_MAX_CPU_ISA`.
    """
    environ = os.environ if environ is None else environ
    gpu = _gpu_capability()
    if gpu is not None:
        return Hardware(gpu >= (8, 0), gpu, f"a GPU of compute capability {gpu[0]}.{gpu[1]}")
    flags = cpu_flags() if flags is None else flags
    found = [f for f in NATIVE_BF16_FLAGS if f in flags]
    arm = platform.machine().lower() in ("aarch64", "arm64")
    if arm and "bf16" in flags:
        found.append("bf16")
    if not found:
        return Hardware(False, None, "this CPU has no native bfloat16 (no AVX512_BF16 or AMX-BF16 in its flags)")
    onednn, isa = _onednn_settings(environ)
    if not onednn:
        return Hardware(False, None, f"the CPU has {found[0].upper()} but TF_ENABLE_ONEDNN_OPTS=0 turns off the "
                                     f"oneDNN kernels that use it")
    if isa and not arm and isa not in _BF16_ISAS:
        return Hardware(False, None, f"the CPU has {found[0].upper()} but ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN "
                                     f"from using it")
    return Hardware(True, None, f"the CPU has {found[0].upper()}")


def int8_has_vnni(flags: frozenset[str] | None = None, environ=None) -> bool:
    """True when oneDNN's int8 matmuls here sum u8 x s8 products exactly (VNNI or AMX-INT8, not capped
    off by `ONEDNN_MAX_CPU_ISA`); without them, `quantize.QuantizedDense` keeps its kernels to 7 bits so
    that no int16 pair sum can saturate."""
    flags = cpu_flags() if flags is None else flags
    _, isa = _onednn_settings(os.environ if environ is None else environ)
    return any(f in flags for f in VNNI_FLAGS) and isa not in _NO_VNNI_ISAS


def _gpu_capability() -> tuple[int, int] | None:
    from bert_tf.runtime import tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return tuple(details.get("compute_capability") or (0, 0))


def resolve_precision(precision: str, hardware: Hardware | None = None) -> str:
    """The compute dtype name for a `precision` option value: "float32", "bfloat16", "float16" or "int8".

    Logs the choice of `"auto"` once per process and reason; warns once when bfloat16,
    float16 or int8 will be emulated (slower than float32), naming the missing CPU feature
    or kernel.

    Raises:
        ValueError: `precision` is not one of `PRECISIONS`, or int8 on a GPU.
    """
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}; got {precision!r}")
    if precision == "float32":
        return precision
    hardware = detect_hardware() if hardware is None else hardware
    if precision == "int8":
        check_int8_runs(hardware)
        return precision
    if precision == "bfloat16" and hardware.gpu is None:
        check_bfloat16_runs()
    if precision == "auto":
        if hardware.gpu is not None:
            chosen = "bfloat16" if hardware.native_bf16 else "float16"
        else:
            chosen = "bfloat16" if hardware.native_bf16 else "float32"
        _once("announce", f"auto:{chosen}:{hardware.reason}", "precision='auto' chose %s: %s", chosen,
              hardware.reason)
        return chosen
    if hardware.gpu is None and (precision == "float16" or not hardware.native_bf16):
        why = ("the CPU has no float16 matmul instructions oneDNN uses" if precision == "float16"
               else hardware.reason)
        _once("warning", f"slow:{precision}:{why}", "precision=%r will be slower than float32 here: %s, so it is "
              "emulated; the results are still correct. Use precision='auto' to get float32 on such machines.",
              precision, why)
    return precision


def check_bfloat16_runs(flags: frozenset[str] | None = None, environ=None) -> None:
    """Refuses bfloat16 where it would abort the process: an AVX-512 CPU (so TensorFlow hands bfloat16
    matmuls to oneDNN) whose oneDNN `ONEDNN_MAX_CPU_ISA` holds below AVX512_CORE (so oneDNN has no
    kernel for them). A CPU that really lacks AVX-512 gets TensorFlow's own, emulated, kernels.

    Raises:
        ValueError: saying what to change.
    """
    onednn, isa = _onednn_settings(os.environ if environ is None else environ)
    if not onednn or isa not in _NO_BF16_ISAS:
        return
    if "avx512f" in (cpu_flags() if flags is None else flags):
        raise ValueError(f"precision='bfloat16' cannot run with ONEDNN_MAX_CPU_ISA={isa} on this AVX-512 CPU: "
                         f"TensorFlow gives bfloat16 matmuls to oneDNN, which that setting leaves without a kernel "
                         f"for them; unset ONEDNN_MAX_CPU_ISA (or set it to AVX512_CORE or above), set "
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
        raise ValueError("precision='int8' uses oneDNN's CPU int8 kernels, and this machine computes on a GPU; "
                         "use precision='auto' (bfloat16 or float16 there) or 'float32'")
    if onednn_int8 is None:
        from bert_tf.model.quantize import onednn_int8_available

        onednn_int8 = onednn_int8_available()
    if not onednn_int8:
        _once("warning", "slow:int8", "precision='int8' will be slower than float32 here: this TensorFlow has no "
              "oneDNN int8 matmul kernel (_QuantizedMatMul), so the int8 arithmetic is emulated in float32; the "
              "results are the same.")


def _once(level: str, key: str, message: str, *args) -> None:
    from bert_tf import logs

    if key not in _warned:
        _warned.add(key)
        (logs.announce if level == "announce" else getattr(logger, level))(message, *args)
