"""int8 dense layers: the `precision="int8"` encoder's matmuls.

Dynamic quantization, as ONNX Runtime's `quantize_dynamic` does it, but with a
scale per kernel column and a range per input row:

* each dense kernel is rounded once, when the model is built, to int8 with one
  symmetric scale per output column (`max|W[:, j]| / 127`): a trained BERT has a
  few weights far larger than the rest, and one scale for the whole kernel
  (ONNX Runtime's default) rounds every other column coarsely (7 bits on CPUs
  without VNNI, where oneDNN's kernel adds pairs of products in saturating int16);
* each row of the input (one token's activations, `[tokens, in]`) is rounded to
  uint8 over its own asymmetric range (its minimum and maximum), so the range
  follows the data, needs no calibration set, and a token's rounding depends on
  that token alone: a text's vectors are the same alone and in any batch, with
  any neighbours or padding (to float32 rounding), as in float32;
* the product is accumulated in int32 (oneDNN's VNNI kernels where the CPU has
  them, TensorFlow's `_QuantizedMatMul`) and comes back float32, scaled by each
  column's kernel scale; each row's input step, offset term, the bias and the
  activation follow in float32.

Inputs that a LayerNorm writes (the query, key, value and intermediate layers') are
smoothed first, as SmoothQuant does (Xiao et al., 2023), but without calibration data: a
trained BERT's LayerNorms give a few channels of every token far larger values than the
rest (large gamma or beta), and a row's range spans them, so its other channels round
coarsely. Each input channel j is divided by `s_j = sqrt(a_j / w_j)` and the kernel's row
j multiplied by it (`x @ W = (x / s) @ (s W)`, exact before rounding), where `a_j =
|gamma_j| + |beta_j|` is the channel's size at a normalised value of 1 and `w_j` the
largest weight of the kernel's row j (query, key and value share one `s`, from the
geometric mean of their three rows' largest weights, so their input is rounded once):
range moves from the outlier channels into the kernel rows, whose columns have scales of
their own. On the real all-MiniLM-L6-v2 (290 natural sentences, the last four layers
summed, every token against float32) the mean cosine goes from 0.99950 to 0.99960 and the
minimum from 0.99857 to 0.99864 (7-bit kernels: 0.99876 to 0.99889, 0.99337 to 0.99359),
at the same speed. Measured and not taken: `s` of their own for query, key and value
(0.99966, but three roundings of one input: 6% fewer sentences/s); a migration strength of
0.35 or 0.65 instead of 0.5 (0.99960, 0.99958); the output layer's post-GELU input smoothed
by channel sizes estimated from the weights (worse: 0.99941).

The input's offset is handled exactly: `x = lo + x_shifted` per row, so
`x @ W = x_shifted @ W + lo * colsum(W)`; the second term is row `lo` times a
column vector, and `x_shifted >= 0` is what oneDNN's u8 x s8 kernel takes.
oneDNN's kernel takes one input scale per call, so each row's levels go in as
integers (scale 1) and the row's step multiplies the int32 product afterwards,
which is exact: the step is a factor of the whole row. One range per call (ONNX
Runtime's way, `ranges="call"`, kept for comparison: `bench/int8_rows.py`) lets the
kernel apply the scale, the bias and GELU itself, but makes a text's vectors
depend on the other texts of its model call.

Per-row ranges leave the work between two matmuls to elementwise ops, each a pass over
`[tokens, out]` as TensorFlow ops: at 2048 tokens they took more of an int8 encoder call than its
matmuls. In the encoder each stretch between two matmuls is one XLA-compiled kernel instead
(`int8_block.py`), built from the same functions (`round_rows`, `finish_rows`), on rows padded to one
of a few counts (`padded_rows`), since XLA compiles a kernel per shape.

Where TensorFlow has no oneDNN int8 kernel (builds without oneDNN),
`QuantizedDense` computes the same quantized arithmetic in float32: the same
results to float32 rounding, slower than float32.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from bert_tf.model import onednn
from bert_tf.model.hardware import int8_has_vnni
from bert_tf.runtime import keras, tf

#: Largest int8 magnitude used for kernels (symmetric: -127..127, as oneDNN and ONNX Runtime use),
#: where oneDNN sums u8 x s8 products in int32 (VNNI, AMX-INT8); also oneDNN's reading of a kernel:
#: `value * range / 127`.
KERNEL_LEVELS = 127.0
#: Kernel levels without VNNI: oneDNN then adds pairs of u8 x s8 products in saturating int16, and
#: 2 x 255 x 63 = 32130 is the largest pair sum that stays below 2^15. The kernels lose the bit rather
#: than the inputs: with one scale per column they round finely, while the inputs' per-call range is
#: where a trained model's error comes from (7-bit inputs: mean cosine 0.979 on the real model's
#: words against 0.994 for 7-bit kernels).
KERNEL_LEVELS_NO_VNNI = 63.0
#: uint8 levels for the shifted inputs.
INPUT_LEVELS = 255.0
#: SmoothQuant's migration strength: the share of an input channel's size moved into the kernel's row.
SMOOTHING_ALPHA = 0.5
#: `QuantizeV2`'s `ensure_minimum_range`: a range is at least this share of max(1, |min|, |max|).
MINIMUM_RANGE = 0.01


def quantize_kernel(kernel: np.ndarray, levels: float = KERNEL_LEVELS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A float kernel `[in, out]` as `(int8 values, scales, column sums)`.

    `values * scales` (one scale per output column, `[out]` float32; values within
    `-levels..levels`) is the kernel the layer computes with; the column sums are of that
    dequantized kernel, `[out]` float32, for the input-offset term. A column of zeros gets scale 1.
    """
    check_kernel_levels(levels)
    kernel = np.asarray(kernel, dtype=np.float32)
    largest = np.max(np.abs(kernel), axis=0) if kernel.size else np.zeros(kernel.shape[1:], np.float32)
    scales = np.where(largest > 0, largest / levels, 1.0).astype(np.float32)
    values = np.clip(np.rint(kernel / scales), -levels, levels).astype(np.int8)
    column_sums = (values.astype(np.float64).sum(axis=0) * scales.astype(np.float64)).astype(np.float32)
    return values, scales, column_sums


