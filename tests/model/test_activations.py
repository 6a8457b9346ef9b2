"""The activations an encoder is built of (`bert_tf/model/layers.py`), against float64 references."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from bert_tf.model.layers import gelu_erf, gelu_tanh
from bert_tf.runtime import tf
from bert_tf.testing import FLOAT32_EPS

pytestmark = pytest.mark.numerics

# -12..12 finely (past |x| = 6 GELU is x or 0 to float32), and a few far values.
X = np.concatenate([np.linspace(-12, 12, 240_001), [-1e4, -100, -30, 30, 100, 1e4]]).astype(np.float32)


@functools.cache
def _exact_gelu() -> np.ndarray:
    """Exact GELU of `X` in float64, computed once for every test."""
    x = X.astype(np.float64)
    return 0.5 * x * (1.0 + np.frompyfunc(math.erf, 1, 1)(x / math.sqrt(2.0)).astype(np.float64))


def _gelu_error(activation, compiled: bool) -> float:
    """The largest error of `activation` on `X` against float64 exact GELU, in units of
    `FLOAT32_EPS * max(|x|, 1)`."""
    run = tf.function(activation, jit_compile=True) if compiled else activation
    y = run(tf.constant(X)).numpy().astype(np.float64)
    return float(np.max(np.abs(y - _exact_gelu()) / (FLOAT32_EPS * np.maximum(np.abs(X), 1.0))))


@pytest.mark.parametrize("compiled", [False, True], ids=["tensorflow", "xla"])
def test_gelu_erf_is_exact_gelu_to_float32_rounding(compiled):
    """`gelu_erf` is `0.5 * x * (1 + erf(x / sqrt(2)))` to float32 rounding, as TensorFlow's ops and as
    the int8 blocks' XLA kernels compute it. Bound: 4 spacings of float32 at max(|x|, 1). The argument
    x / sqrt(2) is rounded once (moving erf by under half a spacing), erf itself is within about two
    spacings of 1, 1 + erf rounds once (a spacing at 2), and the two products round once each (half a
    spacing of the result, at most |x|): under three spacings in all. The tanh form misses by about 1,500."""
    assert _gelu_error(gelu_erf, compiled) <= 4.0
    assert _gelu_error(gelu_tanh, compiled) > 100.0  # what the bound tells apart


def test_gelu_erf_has_no_erfc():
    """`gelu_erf` is written with erf, not as `tf.nn.gelu(approximate=False)`'s erfc: the same function
    to float32 rounding (above), but XLA's erfc takes an exponential and a branch per element, and the
    int8 block's GELU kernel ran 1.4x as long with it (bench/README.md, GELU without erfc)."""
    graph = tf.function(gelu_erf).get_concrete_function(tf.TensorSpec([None], tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    assert "Erf" in ops and "Erfc" not in ops
