"""oneDNN kernels that TensorFlow registers but gives no Python function: built here by name.

TensorFlow's x86 builds carry oneDNN kernels that its graph rewriter normally inserts
itself (`_QuantizedMatMul`, `_MklLayerNorm`). The encoder asks for two of them
directly, where the rewriter would not find the pattern: the int8 matmul
(`quantize.py`) and LayerNorm in one pass (`layer_norm`). `run_op` is the one
place that turns an op name, inputs and attributes into a graph node, or runs it
eagerly. Builds without oneDNN lack the kernels; `kernel_runs` asks TensorFlow
once whether one is there, so callers can keep a plain TensorFlow path.
"""

from __future__ import annotations

import functools
from typing import Callable

from bert_tf.runtime import tf


def _attr_value(value):
    """A Python attribute value as the `AttrValue` a graph node holds: a dtype enum (int), a list of
    dtype enums or of byte strings, a bool, a float or bytes."""
    AttrValue = tf.compat.v1.AttrValue
    if isinstance(value, list) and (not value or isinstance(value[0], int)):
        return AttrValue(list=AttrValue.ListValue(type=value))
    if isinstance(value, list):
        return AttrValue(list=AttrValue.ListValue(s=value))
    if isinstance(value, bool):
        return AttrValue(b=value)
    if isinstance(value, float):
        return AttrValue(f=value)
    if isinstance(value, bytes):
        return AttrValue(s=value)
    return AttrValue(type=value)


def run_op(op_type: str, inputs: list, attrs: dict, out_types: list, *, name: str,
           differentiable: bool = False) -> list:
    """The outputs of TensorFlow op `op_type` on `inputs`: a node in the graph being built, or, eagerly,
    the op run now (some oneDNN kernels, `_MklLayerNorm`'s, are found only in a graph).

    Args:
        op_type: the registered op name, e.g. "_QuantizedMatMul".
        inputs: tensors.
        attrs: attribute name to value: a dtype as its enum (`tf.float32.as_datatype_enum`), a list
            of those, a list of byte strings, a bool, a float or bytes.
        out_types: the outputs' dtypes.
        name: the node's name in a graph (op names with a leading underscore are not valid names).
        differentiable: tell a recording `tf.GradientTape` about the op (which TensorFlow's generated
            op functions do, and a node built by name does not), so that the gradient registered for
            `op_type` (`register_gradient`) is used.
    """
    from tensorflow.python.eager import context, execute

    flat = []
    for key, value in attrs.items():
        flat += [key, value]
    if tf.executing_eagerly():
        outputs = execute.execute(op_type.encode(), len(out_types), inputs=inputs, attrs=tuple(flat),
                                  ctx=context.context())
    else:
        graph = tf.compat.v1.get_default_graph()
        values = {key: _attr_value(value) for key, value in attrs.items()}
        op = graph.create_op(op_type, inputs, out_types, name=name, attrs=values)
        inputs, outputs = list(op.inputs), list(op.outputs)
    if differentiable and execute.must_record_gradient():
        execute.record_gradient(op_type, inputs, tuple(flat), outputs)
    return outputs


def kernel_runs(probe: Callable[[], bool]) -> bool:
    """True when `probe()` (a small eager run of a kernel, checking its answer) returns True; False when
    TensorFlow has no such kernel (it raises) or the answer is wrong. Runs outside any graph being built."""
    with tf.init_scope():
        try:
            return bool(probe())
        except (tf.errors.OpError, TypeError, ValueError):
            return False


@functools.lru_cache(maxsize=None)
def layer_norm_available() -> bool:
    """True when this TensorFlow runs oneDNN's LayerNorm (`_MklLayerNorm`) and it computes LayerNorm
    (checked on one row against the formula, to float32 rounding). With `TF_ENABLE_ONEDNN_OPTS=0` it is
    not used: that setting asks for TensorFlow's own kernels."""
    import os

    import numpy as np

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return False

    def probe():
        x = np.array([[1.0, -2.0, 3.5, 0.25, 7.0, -1.5, 2.0, 0.0]], np.float32)
        gamma, beta = np.linspace(0.5, 2.0, 8, dtype=np.float32), np.linspace(-1.0, 1.0, 8, dtype=np.float32)
        # In a graph, as the encoder runs it: TensorFlow's graph passes label the node for the kernel,
        # which eagerly is not found.
        out = tf.function(lambda: _fused(tf.constant(x), tf.constant(gamma), tf.constant(beta), 1e-12))().numpy()
        centred = x.astype(np.float64) - x.mean(dtype=np.float64)
        expected = centred / np.sqrt((centred ** 2).mean() + 1e-12) * gamma + beta
        return out.shape == x.shape and np.allclose(out, expected, rtol=1e-5, atol=1e-5)

    return kernel_runs(probe)


def _fused(x, gamma, beta, epsilon: float):
    attrs = {"T": tf.float32.as_datatype_enum, "epsilon": float(epsilon)}
    return run_op("_MklLayerNorm", [x, tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)], attrs,
                  [tf.float32], name="MklLayerNorm", differentiable=True)[0]


def layer_norm(x, gamma, beta, epsilon: float):
    """LayerNorm of float32 `x` `[..., hidden]` over its last axis, scaled by `gamma` and shifted by `beta`,
    in one oneDNN kernel (where `layer_norm_available()`; in a graph).

    One pass instead of the seven of the encoder's TensorFlow ops: 5x faster on `[2048, 768]`, within
    float32 rounding of a float64 LayerNorm as those ops are (tests/model/test_encoder.py), and each
    row computed alone, so a token's value does not depend on how many rows the call holds. The
    kernel has no gradient of its own: the encoder registers one (`register_gradient`).
    """
    return _fused(x, gamma, beta, epsilon)


def register_gradient(op_type: str, gradient: Callable) -> None:
    """Registers `gradient(op, *upstream)` for `op_type`, unless TensorFlow already has one."""
    try:
        tf.RegisterGradient(op_type)(gradient)
    except KeyError:  # registered already: by TensorFlow itself, or by an earlier import
        pass