def smoothing_scales(magnitudes: np.ndarray, kernels: Sequence[np.ndarray] | np.ndarray,
                     alpha: float = SMOOTHING_ALPHA) -> np.ndarray:
    """SmoothQuant's per-input-channel divisors `s` for kernels `[in, out]` that read one input (module
    docstring): `s_j = a_j^alpha / w_j^(1 - alpha)` for the channel sizes `a` (`magnitudes`, `[in]`),
    where `w_j` is row j's largest weight magnitude (for several kernels, the geometric mean of their
    rows' largest), scaled to a geometric mean of 1; 1 where `a_j` or `w_j` is 0 or not finite.
    Each layer then computes `(x / s) @ (s[:, None] * W)`. Returns float32 `[in]`.

    Raises:
        ValueError: `magnitudes` does not have one value per kernel row.
    """
    kernels = [kernels] if isinstance(kernels, np.ndarray) else list(kernels)
    a = np.abs(np.asarray(magnitudes, dtype=np.float64))
    for kernel in kernels:
        if a.shape != np.shape(kernel)[:1]:
            raise ValueError(f"input magnitudes of shape {a.shape} for a kernel of shape {np.shape(kernel)}")
    with np.errstate(divide="ignore"):
        w = np.exp(np.mean([np.log(np.max(np.abs(np.asarray(k, np.float64)), axis=1)) if np.size(k)
                            else np.full(a.shape, -np.inf) for k in kernels], axis=0))
    usable = (a > 0) & (w > 0) & np.isfinite(a) & np.isfinite(w)
    s = np.ones_like(a)
    s[usable] = a[usable] ** alpha / w[usable] ** (1 - alpha)
    if usable.any():
        s[usable] /= np.exp(np.mean(np.log(s[usable])))
    return s.astype(np.float32)


def check_kernel_levels(levels) -> float:
    """`levels` as a float, if it is `KERNEL_LEVELS` or `KERNEL_LEVELS_NO_VNNI`.

    Raises:
        ValueError: any other value.
    """
    if levels not in (KERNEL_LEVELS, KERNEL_LEVELS_NO_VNNI):
        raise ValueError(f"kernel levels must be {KERNEL_LEVELS:g} or {KERNEL_LEVELS_NO_VNNI:g}; got {levels!r}")
    return float(levels)


