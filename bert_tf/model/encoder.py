"""The BERT encoder as a Keras 3 model (TensorFlow backend), for inference and fine-tuning.

Layer and variable names are stable and mirror Google's TF1 scopes, so the
checkpoint table (`checkpoint.py`) can name every variable explicitly:

    embeddings/{word_embeddings, token_type_embeddings, position_embeddings}
    embeddings/layer_norm/{gamma, beta}
    layer_N/{query, key, value, attention_output}/{kernel, bias}
    layer_N/attention_layer_norm/{gamma, beta}
    layer_N/{intermediate, output}/{kernel, bias}
    layer_N/output_layer_norm/{gamma, beta}
    pooler/{kernel, bias}

Kernels keep TF1's `[in, out]` layout, so restoring needs no transposes.

Dropout is for fine-tuning only: `token_states(..., dropout_layers=N)` drops where
Google's `modeling.py` does (the attention probabilities at `attention_probs_dropout_prob`;
the attention and feed-forward outputs before each residual add at `hidden_dropout_prob`)
in the top N blocks, which must hold float32 variables. Without it (the default) the
graph has no dropout op at all: inference is unchanged.

`compute_dtype="bfloat16"` (or "float16") builds the mixed-precision encoder of
`precision.py`: the six dense layers of each block hold their kernels and biases
in that dtype (the checkpoint's float32 values rounded once, at construction), the
matmuls, attention and GELU compute in it (the softmax's statistics in float32
inside oneDNN's kernel), and the residual stream, LayerNorm, embeddings and pooler
stay float32, so every output is float32.

`compute_dtype="int8"` makes those six dense layers `quantize.QuantizedDense`:
int8 kernels, each token's input quantized to uint8 over its own range, float32
in and out; everything else computes in float32. The four that read a LayerNorm's
output (query, key and value read the previous block's, or the embeddings', and
intermediate its own block's attention LayerNorm) smooth their inputs by that
LayerNorm's gamma and beta (`quantize.py`). Such a block runs as its six int8 matmuls
and six XLA-compiled kernels for everything between them (`int8_block.py`), on token
rows padded to one of a few counts (`packing.py`).

`trained_layers=N` keeps the top N blocks trainable whatever the compute dtype: their
variables are float32 (gradients and optimiser updates need them). In a bfloat16 or
float16 encoder those blocks compute as Keras's "mixed_bfloat16"/"mixed_float16"
policy does (float32 variables cast to the compute dtype where a matmul reads them,
the same arithmetic as the blocks below); in an int8 encoder they compute in
float32, since int8 kernels cannot be trained. The blocks below are unchanged.

`BertEncoder(config, initial_values=...)` creates every variable straight from
a value looked up by the path above (`checkpoint.load_encoder` passes the
checkpoint's tensors), so a restored model never holds a second, throw-away
copy of its weights: for BERT-Base that saves about 250 MB of resident memory
over building with initializers and assigning afterwards.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.runtime import keras, tf
from bert_tf.model.config import LAYER_NORM_EPSILON, BertConfig
from bert_tf.model import int8_block, onednn
from bert_tf.model.norm import layer_norm
from bert_tf.model.packing import Packing
from bert_tf.model.quantize import QuantizedDense, smoothing_scales

#: Added to attention logits at padding positions, as in Google's modeling.py
#: (`adder = (1.0 - mask) * -10000.0`), rather than -inf: identical softmax
#: for real tokens, and no NaN for an all-padding row.
ATTENTION_MASK_ADDER = -10000.0

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def attention_adder_for(mask):
    """`[batch, 1, 1, seq]` float32: 0 where the key is a real token, `ATTENTION_MASK_ADDER` at padding.

    Built with a reshape that spells out the 1s, so TensorFlow's graph optimiser knows the
    shape statically and fuses `scores * scale + adder` into the attention batch matmul
    (one oneDNN kernel); from `mask[:, None, None, :]` it cannot tell, and the scale and the
    mask then run as two more passes over the scores.
    """
    mask = tf.cast(mask, tf.float32)
    shape = tf.shape(mask)
    return tf.reshape((1.0 - mask) * ATTENTION_MASK_ADDER, [shape[0], 1, 1, shape[1]])


def gelu_erf(x):
    """Exact GELU, x * Phi(x).

    This is what `hidden_act: "gelu"` means for Google's released checkpoints:
    the 2018 `modeling.py` they were trained with computed
    `0.5 * x * (1 + erf(x / sqrt(2)))`, and Hugging Face's `gelu` is the same.
    Google later switched its code to the tanh approximation; on the real
    all-MiniLM-L6-v2 weights the erf form reproduces Hugging Face to ~1e-6
    while the tanh form drifts an order of magnitude past float32 rounding (see tests/model/test_encoder.py), so erf is
    the default for "gelu".
    """
    return tf.nn.gelu(x, approximate=False)  # 0.5 * x * (1 + erf(x / sqrt(2))), as one op


def gelu_tanh(x):
    """The tanh approximation of GELU (Google's current modeling.py, HF `gelu_new`)."""
    return tf.nn.gelu(x, approximate=True)  # 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))


ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "swish": tf.nn.silu,
}


