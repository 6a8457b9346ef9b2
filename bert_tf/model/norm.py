"""LayerNorm's arithmetic, shared by the `layers.LayerNorm` layer and the compiled int8 kernels
(`int8_block.py`)."""

from __future__ import annotations

import contextlib
import contextvars

from bert_tf.runtime import tf

_DIVIDED = contextvars.ContextVar("layer_norm_divided", default=False)


@contextlib.contextmanager
def divided():
    """Within it, `layer_norm` divides the centred values by `sqrt(variance + epsilon)`, for graphs
    converted to LiteRT (`litert.py`): there `divide_no_nan` becomes EQUAL, SELECT and DIV, two ops XNNPACK
    does not run, so every LayerNorm split the model into another part (BERT-Base: 63 parts, 38 without).
    The converter makes the division an RSQRT and a multiply, which XNNPACK runs alike on one token or
    many (tests/model/test_litert.py checks a text alone and in batches)."""
    token = _DIVIDED.set(True)
    try:
        yield
    finally:
        _DIVIDED.reset(token)


def layer_norm(x, gamma, beta, epsilon, accumulate=None):
    """`(x - mean) / sqrt(variance + epsilon) * gamma + beta` over the last axis, the variance of
    `x - mean`, as Google's and Hugging Face's BERT define it (`layers.LayerNorm` says why it is
    computed this way).

    `accumulate=tf.float64` sums the mean and the variance in float64 and rounds them to float32:
    then the order of the sums cannot change them (short of a float64 sum within 1e-16 of a float32
    rounding boundary). XLA orders a row's sum by the shape of the whole input, so the compiled int8
    kernels (`int8_block.py`) need it for a token's values not to depend on its batch.
    """
    wide = x.dtype if accumulate is None else accumulate  # tf.cast to the same dtype adds no op

    def mean(values):
        return tf.cast(tf.reduce_mean(tf.cast(values, wide), axis=-1, keepdims=True), x.dtype)

    centred = x - mean(x)
    variance = mean(tf.square(tf.cast(centred, wide)))
    if _DIVIDED.get():
        return tf.nn.bias_add(centred / tf.sqrt(variance + epsilon) * gamma, beta)
    scale = tf.math.divide_no_nan(1.0, tf.sqrt(variance + epsilon))  # [tokens, 1]: see layers.LayerNorm
    return tf.nn.bias_add(centred * gamma * scale, beta)
