"""The machine's float32 matmul peak in each library, on `MATMUL_SHAPES`, in the same run as the models."""

from __future__ import annotations

import os

from context import MATMUL_SHAPES, THREADS, Context
from measure import best_matmul, numpy_matmul, tf_threads
from registry import engine


@engine("matmul_numpy", "numpy float32 matmul (OpenBLAS)", ("numpy",), "matmul")
def matmul_numpy(ctx: Context) -> dict:
    return {"threads": {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
            "matmul": [numpy_matmul(*shape) for shape in MATMUL_SHAPES]}


@engine("matmul_tf", "TensorFlow float32 matmul (bert_tf's TF settings)", ("tensorflow",), "matmul")
def matmul_tf(ctx: Context) -> dict:
    from bert_tf.runtime import tf

    out = {"threads": tf_threads(tf), "matmul": []}
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    for m, k, n in MATMUL_SHAPES:
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        out["matmul"].append(best_matmul(lambda: matmul(a, b).numpy(), m, k, n))
    return out


@engine("matmul_torch", "PyTorch float32 matmul", ("torch",), "matmul")
def matmul_torch(ctx: Context) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    out = {"threads": {"torch.get_num_threads": torch.get_num_threads()}, "matmul": []}
    for m, k, n in MATMUL_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        with torch.inference_mode():
            out["matmul"].append(best_matmul(lambda: a @ b, m, k, n))
    return out