#: What oneDNN's int8 matmul can apply to its output in the same kernel, by the activation
#: functions of `layers.ACTIVATIONS` (by name: `_QuantizedMatMul`'s `fused_ops`): those of its float matmul.
FUSED_ACTIVATIONS = onednn.FUSED_ACTIVATIONS


@functools.lru_cache(maxsize=None)
def onednn_int8_available() -> bool:
    """True when this TensorFlow runs oneDNN's u8 x s8 matmul (`_QuantizedMatMul`).

    Asked of TensorFlow itself, by running the kernel once on a 1x1 product. The kernel is
    oneDNN's own, so it runs even with `TF_ENABLE_ONEDNN_OPTS=0`; builds without oneDNN lack it.
    """
    with tf.init_scope():
        try:
            out = onednn_matmul(tf.constant([[2]], tf.uint8), tf.constant(2.0), tf.constant([[3]], tf.int8),
                                tf.constant([3.0]), tf.constant([0.0]))
            expected = (2 * 2.0 / INPUT_LEVELS) * (3 * 3.0 / KERNEL_LEVELS)
            return out.shape == (1, 1) and bool(np.allclose(out.numpy(), [[expected]], rtol=1e-3))
        except (tf.errors.OpError, TypeError, ValueError):
            return False


def onednn_matmul(x_u8, x_range, kernel_i8, kernel_ranges, bias, activation: Optional[str] = None):
    """`activation(dequantize(x_u8) @ dequantize(kernel_i8) + bias)`, float32 out, in one oneDNN kernel.

    Args:
        x_u8: uint8 `[tokens, in]`, `round(x_shifted * 255 / x_range)` of an input shifted to start
            at 0 (the shift's product belongs in `bias`).
        x_range: float32 scalar.
        kernel_i8: int8 `[in, out]`, `round(W[:, j] * 127 / kernel_ranges[j])`.
        kernel_ranges: float32 `[out]`.
        bias: float32 `[out]`.
        activation: None, or a value of `FUSED_ACTIVATIONS`.

    TensorFlow's `_QuantizedMatMul` has no Python wrapper; it is built here as a node (or run
    eagerly) by name. In a graph, each node's kernel caches its weights reordered for oneDNN
    (`is_weight_const`); eagerly it may not, since one kernel serves every call of a signature. The
    bias changes with every input (the offset term), so it is never cached.
    """
    fused = ["BiasAdd"] + ([activation] if activation else []) + ["Dequantize"]
    inputs = [tf.bitcast(x_u8, tf.quint8), tf.bitcast(kernel_i8, tf.qint8), bias,
              tf.constant(0.0), x_range, -kernel_ranges, kernel_ranges]
    attrs = {"Tdevice_inputs": [tf.quint8, tf.qint8, tf.float32], "Thost_inputs": [tf.float32] * 4,
             "Tdevice_outputs": [tf.float32], "Thost_outputs": [],
             "T1": tf.quint8, "T2": tf.qint8, "Tbias": tf.float32, "Tout": tf.float32,
             "U": tf.float32, "fused_ops": [f.encode() for f in fused],
             "input_quant_mode": b"SCALED", "is_bias_const": False,
             # Eager ops share one kernel per signature, so a cached kernel would serve the next layer
             # of the same shape: eagerly, nothing is cached.
             "is_weight_const": not tf.executing_eagerly()}
    return onednn.node("_QuantizedMatMul", inputs, [tf.float32], attrs, "QuantizedMatMul")[0]


class InputLevels(NamedTuple):
    """An input `[tokens, in]` rounded over each row's range (`round_rows`): `levels` (uint8), and
    each row's `low` and `steps` (float32 `[tokens, 1]`; levels per unit of input), so that a row's
    value is about `low + levels / steps`."""
    levels: tf.Tensor
    low: tf.Tensor
    steps: tf.Tensor


#: How `QuantizedDense` sets its input ranges: one per row (token), or one per call (ONNX Runtime's).
RANGES = ("row", "call")


