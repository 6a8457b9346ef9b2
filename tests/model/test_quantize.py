"""`precision="int8"`: the quantized dense layer against the arithmetic it defines, and the int8 encoder.

Two kinds of bound, each derived rather than read off a machine:

* oneDNN's kernel against the same quantized arithmetic in float64: the integer products and
  their int32 sums are exact, so what is left is float32 rounding of the dequantized result, of
  the scales and of the bias: a few units of float32 epsilon at the magnitude of the terms summed.
* the quantized product against the exact float product: rounding `x` to uint8 moves each input
  by at most half its row's step `s_x`, rounding `W` to int8 moves each weight by at most half its step
  `s_w`, so output `j` moves by at most `s_x / 2 * sum_k |W[k, j]| + s_w / 2 * sum_k |x[k]|`.
"""

import logging

import numpy as np
import pytest

from bert_tf import logs
from bert_tf.model import hardware as hw
from bert_tf.model import precision as prec
from bert_tf.model import int8_block, quantize
from bert_tf.model.hardware import Hardware
from bert_tf.model.quantize import (INPUT_LEVELS, KERNEL_LEVELS, KERNEL_LEVELS_NO_VNNI, QuantizedDense,
                                     onednn_int8_available, quantize_kernel, smoothing_scales)
from bert_tf.model.layers import gelu_erf, gelu_tanh
from bert_tf.runtime import tf

EPS32 = float(np.finfo(np.float32).eps)
NEEDS_ONEDNN = pytest.mark.skipif(not onednn_int8_available(),
                                  reason="this TensorFlow has no oneDNN int8 matmul kernel")


def _layer(kernel, bias, onednn, kernel_levels=None, ranges="row"):
    layer = QuantizedDense(kernel.shape[1], kernel_value=lambda: kernel, bias_value=lambda: bias, onednn=onednn,
                           kernel_levels=kernel_levels, ranges=ranges)
    layer.build((None, kernel.shape[0]))
    return layer


def _range(x):
    """Each row's range (`quantize.input_ranges`), in float64: `(low, width)`, `[rows, 1]` each."""
    x = x.astype(np.float64)
    low, high = np.minimum(x.min(1, keepdims=True), 0.0), np.maximum(x.max(1, keepdims=True), 0.0)
    return low, np.maximum(high - low, 0.01 * np.maximum(np.maximum(-low, high), 1.0))


def _quantized_reference(x, kernel, bias, kernel_levels=KERNEL_LEVELS):
    """The arithmetic the layer defines, in float64: each row to uint8 over its own range, int8 kernel;
    and where an input lies within float32 rounding of a rounding tie (either level is then right)."""
    values, scale, column_sums = quantize_kernel(kernel, kernel_levels)
    x = x.astype(np.float64)
    low, width = _range(x)
    steps = INPUT_LEVELS / width
    scaled = (x - low) * steps
    levels = np.rint(scaled)  # half to even, as the kernel rounds
    assert levels.min() >= 0 and levels.max() <= INPUT_LEVELS
    product = levels @ values.astype(np.float64)  # exact integers
    ties = np.abs(scaled - np.floor(scaled) - 0.5) < 64 * EPS32 * np.maximum(scaled, 1)
    scale = scale.astype(np.float64)
    tie_bound = ties.astype(np.float64) @ np.abs(values.astype(np.float64)) * (scale / steps)
    return product * (scale / steps) + low * column_sums.astype(np.float64) + bias, tie_bound


