"""The encoder's forward while fine-tuning: BERT's dropout in the layers being trained.

`BertEncoder` only embeds, so it has no dropout. Fine-tuning without it overfits
the small labelled sets a tagger has, so while a fine-tuned layer trains
(`training=True`) its blocks run here with dropout where Google's `modeling.py`
puts it: on the attention probabilities (`attention_probs_dropout_prob`) and on
the attention output and the feed-forward output before each residual add
(`hidden_dropout_prob`), both rates read from the checkpoint's config. Frozen
layers, the embeddings and every call with `training=False` run the encoder's own
forward (`BertEncoder.token_states`), so features and predictions are unchanged.

`block_forward` restates `TransformerBlock`'s float32 forward with the dropout
added; tests/keras/test_dropout.py pins it to the block's own forward at rate 0,
so the two cannot drift apart silently.
"""

from __future__ import annotations

import math

from bert_tf.errors import InvalidValue
from bert_tf.model.encoder import Packing, attention_adder_for
from bert_tf.runtime import tf


def token_states(encoder, word_ids, mask, *, dropout_layers: int = 0):
    """`encoder.token_states(word_ids, mask)` with BERT's dropout in the top `dropout_layers` blocks.

    Args:
        encoder: a float32 `BertEncoder`.
        word_ids, mask: int32 [batch, seq].
        dropout_layers: how many of the top blocks run with dropout (the fine-tuned ones while
            training); 0 is the encoder's own forward.

    Returns:
        `(states, pooled)` as `BertEncoder.token_states` returns them.

    Raises:
        ValueError: dropout asked of an encoder that does not compute in float32.
    """
    if dropout_layers == 0:
        return encoder.token_states(word_ids, mask)
    if encoder.precision != "float32":
        raise InvalidValue(f"fine-tuning needs a float32 encoder; this one computes in {encoder.precision}")
    config = encoder.config
    first = config.num_hidden_layers - dropout_layers
    # As `BertEncoder.token_states`, with the top blocks replaced by `block_forward`.
    packing = Packing(mask)
    ids = tf.gather(tf.reshape(tf.cast(word_ids, tf.int32), [-1]), packing.token_slots)
    positions = packing.token_slots % packing.seq
    x = encoder.embeddings(ids[tf.newaxis], tf.zeros_like(ids)[tf.newaxis], positions[tf.newaxis])[0]
    adder = attention_adder_for(mask)
    states = [x]
    for i, block in enumerate(encoder.blocks):
        if i < first:
            x = block(x, adder, packing=packing)
        else:
            x = block_forward(block, x, adder, packing, hidden_rate=config.hidden_dropout_prob,
                              attention_rate=config.attention_probs_dropout_prob)
        states.append(x)
    first_token = tf.gather(packing.slot_tokens, tf.range(packing.batch) * packing.seq)  # [batch] the [CLS] tokens
    pooled = encoder.pooler(packing.gather_tokens(x, first_token))
    return states, tf.where((first_token < packing.num_tokens)[:, tf.newaxis], pooled, tf.zeros_like(pooled))


def block_forward(block, x, attention_adder, packing, *, hidden_rate: float, attention_rate: float):
    """One float32 `TransformerBlock` over real tokens `[tokens, hidden]`, with dropout (rates may be 0).

    Args:
        block: the `TransformerBlock` whose weights are used.
        x: [tokens, hidden]; attention_adder and packing: as `TransformerBlock.call` takes them.
        hidden_rate: dropout on the attention output and the feed-forward output (before each residual add).
        attention_rate: dropout on the attention probabilities.

    Returns:
        [tokens, hidden]
    """
    def drop(v, rate):
        return tf.nn.dropout(v, rate=rate) if rate > 0 else v

    q, k, v = (packing.to_heads(layer(x), block.num_heads)  # [batch, heads, seq, head_size]
               for layer in (block.query, block.key, block.value))
    scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(block.head_size))
    probs = drop(tf.nn.softmax(scores + attention_adder, axis=-1), attention_rate)  # [batch, heads, seq, seq]
    context = tf.reshape(packing.from_heads(tf.matmul(probs, v), block.num_heads), tf.shape(x))  # [tokens, hidden]
    x = block.attention_layer_norm(x + drop(block.attention_output(context), hidden_rate))
    y = block.output_dense(block.intermediate(x))  # the intermediate layer applies the activation
    return block.output_layer_norm(x + drop(y, hidden_rate))