class QuantizedDense(keras.layers.Layer):
    """`activation(x @ W + b)` with `W` held in int8 and each row of `x` quantized over its own range
    (module docstring).

    Variables: `kernel` int8 `[in, out]`, `kernel_scale` float32 `[out]` (one per column),
    `kernel_column_sums` float32 `[out]`, `bias` float32 `[out]`, and with `smooth_input`
    `input_scale` float32 `[in]` (`1 / s`, what each input channel is multiplied by before its
    row's range is taken). Takes and returns float32 `[tokens, in]` / `[tokens, out]`.
    """

    def __init__(self, units: int, *, activation: Optional[Callable] = None,
                 kernel_value: Optional[Callable[[], np.ndarray]] = None,
                 bias_value: Optional[Callable[[], np.ndarray]] = None, onednn: Optional[bool] = None,
                 kernel_levels: Optional[float] = None, ranges: str = "row", smooth_input: bool = False,
                 input_divisors: Optional[Callable[[], np.ndarray]] = None, **kwargs):
        """
        Args:
            units: output width.
            activation: applied to the output (inside oneDNN's kernel with `ranges="call"`, where it
                is one of `FUSED_ACTIVATIONS` by function name).
            kernel_value, bias_value: return the float32 kernel `[in, out]` and bias `[out]`
                (e.g. from the checkpoint); by default Glorot-uniform and zeros, like `keras.layers.Dense`.
            onednn: use oneDNN's int8 kernel (default: where `onednn_int8_available()`), or the
                float32 emulation of the same arithmetic.
            kernel_levels: the kernels' largest magnitude: `KERNEL_LEVELS`, or by default
                `KERNEL_LEVELS_NO_VNNI` where oneDNN runs without VNNI (`hardware.int8_has_vnni`).
            ranges: "row" (default: each token's own input range, so batching changes no vector) or
                "call" (one range for the whole input, ONNX Runtime's; for comparison only).
            smooth_input: divide each input channel by `input_divisors()` and multiply the kernel's
                rows by it before rounding (module docstring); the layer then has an `input_scale`
                variable (their reciprocals).
            input_divisors: returns the divisors `[in]` (`smoothing_scales`); without them divisors
                of 1 (a layer whose weights are loaded afterwards).

        Raises:
            ValueError: `ranges` or `kernel_levels` not one of their values.
        """
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if ranges not in RANGES:
            raise ValueError(f"ranges must be one of {', '.join(RANGES)}; got {ranges!r}")
        self.units = units
        self.activation = activation
        self.ranges = ranges
        self._kernel_value, self._bias_value = kernel_value, bias_value
        self.smooth_input = bool(smooth_input)
        self._input_divisors = input_divisors
        self.onednn = onednn_int8_available() if onednn is None else bool(onednn)
        if kernel_levels is None:
            kernel_levels = KERNEL_LEVELS if not self.onednn or int8_has_vnni() else KERNEL_LEVELS_NO_VNNI
        self.kernel_levels = check_kernel_levels(kernel_levels)

    @property
    def fused_activation(self) -> Optional[str]:
        """The name oneDNN applies the activation by inside its kernel, or None (applied after it):
        only a per-call range leaves nothing to do between the kernel and the activation."""
        if self.ranges != "call" or not self.onednn or self.activation is None:
            return None
        return FUSED_ACTIVATIONS.get(getattr(self.activation, "__name__", None))

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        if self._kernel_value is not None:
            kernel = np.asarray(self._kernel_value(), dtype=np.float32)
        else:
            kernel = np.asarray(keras.initializers.GlorotUniform()((fan_in, self.units)), dtype=np.float32)
        if kernel.shape != (fan_in, self.units):
            raise ValueError(f"{self.name}: kernel of shape {kernel.shape}, expected {(fan_in, self.units)}")
        bias = (np.zeros(self.units, np.float32) if self._bias_value is None
                else np.asarray(self._bias_value(), dtype=np.float32))
        smoothing = None
        if self.smooth_input:
            smoothing = (np.ones(fan_in, np.float32) if self._input_divisors is None
                         else np.asarray(self._input_divisors(), np.float32))
            if smoothing.shape != (fan_in,) or not (np.isfinite(smoothing) & (smoothing > 0)).all():
                raise ValueError(f"{self.name}: input divisors must be {fan_in} positive numbers")
            kernel = kernel * smoothing[:, None]
        values, scales, column_sums = quantize_kernel(kernel, self.kernel_levels)
        del kernel  # the float32 kernel is not kept
        self._kernel_value = self._bias_value = self._input_divisors = None

        def weight(name, value, dtype):
            return self.add_weight(name=name, shape=value.shape, dtype=dtype, trainable=False,
                                   initializer=lambda shape, dtype=None, v=value: v)

        self.kernel = weight("kernel", values, "int8")
        self.kernel_scale = weight("kernel_scale", scales, "float32")
        self.kernel_column_sums = weight("kernel_column_sums", column_sums, "float32")
        self.bias = weight("bias", bias, "float32")
        self.input_scale = None if smoothing is None else weight("input_scale", 1.0 / smoothing, "float32")
        self.built = True

    def load_own_variables(self, store):
        """Keras's loading, which also reads a layer saved before bert_tf smoothed int8 inputs (no
        `input_scale`; its kernel was rounded unsmoothed): its input_scale is then 1."""
        if self.input_scale is not None and len(store.keys()) == len(self.weights) - 1:
            for i, variable in enumerate(v for v in self.weights if v is not self.input_scale):
                variable.assign(store[f"{i}"])
            self.input_scale.assign(tf.ones_like(self.input_scale))
            return
        super().load_own_variables(store)

    def call(self, x):
        if self.ranges == "call":
            return self._call_one_range(self.scaled_input(x))
        return self.from_levels(self.input_levels(x))

    def scaled_input(self, x):
        """`x` times `input_scale` (a smoothed layer), else `x` itself."""
        return x if self.input_scale is None else x * self.input_scale

    def input_levels(self, x) -> "InputLevels":
        """`x` `[tokens, in]` rounded over each row's range (after `scaled_input`): what `from_levels`
        takes. Layers whose `input_scale` are equal (or absent) can share one (`TransformerBlock`
        quantizes the input of query, key and value once)."""
        return InputLevels(*round_rows(self.scaled_input(x)))

    def from_levels(self, levels: "InputLevels"):
        """The layer's output `[tokens, out]` for an input already rounded by `input_levels`."""
        y = finish_rows(self.product(levels.levels), levels.low, levels.steps, self.kernel_column_sums, self.bias)
        return y if self.activation is None else self.activation(y)

    def product(self, x_levels):
        """`x_levels @ kernel` (uint8 levels `[rows, in]`) times the kernel's column scales, float32:
        oneDNN's int32 sums, or the same integers in float32 (the emulation)."""
        if self.onednn:
            # The levels as they are (range 255 over 255 levels: scale 1), the kernel's column scales
            # applied by oneDNN: int32 sums times kernel_scale, float32 out. Bias 0: it is added after
            # the row's step, with the offset term.
            return onednn_matmul(x_levels, tf.constant(INPUT_LEVELS), self.kernel,
                                 self.kernel_scale * KERNEL_LEVELS, tf.zeros_like(self.bias))
        # Products of 255 x 127 summed over `in` inputs stay exact in float32 while in * 32385 < 2^24;
        # beyond, float32 rounding of the sum (relative 6e-8).
        return tf.matmul(tf.cast(x_levels, tf.float32), tf.cast(self.kernel, tf.float32)) * self.kernel_scale

    def _call_one_range(self, x):
        """One range for the whole input (`ranges="call"`): the kernel applies scale, bias and activation."""
        low, width = input_ranges(x, per_row=False)
        bias = self.bias + low * self.kernel_column_sums
        if self.onednn:
            # SCALED mode rounds x_shifted * 255 / width the same way in oneDNN's QuantizeV2 and in
            # TensorFlow's own (MIN_FIRST does not: TensorFlow's rounds x and min separately).
            x_u8, _, _ = tf.raw_ops.QuantizeV2(input=x - low, min_range=tf.constant(0.0), max_range=width,
                                               T=tf.quint8, mode="SCALED", round_mode="HALF_TO_EVEN")
            y = onednn_matmul(tf.bitcast(x_u8, tf.uint8), width, self.kernel, self.kernel_scale * KERNEL_LEVELS,
                              bias, self.fused_activation)
            return y if self.fused_activation or self.activation is None else self.activation(y)
        steps = INPUT_LEVELS / width
        product = tf.matmul(tf.round((x - low) * steps), tf.cast(self.kernel, tf.float32))
        y = tf.nn.bias_add(product * (self.kernel_scale / steps), bias)
        return y if self.activation is None else self.activation(y)


