"""The machine's matmul peak in each library, on `MATMUL_SHAPES`, in the same run as the models: float32, and
bfloat16 (the ceiling of the bfloat16 engines; on a CPU without native bfloat16 it shows the emulation's cost)."""

from __future__ import annotations

import os

from bench.context import MATMUL_SHAPES, THREADS, Context
from bench.measure import best_matmul, numpy_matmul, tf_threads
from bench.registry import engine


@engine("matmul_numpy", "numpy float32 matmul (OpenBLAS)", ("numpy",), "matmul")
def matmul_numpy(ctx: Context) -> dict:
    return {"threads": {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
            "matmul": [numpy_matmul(*shape) for shape in MATMUL_SHAPES]}


def _tf_matmul(dtype: str) -> dict:
    from bert_tf.runtime import tf

    out = {"threads": tf_threads(tf), "dtype": dtype, "matmul": []}
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    for m, k, n in MATMUL_SHAPES:
        a, b = (tf.cast(tf.random.normal(shape), dtype) for shape in ([m, k], [k, n]))
        # .numpy() of the result is part of the call, as for every engine; a bfloat16 result is half the bytes.
        out["matmul"].append(best_matmul(lambda: matmul(a, b).numpy(), m, k, n))
    return out


def _torch_matmul(dtype: str) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    out = {"threads": {"torch.get_num_threads": torch.get_num_threads()}, "dtype": dtype, "matmul": []}
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
        with torch.inference_mode():
            out["matmul"].append(best_matmul(lambda: a @ b, m, k, n))
    return out


@engine("matmul_tf", "TensorFlow float32 matmul (bert_tf's TF settings)", ("tensorflow",), "matmul")
def matmul_tf(ctx: Context) -> dict:
    return _tf_matmul("float32")


@engine("matmul_torch", "PyTorch float32 matmul", ("torch",), "matmul")
def matmul_torch(ctx: Context) -> dict:
    return _torch_matmul("float32")


@engine("matmul_tf_bf16", "TensorFlow bfloat16 matmul (bert_tf's TF settings): the bfloat16 peak", ("tensorflow",),
        "matmul", precision="bfloat16")
def matmul_tf_bf16(ctx: Context) -> dict:
    return _tf_matmul("bfloat16")


@engine("matmul_torch_bf16", "PyTorch bfloat16 matmul", ("torch",), "matmul", precision="bfloat16")
def matmul_torch_bf16(ctx: Context) -> dict:
    return _torch_matmul("bfloat16")