def _case(seed, rows=37, fan_in=96, units=80, shift=0.4):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, fan_in)) * 2 + shift).astype(np.float32)
    kernel = (rng.standard_normal((fan_in, units)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    return x, kernel, bias


def test_a_kernel_is_rounded_to_int8_with_one_symmetric_scale_per_column():
    _, kernel, _ = _case(0)
    kernel[:, 3] *= 40  # one column of outliers must not coarsen the others
    values, scale, column_sums = quantize_kernel(kernel)
    assert values.dtype == np.int8 and scale.shape == (kernel.shape[1],)
    assert (np.abs(values).max(0) == KERNEL_LEVELS).all()  # every column uses its full range
    np.testing.assert_array_equal(scale, (np.abs(kernel).max(0) / KERNEL_LEVELS).astype(np.float32))
    assert (np.abs(values * scale - kernel) <= scale / 2 * (1 + 1e-6)).all()
    np.testing.assert_allclose(column_sums, (values.astype(np.float64) * scale).sum(0), rtol=1e-6)
    kernel[:, 1] = 0
    zeros, zero_scale, zero_sums = quantize_kernel(kernel)
    assert not zeros[:, 1].any() and zero_scale[1] == 1 and zero_sums[1] == 0  # no division by zero


@pytest.mark.parametrize("onednn, levels", [pytest.param(True, None, marks=NEEDS_ONEDNN, id="onednn"),
                                            pytest.param(True, KERNEL_LEVELS_NO_VNNI, marks=NEEDS_ONEDNN,
                                                         id="onednn-7-bit-kernels"),
                                            pytest.param(False, None, id="emulated")])
@pytest.mark.parametrize("seed, shift", [(0, 0.4), (1, -3.0), (2, 5.0)])  # mixed signs; all negative; all positive
def test_the_layer_computes_its_quantized_arithmetic(onednn, levels, seed, shift):
    """Exact to float32 rounding, which also shows that no int16 pair sum saturated in oneDNN's
    kernel: where the CPU (or ONEDNN_MAX_CPU_ISA) leaves it without VNNI, 8-bit inputs would."""
    x, kernel, bias = _case(seed, shift=shift)
    layer = _layer(kernel, bias, onednn, levels)
    out = layer(tf.constant(x)).numpy()
    assert out.dtype == np.float32 and out.shape == (x.shape[0], kernel.shape[1])
    _assert_quantized_arithmetic(out, x, kernel, bias, layer.kernel_levels)


def _assert_quantized_arithmetic(out, x, kernel, bias, kernel_levels):
    ref, ties = _quantized_reference(x, kernel, bias, kernel_levels)
    # Terms summed per output: the product (at most sum |levels| * |values| * scale/steps), the offset
    # term and the bias. oneDNN's int32 sums are exact; the emulation's float32 matmul sums blockwise,
    # about log2(inputs) roundings deep; a few more for the scales, the offset and the bias.
    values, scale, _ = quantize_kernel(kernel, kernel_levels)
    low, _ = _range(x)
    magnitude = (np.abs(x - low).sum(1, keepdims=True) @ np.abs(values * scale).max(0, keepdims=True)
                 + np.abs(low) * np.abs(values * scale).sum(0) + np.abs(bias))
    bound = (4 + np.log2(x.shape[1])) * EPS32 * magnitude + ties
    assert (np.abs(out - ref) <= bound).all(), float((np.abs(out - ref) / bound).max())


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_the_layer_is_within_its_rounding_of_the_float_product(onednn):
    x, kernel, bias = _case(3)
    layer = _layer(kernel, bias, onednn)
    out = layer(tf.constant(x)).numpy().astype(np.float64)
    exact = x.astype(np.float64) @ kernel.astype(np.float64) + bias
    _, scale, _ = quantize_kernel(kernel, layer.kernel_levels)
    step_x = _range(x)[1] / INPUT_LEVELS  # [rows, 1]
    bound = (step_x / 2 * np.abs(kernel).sum(0)[None, :]
             + scale[None, :] / 2 * np.abs(x).sum(1, keepdims=True)) * (1 + 1e-4)
    assert (np.abs(out - exact) <= bound).all()
    cos = (out * exact).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(exact, axis=1)
    assert cos.min() > 0.999  # and it is far from a wrong-offset or wrong-scale result


@NEEDS_ONEDNN
def test_onednn_and_the_emulation_agree_at_bert_width():
    """768 inputs: oneDNN's int32 sums against the emulation's float32 ones (inexact beyond 2^24),
    both the same arithmetic to float32 rounding, ties aside."""
    x, kernel, bias = _case(4, rows=300, fan_in=768, units=256)
    native = _layer(kernel, bias, True)
    emulated = _layer(kernel, bias, False, native.kernel_levels)
    for layer in (native, emulated):
        _assert_quantized_arithmetic(layer(tf.constant(x)).numpy(), x, kernel, bias, native.kernel_levels)


@pytest.mark.parametrize("ranges", ["row", "call"])
@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
@pytest.mark.parametrize("activation", [gelu_erf, gelu_tanh, tf.nn.relu, tf.nn.silu], ids=lambda f: f.__name__)
def test_the_activation_is_applied_to_the_quantized_product(onednn, activation, ranges):
    """Per-row ranges scale each row after the kernel, so the activation follows; with one range per
    call GELU, ReLU (and tanh) run inside oneDNN's kernel, others (SiLU) after it: the same values."""
    x, kernel, bias = _case(7)
    plain = _layer(kernel, bias, onednn, ranges=ranges)
    with_activation = QuantizedDense(kernel.shape[1], activation=activation, kernel_value=lambda: kernel,
                                     bias_value=lambda: bias, onednn=onednn, ranges=ranges)
    with_activation.build((None, kernel.shape[0]))
    expected = activation(plain(tf.constant(x))).numpy()
    out = with_activation(tf.constant(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=32 * EPS32 * float(np.abs(expected).max()))
    fused = ranges == "call" and onednn and activation is not tf.nn.silu
    assert (with_activation.fused_activation is not None) == fused


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_a_rows_output_depends_on_that_row_alone(onednn):
    """What makes int8 vectors independent of the batch: the same rows alone, among other rows (a
    row of large values, as a [CLS] or an outlier token has; rows of zeros, as padding) or in
    another order give the same outputs, to float32 rounding of the scaling after the exact int32
    sums. With one range per call (`ranges="call"`) the large row coarsens every other row's steps."""
    x, kernel, bias = _case(12)
    rows = x[:5]
    crowd = np.concatenate([x[5:20], 40 * x[20:21], np.zeros((6, x.shape[1]), np.float32), rows[::-1]])
    for ranges, same in (("row", True), ("call", False)):
        layer = _layer(kernel, bias, onednn, ranges=ranges)
        alone = layer(tf.constant(rows)).numpy()
        among = layer(tf.constant(crowd)).numpy()[-5:][::-1]
        graph = tf.function(lambda v: layer(v))(tf.constant(crowd)).numpy()[-5:][::-1]
        bound = 8 * EPS32 * float(np.abs(alone).max())
        for other in (among, graph):
            assert bool(np.abs(other - alone).max() <= bound) is same, (ranges, np.abs(other - alone).max(), bound)


def test_smoothing_divides_each_channel_by_the_root_of_its_size_over_its_weights():
    a = np.array([1.0, 4.0, 0.0, 9.0])
    kernel = np.array([[1.0, -2.0], [0.5, 1.0], [3.0, 0.0], [0.0, 0.0]])  # row 3: no weights
    s = smoothing_scales(a, kernel)
    raw = np.sqrt(np.array([1 / 2, 4 / 1]))
    np.testing.assert_allclose(s, np.r_[raw / np.sqrt(raw.prod()), 1, 1], rtol=1e-6)  # geometric mean 1
    assert s.dtype == np.float32
    # Several kernels reading one input: the geometric mean of their rows' largest weights.
    other = np.array([[8.0, 0.0], [0.25, 0.0], [1.0, 1.0], [1.0, 0.0]])
    both = np.sqrt(np.array([1 / np.sqrt(2 * 8), 4 / np.sqrt(1 * 0.25)]))
    s2 = smoothing_scales(a, [kernel, other])
    np.testing.assert_allclose(s2[:2], both / np.sqrt(both.prod()), rtol=1e-6)
    assert s2[2] == 1 and s2[3] == 1  # a channel of size 0; a row without weights in one kernel
    with pytest.raises(ValueError, match="input magnitudes of shape \\(3,\\) for a kernel of shape \\(4, 2\\)"):
        smoothing_scales(a[:3], kernel)


def _ln_case(seed, rows=41, fan_in=96, units=80):
    """A LayerNorm's output as a trained BERT's looks: a few channels of every row far larger (gamma,
    beta) than the rest, which a row's range must span."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 1.5, fan_in)
    beta = rng.normal(0, 0.1, fan_in)
    gamma[[3, 40, 77]] = [18.0, -25.0, 12.0]
    beta[[3, 77]] = [6.0, -4.0]
    normalised = rng.standard_normal((rows, fan_in))
    x = (normalised * gamma + beta).astype(np.float32)
    kernel = (rng.standard_normal((fan_in, units)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    return x, kernel, bias, np.abs(gamma) + np.abs(beta)


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_a_smoothed_layer_computes_the_quantized_arithmetic_of_the_smoothed_product(onednn):
    """Smoothing rescales, it does not change what is computed: `(x / s) @ (s W)` quantized as any
    layer is (exact to float32 rounding), and nearer the float product than without it where a few
    channels dominate every row (a trained LayerNorm's output)."""
    x, kernel, bias, sizes = _ln_case(21)
    divisors = smoothing_scales(sizes, kernel)
    smoothed = QuantizedDense(kernel.shape[1], kernel_value=lambda: kernel, bias_value=lambda: bias, onednn=onednn,
                              smooth_input=True, input_divisors=lambda: divisors)
    smoothed.build((None, kernel.shape[0]))
    np.testing.assert_array_equal(smoothed.input_scale.numpy(), (1.0 / divisors).astype(np.float32))
    out = smoothed(tf.constant(x)).numpy()
    x_s = x * smoothed.input_scale.numpy()  # float32 products, as the layer's
    _assert_quantized_arithmetic(out, x_s, kernel * divisors[:, None], bias, smoothed.kernel_levels)

    plain = _layer(kernel, bias, onednn)
    assert plain.input_scale is None
    exact = x.astype(np.float64) @ kernel.astype(np.float64) + bias
    error = {name: np.abs(layer(tf.constant(x)).numpy() - exact).mean() for name, layer in
             (("smoothed", smoothed), ("plain", plain))}
    assert error["smoothed"] < 0.7 * error["plain"], error  # 0.38x here, 0.53x with 7-bit kernels


def test_smoothing_needs_positive_divisors_one_per_input():
    _, kernel, bias = _case(14)
    for bad in (np.ones(5, np.float32), np.r_[np.zeros(1), np.ones(kernel.shape[0] - 1)].astype(np.float32)):
        layer = QuantizedDense(kernel.shape[1], kernel_value=lambda: kernel, bias_value=lambda: bias,
                               smooth_input=True, input_divisors=lambda b=bad: b)
        with pytest.raises(ValueError, match=f"input divisors must be {kernel.shape[0]} positive numbers"):
            layer.build((None, kernel.shape[0]))
    unloaded = QuantizedDense(kernel.shape[1], smooth_input=True)  # weights to be loaded: divisors of 1 for now
    unloaded.build((None, kernel.shape[0]))
    np.testing.assert_array_equal(unloaded.input_scale.numpy(), np.ones(kernel.shape[0], np.float32))


def test_the_input_ranges_are_one_of_two():
    _, kernel, bias = _case(13)
    with pytest.raises(ValueError, match="ranges must be one of row, call; got 'batch'"):
        _layer(kernel, bias, False, ranges="batch")


def test_rows_are_padded_to_few_sizes_with_little_padding():
    """`output_levels`' compiled kernel is built once per padded size: few sizes, each at least the
    rows: powers of two up to 64, then multiples of 64 (under 64 rows of padding) and, past 2048
    rows, under 1/16 of the rows."""
    counts = list(range(0, 2100)) + [4095, 4096, 4097, 8191, 8193, 33000]
    padded = [int(quantize.padded_rows(n)) for n in counts]
    for n, rows in zip(counts, padded):
        assert rows >= max(n, 1)
        if n <= 64:
            assert rows in (8, 16, 32, 64) and (rows == 8 or rows // 2 < n), (n, rows)
        else:
            assert rows % 64 == 0 and rows - n < (64 if n <= 2048 else rows / 16), (n, rows)
    assert len({rows for n, rows in zip(counts, padded) if n <= 2048}) == 35
    assert [int(quantize.padded_rows(n)) for n in (4097, 8193)] == [4096 + 256, 8192 + 512]


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
@pytest.mark.parametrize("rows", [1, 37, 300])
def test_the_compiled_finish_is_the_next_layers_rounding_of_the_output(onednn, rows):
    """`int8_block.finish_and_round` (one XLA-compiled kernel, on rows padded with zeros) gives the levels a next
    layer rounds the layer's output to, ties aside, and the same next output to float32 rounding."""
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((rows, 64)) * 2 + 0.3).astype(np.float32)
    first = QuantizedDense(96, activation=gelu_erf, kernel_value=lambda: (rng.standard_normal((64, 96)) * 0.2)
                           .astype(np.float32), bias_value=lambda: rng.standard_normal(96).astype(np.float32),
                           onednn=onednn)
    second = QuantizedDense(40, kernel_value=lambda: (rng.standard_normal((96, 40)) * 0.1).astype(np.float32),
                            bias_value=lambda: rng.standard_normal(40).astype(np.float32), onednn=onednn)
    first.build((None, 64))
    second.build((None, 96))
    padded = int(quantize.padded_rows(rows))
    levels, low, steps = first.input_levels(tf.constant(np.pad(x, [(0, padded - rows), (0, 0)])))
    fused = [t.numpy()[:rows] for t in int8_block.finish_and_round(first, first.product(levels), low, steps)]
    between = first(tf.constant(x)).numpy()
    expected_levels, expected_low, expected_steps = (t.numpy() for t in quantize.round_rows(tf.constant(between)))
    np.testing.assert_allclose(fused[1], expected_low, rtol=0, atol=8 * EPS32 * float(np.abs(between).max()))
    np.testing.assert_allclose(fused[2], expected_steps, rtol=16 * EPS32)
    scaled = (between.astype(np.float64) - expected_low) * expected_steps
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-4 * np.maximum(scaled, 1)
    differ = fused[0] != expected_levels
    assert not (differ & ~near_tie).any()
    assert (np.abs(fused[0].astype(int) - expected_levels) <= 1).all()
    expected = second(tf.constant(between)).numpy()
    out = second.from_levels(quantize.InputLevels(*(tf.constant(t) for t in fused))).numpy()
    tie_bound = differ.astype(np.float64) @ np.abs(second.kernel.numpy() * second.kernel_scale.numpy()) / expected_steps
    bound = 64 * EPS32 * float(np.abs(expected).max()) + tie_bound
    assert (np.abs(out - expected) <= bound).all()


@NEEDS_ONEDNN
def test_layers_of_one_shape_keep_their_own_kernels_eagerly_and_in_graphs():
    """oneDNN's kernel caches the reordered weights; eager ops share one kernel per signature, so a
    cache there would hand the first layer's weights to the next layer of the same shape."""
    x = tf.constant(_case(8)[0])
    for seed in (9, 10, 11):
        _, kernel, bias = _case(seed)
        native = _layer(kernel, bias, True)
        emulated = _layer(kernel, bias, False, native.kernel_levels)
        expected = emulated(x).numpy()
        for out in (native(x).numpy(), tf.function(lambda v: native(v))(x).numpy()):
            np.testing.assert_allclose(out, expected, rtol=0, atol=64 * EPS32 * float(np.abs(expected).max()))


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_a_constant_input_gives_the_exact_offset_product(onednn):
    _, kernel, bias = _case(5)
    x = np.full((3, kernel.shape[0]), -1.25, np.float32)  # no range at all: all of it is the offset term
    layer = _layer(kernel, bias, onednn)
    out = layer(tf.constant(x)).numpy()
    values, scale, _ = quantize_kernel(kernel, layer.kernel_levels)
    expected = x.astype(np.float64) @ (values.astype(np.float64) * scale) + bias
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=0, atol=16 * EPS32 * float(np.abs(expected).max()))


def test_the_int8_encoder_holds_int8_kernels_and_returns_float32(make_checkpoint):
    from bert_tf.model.checkpoint import load_encoder
    from tests.conftest import random_batch

    directory, _ = make_checkpoint()
    config, e32 = load_encoder(directory)
    _, e8 = load_encoder(directory, compute_dtype="int8")
    assert e8.precision == "int8"
    dense = [layer for block in e8.blocks for layer in
             (block.query, block.key, block.value, block.attention_output, block.intermediate, block.output_dense)]
    assert all(isinstance(layer, QuantizedDense) and layer.kernel.dtype == "int8" for layer in dense)
    assert not any(v.dtype == "float32" and tuple(v.shape) == (config.hidden_size, config.intermediate_size)
                   for v in e8.variables)  # the float32 kernels are not kept beside the int8 ones
    inputs = random_batch(config, [9, 6, 3])
    a, b = e32(inputs), e8(inputs)
    mask = inputs["input_mask"] == 1
    for key in ("sequence_output", "pooled_output", "embedding_output"):
        assert b[key].dtype == np.float32, key
    x, y = a["sequence_output"].numpy()[mask], b["sequence_output"].numpy()[mask]
    cos = (x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1)
    assert cos.min() > 0.99 and not np.array_equal(x, y)
    np.testing.assert_array_equal(a["embedding_output"].numpy(), b["embedding_output"].numpy())


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_a_layer_saved_before_smoothing_loads_and_computes_as_it_did(onednn):
    """A .keras file from before smoothing has four variables per int8 layer (no input_scale, its
    kernel rounded unsmoothed): loaded into today's layer, it computes as the old layer did."""
    x, kernel, bias, sizes = _ln_case(22)
    old = _layer(kernel, bias, onednn)
    store = {str(i): v.numpy() for i, v in enumerate(old.weights)}
    assert len(store) == 4
    new = QuantizedDense(kernel.shape[1], onednn=onednn, smooth_input=True)
    new.build((None, kernel.shape[0]))
    new.input_scale.assign(np.full(kernel.shape[0], 3.0, np.float32))  # anything but 1
    new.load_own_variables(store)
    np.testing.assert_array_equal(new.input_scale.numpy(), np.ones(kernel.shape[0], np.float32))
    np.testing.assert_array_equal(new(tf.constant(x)).numpy(), old(tf.constant(x)).numpy())
    smoothed = QuantizedDense(kernel.shape[1], kernel_value=lambda: kernel, bias_value=lambda: bias, onednn=onednn,
                              smooth_input=True, input_divisors=lambda: smoothing_scales(sizes, kernel))
    smoothed.build((None, kernel.shape[0]))
    new.load_own_variables({str(i): v.numpy() for i, v in enumerate(smoothed.weights)})  # today's five
    np.testing.assert_array_equal(new(tf.constant(x)).numpy(), smoothed(tf.constant(x)).numpy())


def test_the_int8_encoder_smooths_what_a_layernorm_writes(make_checkpoint):
    """query, key and value share the divisors of the LayerNorm below them (so their input is rounded
    once, bit-identical to rounding it for each); intermediate has its block's attention LayerNorm's;
    attention_output and output, which read no LayerNorm, are not smoothed."""
    from bert_tf.model.checkpoint import load_encoder

    directory, weights = make_checkpoint("tiny", seed=3)
    config, e8 = load_encoder(directory, compute_dtype="int8")

    def sizes(scope):
        return np.abs(weights[f"bert/{scope}/LayerNorm/gamma"]) + np.abs(weights[f"bert/{scope}/LayerNorm/beta"])

    for i, block in enumerate(e8.blocks):
        below = "embeddings" if i == 0 else f"encoder/layer_{i - 1}/output"
        tf1 = f"bert/encoder/layer_{i}/attention/self"
        expected = smoothing_scales(sizes(below), [weights[f"{tf1}/{n}/kernel"] for n in ("query", "key", "value")])
        for layer in (block.query, block.key, block.value):
            np.testing.assert_array_equal(layer.input_scale.numpy(), (1.0 / expected).astype(np.float32))
        intermediate = smoothing_scales(sizes(f"encoder/layer_{i}/attention/output"),
                                        weights[f"bert/encoder/layer_{i}/intermediate/dense/kernel"])
        np.testing.assert_array_equal(block.intermediate.input_scale.numpy(), (1.0 / intermediate).astype(np.float32))
        assert block.attention_output.input_scale is None and block.output_dense.input_scale is None
        x = tf.constant(np.random.default_rng(i).standard_normal((7, config.hidden_size)).astype(np.float32))
        shared = block._query_key_value(x)
        for y, layer in zip(shared, (block.query, block.key, block.value)):
            np.testing.assert_array_equal(y.numpy(), layer(x).numpy())


@pytest.mark.parametrize("flags, environ, vnni", [
    (frozenset({"avx2", "avx512f", "avx512_vnni"}), {}, True),
    (frozenset({"avx2", "avx_vnni"}), {}, True),
    (frozenset({"avx2", "amx_int8"}), {}, True),
    (frozenset({"avx2", "avx512f"}), {}, False),  # Skylake: AVX-512 without VNNI
    (frozenset({"avx2", "fma"}), {}, False),
    (frozenset({"avx2", "avx512f", "avx512_vnni"}), {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
    (frozenset({"avx2", "avx512f", "avx512_vnni"}), {"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}, True),
])
def test_vnni_is_read_from_the_cpu_flags_and_onednn_cap(flags, environ, vnni):
    assert hw.int8_has_vnni(flags, environ) is vnni


def test_7_bit_kernels_are_the_default_without_vnni(monkeypatch):
    _, kernel, bias = _case(6)
    monkeypatch.setattr(quantize, "int8_has_vnni", lambda flags=None, environ=None: False)
    assert _layer(kernel, bias, True).kernel_levels == KERNEL_LEVELS_NO_VNNI
    assert _layer(kernel, bias, False).kernel_levels == KERNEL_LEVELS  # the emulation cannot saturate
    monkeypatch.setattr(quantize, "int8_has_vnni", lambda flags=None, environ=None: True)
    assert _layer(kernel, bias, True).kernel_levels == KERNEL_LEVELS


def test_int8_is_resolved_and_never_chosen_by_auto(monkeypatch):
    monkeypatch.setattr(logs, "_said", set())
    cpu = Hardware(True, None, "the CPU has AVX512_BF16")
    assert prec.resolve_precision("int8", cpu) == "int8"
    assert prec.resolve_precision("auto", cpu) == "bfloat16"


def test_int8_on_a_gpu_is_refused_with_what_to_use():
    with pytest.raises(ValueError, match="precision='int8' uses oneDNN's CPU int8 kernels.*use precision='auto'"):
        prec.check_int8_runs(Hardware(True, (9, 0), "a GPU of compute capability 9.0"), onednn_int8=True)


def test_int8_without_onednn_warns_once_that_it_is_emulated(monkeypatch, caplog):
    monkeypatch.setattr(logs, "_said", set())
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        for _ in range(3):
            prec.check_int8_runs(Hardware(False, None, ""), onednn_int8=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "slower than float32" in warnings[0] and "no oneDNN int8 matmul kernel" in warnings[0]


@pytest.mark.parametrize("onednn", [pytest.param(True, marks=NEEDS_ONEDNN), False], ids=["onednn", "emulated"])
def test_the_compiled_int8_block_computes_its_layers_arithmetic(make_checkpoint, monkeypatch, onednn):
    """`int8_block.call` (six compiled kernels on padded rows) against the block's layers called one by
    one (the `QuantizedDense` and `LayerNorm` layers, TensorFlow ops), on the embeddings of three texts:
    the same to float32 rounding, but for a rare input that float32 rounding moves across a level."""
    from bert_tf.model.checkpoint import load_encoder
    from bert_tf.model.encoder import attention_adder_for
    from bert_tf.model.packing import Packing
    from bert_tf.testing import float32_bound
    from tests.conftest import random_batch

    monkeypatch.setattr(quantize, "onednn_int8_available", lambda: onednn)
    directory, _ = make_checkpoint(intermediate_size=96)
    config, encoder = load_encoder(directory, compute_dtype="int8")
    block = encoder.blocks[0]
    assert block.fused_int8 and block.query.onednn == onednn
    inputs = random_batch(config, [9, 17, 4], seed=3)
    mask = tf.constant(inputs["input_mask"])
    x = encoder.token_states(inputs["input_word_ids"], mask)[0][0]  # the embeddings, [tokens, hidden]
    adder = attention_adder_for(tf.cast(mask, tf.float32))
    packing = Packing(mask)
    heads = [packing.to_heads(layer(x), block.num_heads) for layer in (block.query, block.key, block.value)]
    probs = tf.nn.softmax(tf.matmul(heads[0], heads[1], transpose_b=True) / np.sqrt(block.head_size) + adder)
    attended = block.attention_layer_norm(x + block.attention_output(packing.from_heads(tf.matmul(probs, heads[2]),
                                                                                        block.num_heads)))
    expected = block.output_layer_norm(attended + block.output_dense(block.intermediate(attended))).numpy()

    padded = Packing(mask, pad_rows=True)
    assert int(padded.rows) == 32 and int(padded.num_tokens) == 30
    out = int8_block.call(block, padded.pad(x), adder, padded).numpy()
    assert out.shape == (32, config.hidden_size) and np.isfinite(out).all()
    diff = np.abs(out[:30] - expected)
    bound = float32_bound(expected, depth=2, width=config.intermediate_size)
    assert np.mean(diff > bound) < 0.02 and diff.max() < 0.02 * np.abs(expected).max(), (diff.max(), bound)
    # The block as the encoder calls it: packed and padded, and in the padded [batch, seq] layout.
    np.testing.assert_array_equal(block(padded.pad(x), adder, packing=padded).numpy(), out)
    full = block(encoder.embeddings(inputs["input_word_ids"], inputs["input_type_ids"] * 0), adder).numpy()
    np.testing.assert_allclose(full[inputs["input_mask"] == 1], out[:30], rtol=0, atol=bound)
