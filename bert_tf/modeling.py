"""The BERT encoder as a Keras 3 model (TensorFlow backend), inference only.

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
There is no dropout: this model only embeds.
"""

from __future__ import annotations

import math

from bert_tf._tf import keras, tf
from bert_tf.config import LAYER_NORM_EPSILON, BertConfig

#: Added to attention logits at padding positions, as in Google's modeling.py
#: (`adder = (1.0 - mask) * -10000.0`), rather than -inf: identical softmax
#: for real tokens, and no NaN for an all-padding row.
ATTENTION_MASK_ADDER = -10000.0

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
ENCODER_OUTPUTS = ("sequence_output", "pooled_output", "encoder_outputs", "embedding_output")


def gelu_erf(x):
    """Exact GELU, x * Phi(x).

    This is what `hidden_act: "gelu"` means for Google's released checkpoints:
    the 2018 `modeling.py` they were trained with computed
    `0.5 * x * (1 + erf(x / sqrt(2)))`, and Hugging Face's `gelu` is the same.
    Google later switched its code to the tanh approximation; on the real
    all-MiniLM-L6-v2 weights the erf form reproduces Hugging Face to ~1e-6
    while the tanh form drifts by ~1e-3 (see tests/test_parity.py), so erf is
    the default for "gelu".
    """
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """The tanh approximation of GELU (Google's current modeling.py, HF `gelu_new`)."""
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "swish": tf.nn.silu,
}


def _layer_norm(name):
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name, dtype="float32")


