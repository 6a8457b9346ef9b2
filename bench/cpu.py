"""What the CPU offers the engines: its flags, whether it computes bfloat16 natively, and what oneDNN says.

The bfloat16 and int8 engines run on any x86 CPU; where the hardware lacks the instructions,
oneDNN and PyTorch convert in software and those engines are slower than float32, not wrong.
The report says which case it measured, from the flags and from oneDNN's own choice of kernel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: The flags the report records (as /proc/cpuinfo spells them).
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8",
             "amx_tile")
#: Any of these and int8 dot products (ONNX Runtime's quantized matmuls) run in one instruction.
NATIVE_INT8 = ("avx512_vnni", "avx_vnni", "amx_int8")

# A bf16 and a float32 matmul under ONEDNN_VERBOSE, in a fresh process: oneDNN prints its ISA
# when it initialises and each primitive's kernel as it runs.
_ONEDNN_PROBE = """
from bert_tf.runtime import tf
a = tf.random.normal([256, 256])
tf.matmul(tf.cast(a, tf.bfloat16), tf.cast(a, tf.bfloat16)).numpy()
tf.matmul(a, a).numpy()
"""


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """All the flags of the first CPU in `cpuinfo` (empty where the file is missing or has none)."""
    from bert_tf.model.hardware import cpu_flags as library_flags

    return sorted(library_flags(cpuinfo))


#: The /proc/cpuinfo fields that name the CPU (of the first CPU listed), as `cpu_identity` keys.
_IDENTITY_FIELDS = {"vendor_id": "vendor", "cpu family": "family", "model": "model", "stepping": "stepping",
                    "model name": "model_name"}


def cpu_identity(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """Vendor, family, model number, stepping and model name of the first CPU in `cpuinfo` (what it has of
    them): the kernels that were at the limit on one CPU family are not on the next, so the report names it.
    AMD's family 25 is Zen 3 and Zen 4, 26 is Zen 5; Intel's server parts are family 6 (model 143: Sapphire
    Rapids, 207: Emerald Rapids, 173: Granite Rapids)."""
    out = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first CPU's block
                key, _, value = line.partition(":")
                if key.strip() in _IDENTITY_FIELDS:
                    out[_IDENTITY_FIELDS[key.strip()]] = value.strip()
    except OSError:
        pass
    return out


def describe_cpu(identity: dict) -> str:
    """One line for the report: "AMD EPYC 9R45 (AuthenticAMD, family 26, model 2, stepping 1)"."""
    name = identity.get("model_name", "unknown CPU")
    parts = [identity["vendor"]] if "vendor" in identity else []
    parts += [f"{key} {identity[key]}" for key in ("family", "model", "stepping") if key in identity]
    return f"{name} ({', '.join(parts)})" if parts else name


def bf16_support(flags: list[str]) -> dict:
    """Whether bfloat16 (and int8) dot products are native on a CPU with `flags`, and why: the
    library's own decision (`bert_tf.model.hardware.detect_hardware`, what precision="auto" uses),
    so the bench and the library cannot disagree."""
    from bert_tf.model.hardware import detect_hardware

    hardware = detect_hardware(frozenset(flags))
    int8 = [f for f in NATIVE_INT8 if f in flags]
    why = (f"native: {hardware.reason}" if hardware.native_bf16 else
           f"emulated: {hardware.reason}; the bfloat16 engines are expected to be slower than float32")
    return {"native_bf16": hardware.native_bf16, "bf16": why, "native_int8": bool(int8),
            "int8": f"native ({', '.join(int8)})" if int8 else f"no int8 dot-product instructions "
                                                                 f"({', '.join(NATIVE_INT8)})"}


def parse_onednn_verbose(text: str) -> dict:
    """oneDNN's ISA line and the kernels of the probe's matmuls, from ONEDNN_VERBOSE output."""
    out = {}
    for line in text.splitlines():
        fields = line.split(",")
        if "info" in fields and any(f.startswith("isa:") for f in fields):
            out["isa"] = next(f for f in fields if f.startswith("isa:")).removeprefix("isa:")
        elif "exec" in fields and "cpu" in fields:
            # onednn_verbose,v1,primitive,exec,cpu,<primitive>,<implementation>,...,<memory descriptors>,...
            i = fields.index("cpu")
            kind = "bf16" if re.search(r"\bsrc[_:]bf16", line) else "f32" if re.search(r"\bsrc[_:]f32", line) else None
            if kind and f"matmul_{kind}" not in out:
                out[f"matmul_{kind}"] = fields[i + 2] or fields[i + 1]  # the implementation, else the primitive
    return out


def onednn_info(env: dict) -> dict:
    """What TensorFlow's oneDNN reports on this CPU (its ISA, and the kernels a bf16 and a float32 matmul
    run), from a fresh process with ONEDNN_VERBOSE=1; {"error": ...} where it says nothing."""
    try:
        proc = subprocess.run([sys.executable, "-c", _ONEDNN_PROBE], env={**env, "ONEDNN_VERBOSE": "1"},
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": repr(e)}
    parsed = parse_onednn_verbose(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        parsed["error"] = f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}"
    elif not parsed:
        parsed["error"] = ("oneDNN printed nothing (TF_ENABLE_ONEDNN_OPTS="
                           f"{env.get('TF_ENABLE_ONEDNN_OPTS', os.environ.get('TF_ENABLE_ONEDNN_OPTS'))})")
    return parsed