#: Maps a variable path (see the module docstring) to its initial value.
InitialValues = Callable[[str], np.ndarray]


def _initializer(values: Optional[InitialValues], path: str, default: str):
    """The initializer for the variable at `path`: its value from `values`, or Keras's `default`."""
    if values is None:
        return default
    return lambda shape, dtype=None: values(path)


#: The compute dtypes `BertEncoder` accepts (`precision.resolve_precision` maps the option onto them).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16", "int8")

#: What a trained block (float32 variables) computes in, for each encoder compute dtype: a Keras
#: mixed policy where the encoder computes in a 16-bit float, float32 where int8 kernels cannot train.
TRAINED_BLOCK_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16",
                        "int8": "float32"}


def _dense(units, name, values, scope="", activation=None, smooth_input=False, input_divisors=None, **kwargs):
    """The dense layer at `scope/name`, with `activation` when called as a layer; an int8 layer
    applies it itself. (`TransformerBlock._dense` reads a float layer's kernel and
    bias itself and applies the activation there, where oneDNN fuses it.) `smooth_input`: an int8
    layer smooths its input, by the divisors `input_divisors()` returns (`quantize.smoothing_scales`),
    or, without values to compute them from (`input_divisors` None), by divisors loaded with its weights."""
    path = f"{scope}{name}"
    if kwargs.get("dtype") == "int8":  # int8 kernels, float32 in and out (quantize.py)
        return QuantizedDense(units, name=name, activation=activation,
                              kernel_value=None if values is None else lambda: values(f"{path}/kernel"),
                              bias_value=None if values is None else lambda: values(f"{path}/bias"),
                              smooth_input=smooth_input, input_divisors=input_divisors)
    return keras.layers.Dense(units, name=name, activation=activation, **kwargs,
                              kernel_initializer=_initializer(values, f"{path}/kernel", "glorot_uniform"),
                              bias_initializer=_initializer(values, f"{path}/bias", "zeros"))


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