class BertEmbeddings(keras.layers.Layer):
    """Word + position + token-type embeddings, then LayerNorm."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.layer_norm = _layer_norm("layer_norm")

    def build(self, input_shape=None):
        cfg, h = self.config, self.config.hidden_size
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(cfg.vocab_size, h), initializer="zeros")
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings", shape=(cfg.type_vocab_size, h), initializer="zeros")
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(cfg.max_position_embeddings, h), initializer="zeros")
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

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.activation = ACTIVATIONS[config.hidden_act]
        self.query = keras.layers.Dense(h, name="query")
        self.key = keras.layers.Dense(h, name="key")
        self.value = keras.layers.Dense(h, name="value")
        self.attention_output = keras.layers.Dense(h, name="attention_output")
        self.attention_layer_norm = _layer_norm("attention_layer_norm")
        self.intermediate = keras.layers.Dense(config.intermediate_size, name="intermediate")
        self.output_dense = keras.layers.Dense(h, name="output")
        self.output_layer_norm = _layer_norm("output_layer_norm")
        self._hidden = h

    def build(self, input_shape=None):
        h = self._hidden
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build((None, None, h))
        self.output_dense.build((None, None, self.intermediate.units))
        self.attention_layer_norm.build((None, None, h))
        self.output_layer_norm.build((None, None, h))
        self.built = True

    def _split_heads(self, x, batch, seq):
        # [batch * seq or batch, seq, hidden] -> [batch, heads, seq, head_size]
        x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, x, attention_adder, packing=None):
        """One layer.

        Args:
            x: `[batch, seq, hidden]`; or, with `packing`, only the real tokens, `[tokens, hidden]`.
            attention_adder: `[batch, 1, 1 or seq, seq]`, 0 where attention is allowed, -10000 elsewhere.
            packing: None, or a `Packing`: the dense layers (97% of the FLOPs) then run on real
                tokens only, and just the attention scores are computed in the padded layout.
        """
        q, k, v = self.query(x), self.key(x), self.value(x)
        if packing is None:
            batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        else:
            batch, seq = packing.batch, packing.seq
            q, k, v = packing.to_padded(q), packing.to_padded(k), packing.to_padded(v)
        q, k, v = (self._split_heads(t, batch, seq) for t in (q, k, v))
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.head_size))
        probs = tf.nn.softmax(scores + attention_adder, axis=-1)  # [batch, heads, seq, seq]
        context = tf.matmul(probs, v)  # [batch, heads, seq, head_size]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, seq, self._hidden])
        if packing is not None:
            context = packing.to_tokens(context)
        x = self.attention_layer_norm(x + self.attention_output(context))
        y = self.output_dense(self.activation(self.intermediate(x)))
        return self.output_layer_norm(x + y)


class Packing:
    """Moves per-token tensors between the padded `[batch, seq, ...]` layout and `[tokens, ...]`.

    `tokens` are the real (mask = 1) positions in row-major order, the order
    `tf.boolean_mask(x, mask)` gives.
    """

    def __init__(self, mask):
        # mask: [batch, seq], 1 for real tokens
        self.batch, self.seq = tf.shape(mask)[0], tf.shape(mask)[1]
        flat = tf.reshape(tf.cast(mask, tf.bool), [-1])  # [batch * seq]
        self.token_slots = tf.cast(tf.where(flat)[:, 0], tf.int32)  # [tokens] slot of each real token
        self.num_tokens = tf.size(self.token_slots)
        # [batch * seq]: the token at each slot, or num_tokens (a zero row) for padding.
        self.slot_tokens = tf.where(flat, tf.cumsum(tf.cast(flat, tf.int32)) - 1, self.num_tokens)

    def to_padded(self, x):
        """`[tokens, d]` -> `[batch, seq, d]`, zeros at padding."""
        padded = tf.gather(tf.concat([x, tf.zeros_like(x[:1])], axis=0), self.slot_tokens)
        return tf.reshape(padded, [self.batch, self.seq, -1])

    def to_tokens(self, x):
        """`[batch, seq, d]` -> `[tokens, d]`."""
        return tf.gather(tf.reshape(x, [self.batch * self.seq, -1]), self.token_slots)


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

    def __init__(self, config: BertConfig, **kwargs):
        kwargs.setdefault("name", "bert")
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = BertEmbeddings(config, name="embeddings")
        self.blocks = [TransformerBlock(config, name=f"layer_{i}")
                       for i in range(config.num_hidden_layers)]
        self.pooler = keras.layers.Dense(config.hidden_size, activation="tanh", name="pooler")
        self.embeddings.build()
        for block in self.blocks:
            block.build()
        self.pooler.build((None, config.hidden_size))
        self.built = True

    @property
    def layers_(self) -> list[TransformerBlock]:
        """The transformer blocks, in order."""
        return list(self.blocks)

    def call(self, inputs, position_ids=None, attention_adder=None):
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        x = self.embeddings(word_ids, type_ids, position_ids)
        embedding_output = x
        if attention_adder is None:
            # [batch, 1, 1, seq]: every query position sees every real key position.
            attention_adder = (1.0 - mask[:, tf.newaxis, tf.newaxis, :]) * ATTENTION_MASK_ADDER
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

    def token_states(self, word_ids, mask):
        """Every hidden state of the real tokens only, computed without padding in the dense layers.

        The same numbers as `call` (up to float rounding) at a cost proportional to the
        real tokens: only attention scores see the padded layout.

        Args:
            word_ids, mask: int32 `[batch, seq]`; token type ids are taken as 0.

        Returns:
            `(states, pooled)`: `states` is a list of `num_hidden_layers + 1` tensors
            `[tokens, hidden]` (embedding output first; tokens in the row-major order of
            `tf.boolean_mask(x, mask)`), `pooled` is `[batch, hidden]`.
        """
        packing = Packing(mask)
        ids = tf.gather(tf.reshape(tf.cast(word_ids, tf.int32), [-1]), packing.token_slots)
        positions = packing.token_slots % packing.seq
        x = self.embeddings(ids[tf.newaxis], tf.zeros_like(ids)[tf.newaxis], positions[tf.newaxis])[0]
        adder = (1.0 - tf.cast(mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]) * ATTENTION_MASK_ADDER
        states = [x]
        for block in self.blocks:
            x = block(x, adder, packing=packing)
            states.append(x)
        # [CLS] is the first real token of each row.
        first = tf.gather(packing.slot_tokens, tf.range(packing.batch) * packing.seq)
        return states, self.pooler(tf.gather(x, first))


def hidden_states(outputs) -> tf.Tensor:
    """`[num_hidden_layers + 1, batch, seq, hidden]`: the embedding output, then every layer."""
    return tf.stack([outputs["embedding_output"], *outputs["encoder_outputs"]], axis=0)

