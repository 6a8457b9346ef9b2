"""One post-LayerNorm transformer layer (`TransformerBlock`), in each precision of `encoder.py`: float32,
bfloat16/float16 as mixed precision, int8 (its six dense layers `quantize.QuantizedDense`, run by
`int8_block.py`), on packed token rows (`packing.py`) or a padded batch, with dropout while it trains.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.model import int8_block, onednn
from bert_tf.model.config import BertConfig
from bert_tf.model.layers import ACTIVATIONS, InitialValues, dense_layer, layer_norm_layer
from bert_tf.model.packing import Packing
from bert_tf.model.quantize import QuantizedDense, smoothing_scales
from bert_tf.runtime import keras, tf


def _smoothing(values: Optional[InitialValues], norm: str, kernels: list[str]):
    """The divisors (`quantize.smoothing_scales`) for int8 layers reading LayerNorm `norm`'s output,
    from its gamma and beta (each channel's size at a normalised value of 1) and the `kernels` that
    read it; computed once, when the first of those layers is built. None without values: the
    layers' divisors are then loaded with their weights."""
    if values is None:
        return None

    @functools.cache
    def divisors():
        magnitudes = np.abs(values(f"{norm}/gamma")) + np.abs(values(f"{norm}/beta"))
        return smoothing_scales(magnitudes, [values(f"{path}/kernel") for path in kernels])
    return divisors


class TransformerBlock(keras.layers.Layer):
    """One post-LayerNorm transformer layer, as in Google's `transformer_model`."""

    def __init__(self, config: BertConfig, initial_values: Optional[InitialValues] = None, *,
                 compute_dtype: str = "float32", input_norm: str = "embeddings/layer_norm", **kwargs):
        """Args:
            config, initial_values: as for `BertEncoder`.
            compute_dtype: one of `COMPUTE_DTYPES`, or "mixed_bfloat16"/"mixed_float16" (Keras's
                policy names): float32 variables, matmuls in the 16-bit dtype (a trained block).
            input_norm: the path of the LayerNorm that writes the block's input (the embeddings'
                or the block below's output LayerNorm), by which int8 query, key and value smooth it.
        """
        super().__init__(**kwargs)
        h, values, scope = config.hidden_size, initial_values, f"{self.name}/"
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.activation = ACTIVATIONS[config.hidden_act]
        self.hidden_dropout = config.hidden_dropout_prob
        self.attention_dropout = config.attention_probs_dropout_prob
        self.precision = compute_dtype
        # Whether the variables are float32 (so the block can train, and drop out while it does).
        self.float32_variables = compute_dtype in ("float32", "mixed_bfloat16", "mixed_float16")
        # float32 variables read by 16-bit matmuls: cast where the matmul reads them, as Keras's mixed policy does.
        self.mixed = compute_dtype.startswith("mixed_")
        # None in float32 and int8: their graphs then have no casts at all (int8 layers take and
        # return float32, and everything else in them computes in float32).
        low = compute_dtype.removeprefix("mixed_")
        self.low = None if low in ("float32", "int8") else tf.as_dtype(low)
        d = {"dtype": compute_dtype}
        # int8: query, key and value share one smoothing, so their input is quantized once (`_call_tokens`).
        qkv = _smoothing(values, input_norm, [f"{scope}{name}" for name in ("query", "key", "value")])
        self.query = dense_layer(h, "query", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.key = dense_layer(h, "key", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.value = dense_layer(h, "value", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.attention_output = dense_layer(h, "attention_output", values, scope, **d)
        self.attention_layer_norm = layer_norm_layer("attention_layer_norm", values, scope)
        intermediate = _smoothing(values, f"{scope}attention_layer_norm", [f"{scope}intermediate"])
        self.intermediate = dense_layer(config.intermediate_size, "intermediate", values, scope, self.activation,
                                   smooth_input=True, input_divisors=intermediate, **d)
        self.output_dense = dense_layer(h, "output", values, scope, **d)
        self.output_layer_norm = layer_norm_layer("output_layer_norm", values, scope)
        self._hidden = h

    @property
    def fused_int8(self) -> bool:
        """int8 with a range per row: the block runs as six int8 matmuls and six compiled kernels
        (`int8_block.py`), on rows padded as `Packing(mask, pad_rows=True)` pads them."""
        return int8_block.fused(self)

    @property
    def keeps_kernels(self) -> bool:
        """Whether `call(..., fixed_weights=True)` runs the dense layers as oneDNN matmuls that keep their
        reordered kernels (`onednn.fixed_weight_dense`): float32 or bfloat16 kernels, not trained, where
        oneDNN runs them. The layout kept is the one the first call's row count asks for (`embed.graphs`)."""
        if self.mixed or isinstance(self.query, QuantizedDense):
            return False
        return onednn.fixed_weights_available("float32" if self.low is None else self.low.name)

    def build(self, input_shape=None):
        h = self._hidden
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build((None, None, h))
        self.output_dense.build((None, None, self.intermediate.units))
        self.attention_layer_norm.build((None, None, h))
        self.output_layer_norm.build((None, None, h))
        self.built = True

    def _dense(self, layer, x, activation=None, fixed_weights=False, residual=None):
        # [tokens, in] @ [in, out] + bias as MatMul + BiasAdd (+ activation): the pattern
        # TensorFlow's CPU graph rewriter fuses into one kernel; an int8 layer applies its own
        # bias and activation. With `fixed_weights` (an inference graph whose weights never change),
        # oneDNN's fused matmul keeps its reordered kernel (`onednn.fixed_weight_dense`). `residual`:
        # added to the output (the rewriter fuses that add too).
        if isinstance(layer, QuantizedDense):
            return layer(x)
        kernel, bias = layer.kernel, layer.bias
        if self.mixed:  # float32 variables, 16-bit arithmetic; the gradient flows back through the cast
            kernel, bias = tf.cast(kernel, self.low), tf.cast(bias, self.low)
        elif fixed_weights and onednn.fusable(activation) and not tf.executing_eagerly() \
                and onednn.fixed_weights_available(x.dtype.name):
            return onednn.fixed_weight_dense(x, kernel, bias, activation, residual)
        y = tf.nn.bias_add(tf.matmul(x, kernel), bias)
        y = y if activation is None else activation(y)
        return y if residual is None else residual + y

    def _query_key_value(self, x, fixed_weights=False):
        # int8 with a range per row: the three layers share their input's smoothing, so it is scaled
        # and rounded once (`TransformerBlock.__init__`).
        layers = (self.query, self.key, self.value)
        if isinstance(self.query, QuantizedDense) and all(layer.ranges == "row" for layer in layers):
            levels = self.query.input_levels(x)
            return tuple(layer.from_levels(levels) for layer in layers)
        return tuple(self._dense(layer, x, fixed_weights=fixed_weights) for layer in layers)

    @staticmethod
    def _drop(x, rate: float, dropout: bool):
        # No op at all unless dropping: the inference graph is the one without dropout.
        return tf.nn.dropout(x, rate=rate) if dropout and rate > 0 else x

    def call(self, x, attention_adder, packing=None, *, dropout: bool = False, fixed_weights: bool = False):
        """One layer.

        Args:
            x: `[batch, seq, hidden]`; or, with `packing`, only the real tokens, `[tokens, hidden]`.
            attention_adder: `[batch, 1, 1 or seq, seq]`, 0 where attention is allowed, -10000 elsewhere.
            packing: None, or a `Packing`: the dense layers (nearly all the FLOPs) then run on real
                tokens only, and just the attention scores are computed in the padded layout.
            dropout: drop out as BERT trains (module docstring), at the config's rates. Not named
                `training`, which Keras would pass down from an outer `training=True` to frozen blocks too.
            fixed_weights: the graph is for inference over weights that never change again: the float
                dense layers keep oneDNN's reordered kernels (`onednn.fixed_weight_dense`). Not with dropout.

        Raises:
            ValueError: `dropout` in a block whose variables are not float32 (it cannot train).
        """
        if dropout and not self.float32_variables:
            raise InvalidValue(f"{self.name} cannot drop out: its weights are {self.precision}, and only "
                               f"float32 weights train; build the encoder with trained_layers covering it")
        if packing is None:
            batch, seq = tf.shape(x)[0], tf.shape(x)[1]
            flat = tf.reshape(x, [batch * seq, self._hidden])
            if self.fused_int8:  # every position a token, the rows padded (`int8_block.py`)
                packing = Packing(tf.ones([batch, seq]), pad_rows=True)
                tokens = packing.unpad(int8_block.call(self, packing.pad(flat), attention_adder, packing))
            else:
                tokens = self._call_tokens(flat, attention_adder, Packing.full(batch, seq), dropout, fixed_weights)
            return tf.reshape(tokens, [batch, seq, self._hidden])
        if self.fused_int8:
            return int8_block.call(self, x, attention_adder, packing)
        return self._call_tokens(x, attention_adder, packing, dropout, fixed_weights)

    def _call_tokens(self, x, attention_adder, packing, dropout, fixed_weights=False):
        # x: [tokens, hidden]
        fixed = fixed_weights and not dropout
        if self.low is not None:
            return self._call_tokens_mixed(x, attention_adder, packing, dropout, fixed)
        q, k, v = (packing.to_heads(y, self.num_heads)  # [batch, heads, seq, head_size]
                   for y in self._query_key_value(x, fixed))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.head_size))
        probs = tf.nn.softmax(scores + attention_adder, axis=-1)  # [batch, heads, seq, seq]
        probs = self._drop(probs, self.attention_dropout, dropout)
        # [tokens, hidden], reshaped to x's own shape: a no-op that lets TensorFlow's graph
        # optimiser prove the residual add's operands alike and fuse it into the matmul.
        context = tf.reshape(packing.from_heads(tf.matmul(probs, v), self.num_heads), tf.shape(x))
        x = self.attention_layer_norm(self._plus_dense(x, self.attention_output, context, dropout, fixed))
        y = self._dense(self.intermediate, x, self.activation, fixed_weights=fixed)
        return self.output_layer_norm(self._plus_dense(x, self.output_dense, y, dropout, fixed))

    def _plus_dense(self, x, layer, inputs, dropout, fixed):
        # x + layer(inputs), dropped out in between while training; otherwise the add runs inside the
        # matmul's kernel (`_dense`'s `residual`).
        if dropout:
            return x + self._drop(self._dense(layer, inputs), self.hidden_dropout, dropout)
        return self._dense(layer, inputs, fixed_weights=fixed, residual=x)

    def _call_tokens_mixed(self, x, attention_adder, packing, dropout, fixed=False):
        # The residual stream x stays float32 and is rounded to the compute dtype only where a
        # matmul reads it; each matmul's output is rounded once (oneDNN accumulates in float32).
        low, f32 = self.low, tf.float32
        x_low = tf.cast(x, low)
        q, k, v = (packing.to_heads(self._dense(layer, x_low, fixed_weights=fixed), self.num_heads)  # gathers move
                   for layer in (self.query, self.key, self.value))                                  # half the bytes
        # As in float32, oneDNN's rewriter fuses the scale and the adder into the score matmul
        # (`_MklFusedBatchMatMulV2`, in bfloat16 too): they apply to its float32 accumulator, and the
        # scores are rounded once. Unfused (oneDNN off) the scale is exact for head sizes that are powers
        # of 4, and an allowed position's adder is 0: the same scores. oneDNN's softmax reads and writes
        # bfloat16 but computes its max, exponentials and sum in float32; the adder is 0 or -10000, and
        # rounding the latter still gives an exact 0 weight.
        scores = tf.matmul(q, k, transpose_b=True) * tf.constant(1.0 / math.sqrt(self.head_size), low)
        probs = tf.nn.softmax(scores + tf.cast(attention_adder, low), axis=-1)
        probs = self._drop(probs, self.attention_dropout, dropout)
        context = tf.reshape(packing.from_heads(tf.matmul(probs, v), self.num_heads), tf.shape(x_low))
        attended = self._drop(self._dense(self.attention_output, context, fixed_weights=fixed), self.hidden_dropout,
                              dropout)
        x = self.attention_layer_norm(x + tf.cast(attended, f32))
        y = self._dense(self.output_dense, self._dense(self.intermediate, tf.cast(x, low), self.activation,
                                                       fixed_weights=fixed), fixed_weights=fixed)
        return self.output_layer_norm(x + tf.cast(self._drop(y, self.hidden_dropout, dropout), f32))