class LayerNorm(keras.layers.LayerNormalization):
    """LayerNorm over the last axis as Google's and Hugging Face's BERT define it:
    `(x - mean) / sqrt(variance + epsilon) * gamma + beta`, the variance of `x - mean`.

    Keras computes the same as `x * inv + (beta - mean * inv)` with `inv = gamma / sqrt(...)`
    broadcast to the activations' full shape: eight passes over `[tokens, hidden]`. Centring
    first takes seven, and lands a little closer to a float64 LayerNorm
    (tests/model/test_encoder.py; the speed-up is in bench/README.md).

    The scale is `1 / sqrt(variance + epsilon)`, both correctly rounded, not `rsqrt`: TensorFlow's
    CPU `rsqrt` rounds differently in its vector and scalar loops, so how many tokens a call holds
    would change a token's value by a unit of float32 rounding, and under int8 such a unit can move
    an input across a rounding level (`quantize.py`): a text's vectors would depend on its batch.
    `divide_no_nan` rather than `/`, which TensorFlow's graph optimiser turns back into `rsqrt`.

    Only as `_layer_norm` builds it: over the last axis, with gamma and beta.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.axis not in (-1, [-1]) or not (self.center and self.scale) or self.rms_scaling:
            raise ValueError("LayerNorm normalises the last axis with gamma and beta only; "
                             "use keras.layers.LayerNormalization for other settings")

    def call(self, x):
        return layer_norm(x, self.gamma, self.beta, self.epsilon)


def _layer_norm(name, values, scope=""):
    path = f"{scope}{name}"
    return LayerNorm(
        epsilon=LAYER_NORM_EPSILON, name=name, dtype="float32",
        gamma_initializer=_initializer(values, f"{path}/gamma", "ones"),
        beta_initializer=_initializer(values, f"{path}/beta", "zeros"))


class BertEmbeddings(keras.layers.Layer):
    """Word + position + token-type embeddings, then LayerNorm."""

    def __init__(self, config: BertConfig, initial_values: Optional[InitialValues] = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self._values = initial_values
        self.layer_norm = _layer_norm("layer_norm", initial_values, "embeddings/")

    def build(self, input_shape=None):
        cfg, h = self.config, self.config.hidden_size

        def table(name, rows):
            init = _initializer(self._values, f"embeddings/{name}", "zeros")
            return self.add_weight(name=name, shape=(rows, h), initializer=init)

        self.word_embeddings = table("word_embeddings", cfg.vocab_size)
        self.token_type_embeddings = table("token_type_embeddings", cfg.type_vocab_size)
        self.position_embeddings = table("position_embeddings", cfg.max_position_embeddings)
        self.layer_norm.build((None, None, h))
        self.built = True

    def call(self, word_ids, type_ids, position_ids=None):
        # word_ids, type_ids: [batch, seq] int32
        x = tf.gather(self.word_embeddings, word_ids) + tf.gather(self.token_type_embeddings, type_ids)
        if position_ids is None:
            seq_len = tf.shape(word_ids)[1]
            x = x + self.position_embeddings[tf.newaxis, :seq_len, :]
        else:  # packed sequences restart positions per sentence
            x = x + tf.gather(self.position_embeddings, position_ids)
        return self.layer_norm(x)


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
        self.query = _dense(h, "query", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.key = _dense(h, "key", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.value = _dense(h, "value", values, scope, smooth_input=True, input_divisors=qkv, **d)
        self.attention_output = _dense(h, "attention_output", values, scope, **d)
        self.attention_layer_norm = _layer_norm("attention_layer_norm", values, scope)
        intermediate = _smoothing(values, f"{scope}attention_layer_norm", [f"{scope}intermediate"])
        self.intermediate = _dense(config.intermediate_size, "intermediate", values, scope, self.activation,
                                   smooth_input=True, input_divisors=intermediate, **d)
        self.output_dense = _dense(h, "output", values, scope, **d)
        self.output_layer_norm = _layer_norm("output_layer_norm", values, scope)
        self._hidden = h

    @property
    def fused_int8(self) -> bool:
        """int8 with a range per row: the block runs as six int8 matmuls and six compiled kernels
        (`int8_block.py`), on rows padded as `Packing(mask, pad_rows=True)` pads them."""
        return int8_block.fused(self)

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
        # The scale goes on q (exact for head sizes that are powers of 4) rather than on the scores,
        # so scores are rounded once, by the matmul. oneDNN's softmax reads and writes bfloat16
        # but computes its max, exponentials and sum in float32; the adder is 0 or -10000, and
        # rounding the latter still gives an exact 0 weight.
        q = q * tf.constant(1.0 / math.sqrt(self.head_size), low)
        scores = tf.matmul(q, k, transpose_b=True)
        probs = tf.nn.softmax(scores + tf.cast(attention_adder, low), axis=-1)
        probs = self._drop(probs, self.attention_dropout, dropout)
        context = tf.reshape(packing.from_heads(tf.matmul(probs, v), self.num_heads), tf.shape(x_low))
        attended = self._drop(self._dense(self.attention_output, context, fixed_weights=fixed), self.hidden_dropout,
                              dropout)
        x = self.attention_layer_norm(x + tf.cast(attended, f32))
        y = self._dense(self.output_dense, self._dense(self.intermediate, tf.cast(x, low), self.activation,
                                                       fixed_weights=fixed), fixed_weights=fixed)
        return self.output_layer_norm(x + tf.cast(self._drop(y, self.hidden_dropout, dropout), f32))


class BertEncoder(keras.Model):
    """BERT: embeddings, `num_hidden_layers` transformer blocks and the tanh pooler.

    Call it with a dict of int32 `[batch, seq]` tensors `input_word_ids`,
    `input_mask` (1 real, 0 padding) and `input_type_ids`. It returns a dict:

    * `sequence_output`: `[batch, seq, hidden]`, the last layer;
    * `pooled_output`: `[batch, hidden]`, tanh(dense([CLS] of the last layer));
    * `encoder_outputs`: a list of `num_hidden_layers` `[batch, seq, hidden]`
      tensors, one per transformer layer;
    * `embedding_output`: `[batch, seq, hidden]`, the input to the first layer.

    `hidden_states(outputs)` stacks the last two as `[layers + 1, ...]`, the
    "all hidden states" of Hugging Face's `output_hidden_states=True`.

    Example:
        >>> config, encoder = load_encoder("checkpoints/uncased_L-12_H-768_A-12")
        >>> out = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    """

    def __init__(self, config: BertConfig, initial_values: Optional[InitialValues] = None, *,
                 compute_dtype: str = "float32", trained_layers: int = 0, **kwargs):
        """Builds every variable at once.

        Args:
            config: the model shape.
            initial_values: maps each variable's path (module docstring) to its value,
                e.g. the checkpoint's tensors; by default Keras's usual initializers.
            compute_dtype: "float32" (default), "bfloat16"/"float16" for mixed precision, or
                "int8" for int8 dense layers
                (module docstring); the outputs are float32 either way.
            trained_layers: the top this many blocks hold float32 variables, to be fine-tuned
                (module docstring); nothing changes in a float32 encoder.

        Raises:
            ValueError: an unknown `compute_dtype`, or `trained_layers` outside 0..num_hidden_layers.
        """
        if compute_dtype not in COMPUTE_DTYPES:
            raise InvalidValue(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {compute_dtype!r}")
        layers = config.num_hidden_layers
        if isinstance(trained_layers, bool) or not isinstance(trained_layers, int) \
                or not 0 <= trained_layers <= layers:
            raise InvalidValue(f"trained_layers must be an integer from 0 to {layers}; got {trained_layers!r}")
        kwargs.setdefault("name", "bert")
        super().__init__(**kwargs)
        self.config = config
        self.precision = compute_dtype  # the compute dtype's name: "float32", "bfloat16", "float16" or "int8"
        self.trained_layers = trained_layers
        self.embeddings = BertEmbeddings(config, initial_values, name="embeddings")
        self.blocks = [TransformerBlock(config, initial_values, name=f"layer_{i}",
                                        compute_dtype=(compute_dtype if i < layers - trained_layers
                                                       else TRAINED_BLOCK_DTYPES[compute_dtype]),
                                        input_norm=f"layer_{i - 1}/output_layer_norm" if i else "embeddings/layer_norm")
                       for i in range(layers)]
        self.pooler = _dense(config.hidden_size, "pooler", initial_values, activation="tanh")
        self.embeddings.build()
        for block in self.blocks:
            block.build()
        self.pooler.build((None, config.hidden_size))
        self.built = True

    def call(self, inputs, position_ids=None, attention_adder=None):
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        x = self.embeddings(word_ids, type_ids, position_ids)
        embedding_output = x
        if attention_adder is None:
            # [batch, 1, 1, seq]: every query position sees every real key position.
            attention_adder = attention_adder_for(mask)
        encoder_outputs = []
        for block in self.blocks:
            x = block(x, attention_adder)
            encoder_outputs.append(x)
        pooled = self.pooler(x[:, 0, :])
        return {
            "sequence_output": x,
            "pooled_output": pooled,
            "encoder_outputs": encoder_outputs,
            "embedding_output": embedding_output,
        }

    def token_states(self, word_ids, mask, *, dropout_layers: int = 0, fixed_weights: bool = False):
        """Every hidden state of the real tokens only, computed without padding in the dense layers.

        The same numbers as `call` (up to float rounding) at a cost proportional to the
        real tokens: only attention scores see the padded layout.

        Args:
            word_ids, mask: int32 `[batch, seq]`; token type ids are taken as 0.
            dropout_layers: the top this many blocks drop out as BERT trains (module docstring):
                the fine-tuned ones, while training. 0 (default): no dropout op in the graph.
            fixed_weights: for a traced inference graph whose weights will not change again (the
                embedder's): the float32 and bfloat16 dense layers then keep oneDNN's reordered kernels
                between calls (`onednn.fixed_weight_dense`), which a few rows (a query) run about
                twice as fast; a graph over weights that train or are reloaded must not ask for it.

        Returns:
            `(states, pooled)`: `states` is a list of `num_hidden_layers + 1` tensors
            `[tokens, hidden]` (embedding output first; tokens in the row-major order of
            `tf.boolean_mask(x, mask)`), `pooled` is `[batch, hidden]` (zeros for a row
            whose first position is padding: it has no [CLS]).

        Raises:
            ValueError: `dropout_layers` reaching a block without float32 variables (see `trained_layers`).
        """
        if isinstance(dropout_layers, bool) or not isinstance(dropout_layers, int) \
                or not 0 <= dropout_layers <= len(self.blocks):
            raise InvalidValue(f"dropout_layers must be an integer from 0 to {len(self.blocks)}; "
                               f"got {dropout_layers!r}")
        first_dropped = len(self.blocks) - dropout_layers
        packing = Packing(mask, pad_rows=any(block.fused_int8 for block in self.blocks))
        ids = tf.gather(tf.reshape(tf.cast(word_ids, tf.int32), [-1]), packing.token_slots)
        positions = packing.token_slots % packing.seq
        x = self.embeddings(ids[tf.newaxis], tf.zeros_like(ids)[tf.newaxis], positions[tf.newaxis])[0]
        adder = attention_adder_for(mask)
        states = [x]
        x = packing.pad(x)  # [rows, hidden]
        for i, block in enumerate(self.blocks):
            x = block(x, adder, packing=packing, dropout=i >= first_dropped, fixed_weights=fixed_weights)
            states.append(packing.unpad(x))
        # [CLS] is each row's first position; a row with no real token there pools to zeros.
        first = tf.gather(packing.slot_tokens, tf.range(packing.batch) * packing.seq)  # [batch]
        pooled = self.pooler(packing.gather_tokens(x, first))
        return states, tf.where((first < packing.num_tokens)[:, tf.newaxis], pooled, tf.zeros_like(pooled))


def hidden_states(outputs) -> tf.Tensor:
    """`[num_hidden_layers + 1, batch, seq, hidden]`: the embedding output, then every layer."""
    return tf.stack([outputs["embedding_output"], *outputs["encoder_outputs"]], axis=0)

