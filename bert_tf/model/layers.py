"""The layers a BERT encoder is built of, each created straight from its initial values: the activations
(`ACTIVATIONS`), a dense layer (`dense_layer`: Keras's, or int8's `QuantizedDense`), LayerNorm as BERT
defines it (`LayerNorm`), and the embeddings (`BertEmbeddings`). The transformer block that combines
them is `block.py`; the encoder, `encoder.py`, whose docstring gives the variable paths these read.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from bert_tf.model.config import LAYER_NORM_EPSILON, BertConfig
from bert_tf.model.norm import layer_norm
from bert_tf.model.quantize import QuantizedDense
from bert_tf.runtime import keras, tf


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
    # That formula, not `tf.nn.gelu(approximate=False)`, which computes `0.5 * x * erfc(-x / sqrt(2))`: the
    # same function (under one float32 step of x apart), but XLA's erfc takes an exponential and a branch.
    # The float layers never see the difference (TensorFlow fuses either form into its matmul, and the kept
    # kernels name oneDNN's GeluExact); in the int8 block's compiled GELU kernel (`int8_block.finish_and_round`)
    # the erfc form took 1.8 ms on 512 rows against 1.3, and the int8 bench pass 1.04x as long (bench/README.md).
    return 0.5 * x * (1.0 + tf.math.erf(x * math.sqrt(0.5)))  # x / sqrt(2) as x times 1 / sqrt(2)


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


def initializer_for(values: Optional[InitialValues], path: str, default: str):
    """The initializer for the variable at `path`: its value from `values`, or Keras's `default`."""
    if values is None:
        return default
    return lambda shape, dtype=None: values(path)


def dense_layer(units, name, values, scope="", activation=None, smooth_input=False, input_divisors=None, **kwargs):
    """The dense layer at `scope/name`, with `activation` when called as a layer; an int8 layer
    applies it itself. (`block.TransformerBlock._dense` reads a float layer's kernel and
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
                              kernel_initializer=initializer_for(values, f"{path}/kernel", "glorot_uniform"),
                              bias_initializer=initializer_for(values, f"{path}/bias", "zeros"))


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

    Only as `layer_norm_layer` builds it: over the last axis, with gamma and beta.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.axis not in (-1, [-1]) or not (self.center and self.scale) or self.rms_scaling:
            raise ValueError("LayerNorm normalises the last axis with gamma and beta only; "
                             "use keras.layers.LayerNormalization for other settings")

    def call(self, x):
        return layer_norm(x, self.gamma, self.beta, self.epsilon)


def layer_norm_layer(name, values, scope=""):
    path = f"{scope}{name}"
    return LayerNorm(
        epsilon=LAYER_NORM_EPSILON, name=name, dtype="float32",
        gamma_initializer=initializer_for(values, f"{path}/gamma", "ones"),
        beta_initializer=initializer_for(values, f"{path}/beta", "zeros"))


class BertEmbeddings(keras.layers.Layer):
    """Word + position + token-type embeddings, then LayerNorm."""

    def __init__(self, config: BertConfig, initial_values: Optional[InitialValues] = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self._values = initial_values
        self.layer_norm = layer_norm_layer("layer_norm", initial_values, "embeddings/")

    def build(self, input_shape=None):
        cfg, h = self.config, self.config.hidden_size

        def table(name, rows):
            init = initializer_for(self._values, f"embeddings/{name}", "zeros")
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
