"""LayerNorm's arithmetic, shared by the `encoder.LayerNorm` layer and the compiled int8 kernels
(`int8_block.py`)."""

from __future__ import annotations

from bert_tf.runtime import tf


def layer_norm(x, gamma, beta, epsilon):
    """`(x - mean) / sqrt(variance + epsilon) * gamma + beta` over the last axis, the variance of
    `x - mean`, as Google's and Hugging Face's BERT define it (`encoder.LayerNorm` says why it is
    computed this way)."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centred = x - mean
    variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
    scale = tf.math.divide_no_nan(1.0, tf.sqrt(variance + epsilon))  # [tokens, 1]: see encoder.LayerNorm
    return tf.nn.bias_add(centred * gamma * scale, beta)
