"""What this machine computes natively: the CPU's flags, the GPU, and what oneDNN is allowed to use.

One place for the probes that `precision` (which compute dtype to use, what to warn
about) and `quantize` (which int8 kernel levels are safe) both ask. Reading the CPU
flags and the oneDNN settings needs the standard library only; the GPU question
imports TensorFlow.

TensorFlow decides from the CPU's own flags, not from `ONEDNN_MAX_CPU_ISA`, whether
it hands a bfloat16 or float16 matmul to oneDNN (AVX-512 for bfloat16; AVX512_FP16
or AMX-FP16 for float16); oneDNN then picks its kernel within the ISA cap.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time

#: CPU flags (as /proc/cpuinfo spells them) whose instructions compute bfloat16 dot products.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

#: CPU flags with which TensorFlow gives float16 matmuls to oneDNN (with AVX512BW; or AVX-NE-CONVERT alone).
NATIVE_FP16_FLAGS = ("avx512_fp16", "amx_fp16")

#: `ONEDNN_MAX_CPU_ISA` values that leave oneDNN its bfloat16 instructions (oneDNN's names, upper case).
BF16_ISAS = frozenset({"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                       "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
                       "AVX10_2_512", "AVX10_2_512_AMX_2"})

#: `ONEDNN_MAX_CPU_ISA` values that leave oneDNN its float16 instructions (oneDNN's AMX levels include
#: AVX512_CORE_FP16). Below them, on a CPU whose float16 TensorFlow hands to oneDNN, the process
#: crashes in the kernel (seen with TensorFlow 2.21: AVX2, AVX512_CORE, AVX512_CORE_BF16).
FP16_ISAS = frozenset({"ALL", "DEFAULT", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                       "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512",
                       "AVX10_2_512_AMX_2"})

#: `ONEDNN_MAX_CPU_ISA` values below AVX512_CORE: oneDNN there has no bfloat16 matmul at all, yet on a CPU
#: with AVX-512 TensorFlow still hands it bfloat16 matmuls, and the process aborts in the kernel.
NO_BF16_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI"})

#: The product `bfloat16_matmul_speedup` times in both dtypes, `(rows, in, out)`: BERT-Base's
#: feed-forward matmul over 256 tokens (1.2 GFLOP, a few milliseconds each way).
SPEED_PROBE_SHAPE = (256, 768, 3072)

#: CPU flags whose instructions sum u8 x s8 products in int32 directly (VNNI, AMX-INT8).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

#: `ONEDNN_MAX_CPU_ISA` values that leave oneDNN without VNNI: its u8 x s8 kernels there add pairs of
#: products in saturating int16 (`vpmaddubsw`), which 8-bit inputs times 8-bit kernels can overflow.
NO_VNNI_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX512_CORE"})


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


def onednn_settings(environ=None) -> tuple[bool, str]:
    """`(oneDNN on, ONEDNN_MAX_CPU_ISA upper-cased or "")` as TensorFlow reads them from `environ`
    (default `os.environ`)."""
    environ = os.environ if environ is None else environ
    enabled = environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")
    return enabled, environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()


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


def detect_hardware(flags: frozenset[str] | None = None, environ=None) -> Hardware:
    """What the CPU flags, TensorFlow and oneDNN say about bfloat16 here.

    Args:
        flags: CPU flags (default: `cpu_flags()`); tests pass their own.
        environ: the environment (default `os.environ`), for `TF_ENABLE_ONEDNN_OPTS` and
            `ONEDNN_MAX_CPU_ISA`.
    """
    gpu = gpu_capability()
    if gpu is not None:
        return Hardware(gpu >= (8, 0), gpu, f"a GPU of compute capability {gpu[0]}.{gpu[1]}")
    flags = cpu_flags() if flags is None else flags
    found = [f for f in NATIVE_BF16_FLAGS if f in flags]
    arm = platform.machine().lower() in ("aarch64", "arm64")
    if arm and "bf16" in flags:
        found.append("bf16")
    if not found:
        return Hardware(False, None, "this CPU has no native bfloat16 (no AVX512_BF16 or AMX-BF16 in its flags)")
    onednn, isa = onednn_settings(environ)
    if not onednn:
        return Hardware(False, None, f"the CPU has {found[0].upper()} but TF_ENABLE_ONEDNN_OPTS=0 turns off the "
                                     f"oneDNN kernels that use it")
    if isa and not arm and isa not in BF16_ISAS:
        return Hardware(False, None, f"the CPU has {found[0].upper()} but ONEDNN_MAX_CPU_ISA={isa} keeps oneDNN "
                                     f"from using it")
    return Hardware(True, None, f"the CPU has {found[0].upper()}")


def onednn_computes_float16(flags: frozenset[str] | None = None) -> bool:
    """Whether TensorFlow hands float16 matmuls to oneDNN on a CPU with `flags`: AVX512BW with
    AVX512_FP16 or AMX-FP16 (or AVX-NE-CONVERT). Elsewhere it runs its own, emulated, kernels and
    logs one C++ error line about it (which bert_tf keeps off the terminal, `bert_tf.runtime`)."""
    flags = cpu_flags() if flags is None else flags
    return ("avx512bw" in flags and any(f in flags for f in NATIVE_FP16_FLAGS)) or "avx_ne_convert" in flags


def float16_missing(flags: frozenset[str] | None = None, environ=None) -> str | None:
    """None where oneDNN computes float16 matmuls natively here, else why not (one clause)."""
    if not onednn_computes_float16(flags):
        return "this CPU has no float16 matmul instructions (no AVX512_FP16 or AMX-FP16 in its flags)"
    if not onednn_settings(environ)[0]:
        return "TF_ENABLE_ONEDNN_OPTS=0 turns off the oneDNN kernels that compute float16"
    return None


def float16_has_no_kernel(flags: frozenset[str] | None = None, environ=None) -> str | None:
    """The `ONEDNN_MAX_CPU_ISA` value under which a float16 matmul would crash the process, else None:
    a CPU whose float16 TensorFlow hands to oneDNN, with oneDNN held below its float16 instructions."""
    onednn, isa = onednn_settings(environ)
    if onednn and isa and isa not in FP16_ISAS and onednn_computes_float16(flags):
        return isa
    return None


def int8_has_vnni(flags: frozenset[str] | None = None, environ=None) -> bool:
    """True when oneDNN's int8 matmuls here sum u8 x s8 products exactly (VNNI or AMX-INT8, not capped
    off by `ONEDNN_MAX_CPU_ISA`); without them, `quantize.QuantizedDense` keeps its kernels to 7 bits so
    that no int16 pair sum can saturate."""
    flags = cpu_flags() if flags is None else flags
    _, isa = onednn_settings(environ)
    return any(f in flags for f in VNNI_FLAGS) and isa not in NO_VNNI_ISAS


def bfloat16_has_no_kernel(flags: frozenset[str] | None = None, environ=None) -> str | None:
    """The `ONEDNN_MAX_CPU_ISA` value under which a bfloat16 matmul would abort the process, else None:
    an AVX-512 CPU (so TensorFlow hands bfloat16 matmuls to oneDNN) whose oneDNN is held below
    AVX512_CORE (so it has no kernel for them). A CPU without AVX-512 gets TensorFlow's own kernels."""
    onednn, isa = onednn_settings(environ)
    if onednn and isa in NO_BF16_ISAS and "avx512f" in (cpu_flags() if flags is None else flags):
        return isa
    return None