def set_input_ranges(encoder, ranges: str) -> int:
    """Sets `ranges` ("row" or "call") on every `QuantizedDense` of an int8 `BertEncoder`'s blocks,
    before it is first traced: how `bench/int8_rows.py` and the tests compare per-row with per-call
    ranges in one process. Returns how many layers it set.

    Raises:
        ValueError: `ranges` is not one of `RANGES`.
    """
    if ranges not in RANGES:
        raise ValueError(f"ranges must be one of {', '.join(RANGES)}; got {ranges!r}")
    layers = [layer for block in encoder.blocks for layer in vars(block).values() if isinstance(layer, QuantizedDense)]
    for layer in layers:
        layer.ranges = ranges
    return len(layers)


def round_rows(x) -> tuple:
    """`(levels, low, steps)` for `x` `[tokens, in]`: each row rounded over its own range
    (`input_ranges`) to uint8 levels, `round((x - low) * steps)`, half to even."""
    low, width = input_ranges(x)  # [tokens, 1] each
    steps = INPUT_LEVELS / width
    return tf.cast(tf.round((x - low) * steps), tf.uint8), low, steps


def finish_rows(product, low, steps, column_sums, bias):
    """A layer's output `[tokens, out]` (before its activation) from its `product` with levels rounded
    by `round_rows`: each row's step, its offset's product (module docstring) and the bias."""
    return product / steps + (low * column_sums + bias)


