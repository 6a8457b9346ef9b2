"""oneDNN kernels that TensorFlow runs but has no Python wrapper for, built as graph nodes by name.

`fixed_weight_dense`: `activation(x @ kernel + bias [+ residual])` as one oneDNN fused matmul that is
told its kernel never changes (`is_filter_const`). oneDNN computes from its own blocked layout of the
kernel; a `tf.matmul` over a variable has it reorder the kernel into that layout on every call, which at
a few rows (a query: one short sentence) costs more than the product itself. Told the kernel is fixed,
the matmul reorders it once, on its first call, and keeps that copy in the kernel's memory. That is
what an inference graph over weights that do not change wants (`BertEncoder.token_states(...,
fixed_weights=True)`, the embedder's graphs), and never a graph that trains or reloads its weights: the
copy would go stale. The cost is the copy, one more of each kernel's bytes for the life of the graph.

`node`: any such op, from its name, inputs and attributes (`quantize.onednn_matmul` builds oneDNN's
int8 matmul the same way).
"""

from __future__ import annotations

import functools

import numpy as np

from bert_tf.runtime import tf

#: oneDNN's fused post-ops for the activations it computes in its matmul kernel, by function name.
FUSED_ACTIVATIONS = {"gelu_erf": "GeluExact", "gelu_tanh": "GeluApproximate", "relu": "Relu", "tanh": "Tanh"}


def _attr(value) -> "tf.compat.v1.AttrValue":
    """An attribute value: a dtype, a bool, bytes, an int, or a list of dtypes or of bytes."""
    A = tf.compat.v1.AttrValue
    if isinstance(value, tf.DType):
        return A(type=value.as_datatype_enum)
    if isinstance(value, list) and all(isinstance(v, tf.DType) for v in value):
        return A(list=A.ListValue(type=[v.as_datatype_enum for v in value]))
    if isinstance(value, list):
        return A(list=A.ListValue(s=value))
    if isinstance(value, bool):
        return A(b=value)
    if isinstance(value, bytes):
        return A(s=value)
    if isinstance(value, int):
        return A(i=value)
    raise TypeError(f"no attribute value for {value!r}")


def node(op: str, inputs: list, out_types: list, attrs: dict, name: str) -> list:
    """The outputs of `op` on `inputs`, with `attrs` as `_attr` takes them: a new node in the current
    graph (inside a `tf.function`), or, eagerly, the op run at once."""
    if tf.executing_eagerly():
        from tensorflow.python.eager import context, execute

        def raw(value):  # what the eager executor takes: dtypes as their enums
            if isinstance(value, list):
                return [raw(v) for v in value]
            return value.as_datatype_enum if isinstance(value, tf.DType) else value

        flat = [item for key, value in attrs.items() for item in (key, raw(value))]
        return execute.execute(op.encode(), len(out_types), inputs=inputs, attrs=tuple(flat), ctx=context.context())
    graph = tf.compat.v1.get_default_graph()
    values = {key: _attr(value) for key, value in attrs.items()}
    return graph.create_op(op, inputs, out_types, name=name, attrs=values).outputs


def fixed_weight_dense(x, kernel, bias, activation=None, residual=None):
    """`activation(x @ kernel + bias)`, or `x @ kernel + bias + residual`, in one oneDNN kernel that keeps
    its reordered `kernel` after the first call (module docstring). Graph mode only.

    Args:
        x: `[rows, in]`, float32 or bfloat16; `kernel` `[in, out]` and `bias` `[out]` of the same dtype.
        activation: None, or a function whose name is in `FUSED_ACTIVATIONS`.
        residual: None, or `[rows, out]` added to the output (not with an activation).
    """
    if activation is not None and residual is not None:
        raise ValueError("fixed_weight_dense fuses an activation or a residual add, not both")
    fused = [b"BiasAdd"]
    args = [bias]
    if activation is not None:
        fused.append(FUSED_ACTIVATIONS[activation.__name__].encode())
    elif residual is not None:
        fused.append(b"Add")
        args.append(residual)
    attrs = {"T": x.dtype, "num_args": len(args), "fused_ops": fused, "is_filter_const": True,
             "transpose_a": False, "transpose_b": False, "_kernel": b"MklNameChangeOp"}
    inputs = [tf.convert_to_tensor(t) for t in (x, kernel, *args)]  # a variable is read here
    return node("_MklNativeFusedMatMul", inputs, [x.dtype], attrs, "FixedWeightMatMul")[0]


def fusable(activation) -> bool:
    """Whether oneDNN's fused matmul computes `activation` (None: no activation) itself."""
    return activation is None or getattr(activation, "__name__", None) in FUSED_ACTIVATIONS


@functools.lru_cache(maxsize=None)
def fixed_weights_available(dtype: str = "float32") -> bool:
    """True when `fixed_weight_dense` should run here in `dtype` ("float32" or "bfloat16"; no other):
    on the CPU (no GPU visible: the kernel is oneDNN's, CPU only), with TensorFlow's oneDNN kernels on
    (`TF_ENABLE_ONEDNN_OPTS` not 0: with it TensorFlow's own kernels compute everything, so these matmuls
    too), in bfloat16 only where TensorFlow gives bfloat16 matmuls to oneDNN anyway (an AVX-512 CPU whose
    oneDNN is not capped below them: elsewhere the kernel would abort the process), and where this build
    runs the kernel, asked of TensorFlow itself on a 2x2 float32 product."""
    from bert_tf.model.hardware import bfloat16_has_no_kernel, cpu_flags, onednn_settings

    if dtype not in ("float32", "bfloat16") or not onednn_settings()[0] or tf.config.list_physical_devices("GPU"):
        return False
    if dtype == "bfloat16" and ("avx512f" not in cpu_flags() or bfloat16_has_no_kernel() is not None):
        return False

    @tf.function(autograph=False)
    def probe(x, w, b):
        return fixed_weight_dense(x, w, b, residual=x)

    with tf.init_scope():
        try:
            x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
            out = probe(x, tf.constant([[1.0, 0.0], [0.0, 2.0]]), tf.constant([0.5, 0.5])).numpy()
            return bool(np.array_equal(out, [[2.5, 6.5], [6.5, 12.5]]))
        except (tf.errors.OpError, TypeError, ValueError):
            return False