@functools.lru_cache(maxsize=None)
def bfloat16_matmul_speedup(repeats: int = 5) -> float:
    """How many times faster a bfloat16 matmul runs than a float32 one on this CPU (above 1: faster).

    Native bfloat16 is not always the faster one: AMD's Zen 4 and Zen 5 run oneDNN's bfloat16
    matmuls at about 1.8x and 2.4x+ their float32 speed, but an Intel Xeon whose AMX is hidden (a
    virtual machine that lists AVX512_BF16 and no AMX) runs them at about 0.58x (measured quiet): one `vdpbf16ps`
    port against two float32 FMA ports, plus the conversions. Flags cannot tell these apart, so
    the product is timed: `SPEED_PROBE_SHAPE` in each dtype, alternately, `repeats` times after a
    warm-up, the fastest of each (a busy machine slows both alike; the margins are wide). Measured
    once per process (about 0.2 s), on the CPU, eagerly. 0.0 where `ONEDNN_MAX_CPU_ISA` leaves oneDNN
    no bfloat16 kernel on an AVX-512 CPU: a bfloat16 matmul would abort the process there.
    """
    if bfloat16_has_no_kernel() is not None:
        return 0.0
    from bert_tf.runtime import tf

    rows, width, out = SPEED_PROBE_SHAPE
    with tf.init_scope(), tf.device("/CPU:0"):
        a = tf.random.stateless_uniform([rows, width], seed=[0, 1], minval=-1.0, maxval=1.0)
        w = tf.random.stateless_uniform([width, out], seed=[0, 2], minval=-1.0, maxval=1.0)
        operands = {"float32": (a, w), "bfloat16": (tf.cast(a, tf.bfloat16), tf.cast(w, tf.bfloat16))}
        best = {name: float("inf") for name in operands}
        for i in range(repeats + 1):
            for name, (x, y) in operands.items():
                started = time.perf_counter()
                tf.matmul(x, y)  # eager CPU ops return when computed
                if i:  # the first round warms oneDNN's kernels up
                    best[name] = min(best[name], time.perf_counter() - started)
    return best["float32"] / best["bfloat16"]


def gpu_capability() -> tuple[int, int] | None:
    """The first GPU's compute capability, or None without one (asks TensorFlow)."""
    from bert_tf.runtime import tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return tuple(details.get("compute_capability") or (0, 0))