#: Row counts an int8 encoder pads its tokens to (XLA compiles its kernels once per shape): powers
#: of two from 8 to `ROW_STEP`, then multiples of `ROW_STEP`, then, from `ROW_STEP_GROWS` rows on,
#: multiples of 1/16 of the largest power of two below the count: 35 sizes up to 2048 rows, 16 per
#: doubling beyond; padding of under `ROW_STEP` rows up to `ROW_STEP_GROWS`, under 1/16 of them beyond.
#: Every padded row costs the whole block's arithmetic: on the bench's 256 sentences (six calls of 462 to
#: 1,740 tokens) a step of 128 padded 4.7% of the rows, 64 pads 2.4%, and the pass ran 1.02-1.04x faster
#: (bench/README.md); each new count compiles the block's kernels once, 0.6-0.8 s.
ROW_STEP = 64
ROW_STEP_GROWS = 16 * ROW_STEP


def padded_rows(tokens):
    """The row count `tokens` rows are padded to (int32 scalar tensor; module constants above)."""
    tokens = tf.maximum(tf.convert_to_tensor(tokens, tf.int32), 1)
    count = tf.reshape(tokens, [1])
    powers = [8 << i for i in range((ROW_STEP // 8).bit_length())]  # 8, 16, ..., ROW_STEP
    small = tf.constant(powers, tf.int32)
    power_of_two = tf.gather(small, tf.minimum(tf.searchsorted(small, count)[0], len(powers) - 1))
    # How many times the count has doubled past ROW_STEP_GROWS: the step doubles with it.
    doublings = tf.searchsorted(tf.constant([ROW_STEP_GROWS << i for i in range(1, 17)], tf.int32), count,
                                side="right")[0]
    step = tf.bitwise.left_shift(ROW_STEP, doublings)
    return tf.where(tokens <= ROW_STEP, power_of_two, (tokens + step - 1) // step * step)


def input_ranges(x, per_row: bool = True) -> tuple:
    """`(low, width)` of the ranges an input `[tokens, in]` is quantized over: each row's (`[tokens, 1]`
    each), or the whole input's (scalars). A range runs from the minimum to the maximum, widened to
    hold 0 and to at least 1% of its largest magnitude (or of 1), as TensorFlow's `QuantizeV2` would
    widen it itself, so that every path quantizes over the same range (a constant row gets one too)."""
    axis, keepdims = (-1, True) if per_row else (None, False)
    low = tf.minimum(tf.reduce_min(x, axis=axis, keepdims=keepdims), 0.0)
    high = tf.maximum(tf.reduce_max(x, axis=axis, keepdims=keepdims), 0.0)
    floor = MINIMUM_RANGE * tf.maximum(tf.maximum(-low, high), 1.0)
    return low, tf.maximum(high - low, floor)
