"""An int8 transformer block as six int8 matmuls and six compiled kernels.

An int8 block with a range per input row (`quantize.py`) computes what `TransformerBlock` defines,
but everything between its matmuls is elementwise work over `[rows, hidden]` or `[rows, intermediate]`:
each row's step and offset, the bias, the residual add, LayerNorm, GELU, the next layer's input
ranges and rounding. As TensorFlow ops that is about forty passes over memory per block, and at 2048
tokens it took more of a call than the int8 matmuls. Here each stretch between two matmuls is one
XLA-compiled kernel (`tf.function(jit_compile=True)`), which reads its inputs once and writes what the
next matmul reads (uint8 levels where that is an int8 matmul):

1. the block's input, scaled by the query/key/value smoothing, to levels;
2. query, key and value from their three products, each written straight into attention's layout;
3. attention's output (the heads merged) to levels;
4. the attention output layer's product to its output, the residual add, the attention LayerNorm,
   and the intermediate layer's input levels (smoothed);
5. the intermediate product, GELU, to the output layer's levels (`finish_and_round`);
6. the output layer's product to its output, the residual add and the output LayerNorm.

The attention scores, softmax and the merging of heads stay TensorFlow ops, as in every precision.
XLA compiles a kernel per shape, so the block's rows are padded to one of a few counts
(`quantize.padded_rows`; `Packing(mask, pad_rows=True)`), and so is the attention layout's
`batch * seq` (`Packing.head_rows`): a kernel is compiled the first time a count is seen.

The arithmetic is the same as the layer-by-layer path's (the same functions: `quantize.round_rows`,
`quantize.finish_rows`, `norm.layer_norm`), to float32 rounding. It is each row's own, whatever the
padded row count: XLA orders a row's sum by the whole input's shape, so the LayerNorms sum in float64
and round once, and a text's vectors do not depend on its batch (tests/embed/test_space.py, and on the
real all-MiniLM-L6-v2 tests/embed/test_low_precision.py).
"""

from __future__ import annotations

import functools
import math

from bert_tf.model.norm import layer_norm
from bert_tf.model.quantize import QuantizedDense, finish_rows, round_rows
from bert_tf.runtime import quiet_stderr, tf


def fused(block) -> bool:
    """Whether `block` (a `TransformerBlock`) runs as `call` computes it: its six dense layers int8
    with a range per row, the unsmoothed ones (attention output, output) without an input scale."""
    layers = (block.query, block.key, block.value, block.attention_output, block.intermediate, block.output_dense)
    return (all(isinstance(layer, QuantizedDense) and layer.ranges == "row" for layer in layers)
            and block.attention_output.input_scale is None and block.output_dense.input_scale is None)


def call(block, x, attention_adder, packing):
    """`TransformerBlock._call_tokens` for a `fused` block, on `x` `[packing.rows, hidden]`."""
    _start_xla_quietly()
    norm1, norm2 = block.attention_layer_norm, block.output_layer_norm
    levels, low, steps = _scaled_levels(x, _tensor(block.query.input_scale))
    q, k, v = _three_heads(*(layer.product(levels) for layer in (block.query, block.key, block.value)),
                           low, steps, *_finishing(block.query), *_finishing(block.key), *_finishing(block.value),
                           packing.head_rows(block.num_heads), block.head_size)
    q, k, v = (packing.heads_of(y, block.num_heads) for y in (q, k, v))  # [batch, heads, seq, head_size]
    scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(block.head_size))
    probs = tf.nn.softmax(scores + attention_adder, axis=-1)  # [batch, heads, seq, seq]
    context = packing.from_heads(tf.matmul(probs, v), block.num_heads)
    levels, low, steps = _levels(context)
    x, levels, low, steps = _attended(block.attention_output.product(levels), low, steps,
                                      *_finishing(block.attention_output), x, *_norm(norm1),
                                      _tensor(block.intermediate.input_scale))
    levels, low, steps = finish_and_round(block.intermediate, block.intermediate.product(levels), low, steps)
    return _output(block.output_dense.product(levels), low, steps, *_finishing(block.output_dense), x, *_norm(norm2))


def finish_and_round(layer, product, low, steps) -> tuple:
    """`round_rows(activation(finish_rows(product, low, steps, ...)))`: an int8 `layer`'s output from its
    product, rounded for a next layer without input scale, as one compiled kernel: `(levels, low, steps)`.
    Its rows should be one of `quantize.padded_rows`' counts (XLA compiles a kernel per shape)."""
    return _finish_and_round(layer.activation)(product, low, steps, *_finishing(layer))


@functools.cache
def _finish_and_round(activation):
    """`finish_and_round`'s compiled kernel for `activation` (one per function)."""
    @tf.function(jit_compile=True, reduce_retracing=True)
    def run(product, low, steps, column_sums, bias):
        y = finish_rows(product, low, steps, column_sums, bias)
        return round_rows(y if activation is None else activation(y))
    return run


@functools.cache
def _start_xla_quietly():
    # A process's first XLA compile logs "XLA service ... initialized" and "Compiled cluster using XLA!"
    # straight to fd 2 on older TensorFlow (2.16), whatever TF_CPP_MIN_LOG_LEVEL says: compile a tiny
    # kernel once, eagerly, with fd 2 pointed away (`runtime.quiet_stderr`).
    with tf.init_scope(), quiet_stderr():
        _levels(tf.zeros([8, 1]))


def _tensor(variable):
    return tf.convert_to_tensor(variable)


def _finishing(layer):
    return _tensor(layer.kernel_column_sums), _tensor(layer.bias)


def _norm(norm):
    return _tensor(norm.gamma), _tensor(norm.beta), tf.constant(norm.epsilon, tf.float32)


@tf.function(jit_compile=True, reduce_retracing=True)
def _scaled_levels(x, scale):
    return round_rows(x * scale)


@tf.function(jit_compile=True, reduce_retracing=True)
def _levels(x):
    return round_rows(x)


@tf.function(jit_compile=True, reduce_retracing=True)
def _three_heads(pq, pk, pv, low, steps, sums_q, bias_q, sums_k, bias_k, sums_v, bias_v, head_rows, head_size):
    # Each output written straight into attention's layout (`Packing.head_rows`): the gather in the
    # kernel costs less than a TensorFlow gather's separate pass over the rows.
    return tuple(tf.gather(tf.reshape(finish_rows(product, low, steps, sums, bias), [-1, head_size]), head_rows)
                 for product, sums, bias in ((pq, sums_q, bias_q), (pk, sums_k, bias_k), (pv, sums_v, bias_v)))


@tf.function(jit_compile=True, reduce_retracing=True)
def _attended(product, low, steps, sums, bias, x, gamma, beta, epsilon, next_scale):
    x = layer_norm(x + finish_rows(product, low, steps, sums, bias), gamma, beta, epsilon, tf.float64)
    return (x, *round_rows(x * next_scale))


@tf.function(jit_compile=True, reduce_retracing=True)
def _output(product, low, steps, sums, bias, x, gamma, beta, epsilon):
    return layer_norm(x + finish_rows(product, low, steps, sums, bias), gamma, beta, epsilon, tf.float64)
