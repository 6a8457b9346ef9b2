"""`precision="int8-litert"`: the encoder converted to a LiteRT (TensorFlow Lite) model and run by its
interpreter on XNNPACK's int8 kernels (`LiteEncoder`).

Why: TensorFlow's own graphs spend most of a short text's time between kernels (about 1,400 ops and three
graph calls for one sentence through BERT-Base) and read a kernel's weights at about half this machine's
bandwidth when they multiply a few rows (bench/README.md, "Where the time goes"). The same encoder as a
LiteRT model runs one short sentence's BERT-Base layers in about 4 ms on a 2-core AMD Zen 4, against 16
for `precision="int8"` and 13.5 for bfloat16 (bench/README.md has the measurements, side by side).

What it computes: the float32 encoder's own layers (`TransformerBlock`, the embeddings' LayerNorm, the
pooler), traced over a padded batch and converted by TensorFlow Lite's converter with dynamic-range
quantization:

* every dense kernel is int8 with one symmetric scale per output column, rounded once, at conversion;
* every row of a dense layer's input (one token's activations) is rounded to int8 over its own range when
  the layer runs (XNNPACK's "qd8" kernels), so a token's rounding depends on that token alone: a text's
  vectors are the same alone and in any batch, to float32 rounding (the same bits on the tiny models of
  tests/model/test_litert.py; on the real model a longer padded row can group attention's float32 sums
  differently, by a few thousandths of the float32 bound: tests/embed/test_low_precision.py);
* LayerNorm divides by the square root of the variance (`norm.divided`: the converter makes it an RSQRT
  and a multiply), where the float32 graph takes `divide_no_nan(1, sqrt)`, which XNNPACK does not run
  whole: the model was 63 XNNPACK parts instead of 38, and took 1.04x the time (a short sentence; 1.02x
  for 48 tokens) with a real all-MiniLM-L6-v2 token cosine to float32 of 0.999513 mean, 0.998255 min,
  against 0.999578 and 0.998464 now (tests/index/data/senses.tsv, an AMD Zen 4);
* attention, softmax, LayerNorm, GELU and the residual stream compute in float32, and so do the word
  embeddings: the model takes each token's word-embedding row, looked up here in float32, because the
  converter would round the whole table to int8 with one scale (on the real all-MiniLM-L6-v2 that took
  the worst token's cosine to float32 from 0.9968 to 0.9962).

Its vectors are not `precision="int8"`'s (another rounding of the inputs, by another kernel), so the two
are different vector spaces (`VectorSpace.precision`); both are within the fidelity bar.

Converting BERT-Base takes about half a minute, so the model is converted once per checkpoint and kept in
the user's cache (`cache_path`): written to a temporary file and renamed into place, so an interrupted
conversion leaves nothing a later run would read. A checkpoint whose fingerprint is unknown is converted
in memory, every time.

The model runs outside TensorFlow's graph (the embedder calls `LiteEncoder.run` directly), so nothing
saved as a graph can hold it: a SavedModel export or a Keras layer refuses this precision.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.logs import announce
from bert_tf.runtime import quiet_stderr, tf

logger = logging.getLogger("bert_tf")

#: The precision option's value for this engine (`bert_tf.model.precision.PRECISIONS`).
PRECISION = "int8-litert"
#: The version of the converted graph: part of the cache file's name, so a bert_tf that converts
#: differently never reads another's file. Bump it with any change to `_traced` or the converter's settings.
RECIPE = 2


def available() -> str | None:
    """None when this TensorFlow can convert and run LiteRT models; else why not, in words."""
    lite = getattr(tf, "lite", None)
    if lite is None or not hasattr(lite, "Interpreter") or not hasattr(lite, "TFLiteConverter"):
        return f"this TensorFlow ({tf.__version__}) has no tf.lite converter and interpreter"
    return None


def cache_path(name: str, fingerprint: str | None) -> Path | None:
    """Where the converted model of the checkpoint `name` with `fingerprint` is kept: in
    `user_cache()/litert`, named by the checkpoint, its fingerprint, `RECIPE` and this TensorFlow's
    version (the converter's). None without a fingerprint (nothing names its weights)."""
    from bert_tf.files.paths import user_cache

    if not fingerprint:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (name or "checkpoint"))
    return user_cache() / "litert" / f"{safe}-{fingerprint[:16]}-int8-r{RECIPE}-tf{tf.__version__}.tflite"


def _traced(encoder):
    """The concrete function `(word_embeddings [batch, seq, hidden], mask [batch, seq]) -> [embedding output,
    each layer's output (all [batch, seq, hidden]), pooled [batch, hidden]]` over `encoder`'s float32 layers,
    its variables frozen to constants (the converter quantizes constant kernels only)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from bert_tf.model import norm
    from bert_tf.model.encoder import attention_adder_for

    h = encoder.config.hidden_size
    embeddings = encoder.embeddings

    @tf.function(input_signature=[tf.TensorSpec([None, None, h], tf.float32), tf.TensorSpec([None, None], tf.int32)],
                 autograph=False)
    def layers(word_embeddings, mask):
        seq = tf.shape(word_embeddings)[1]
        # Token type 0 everywhere, positions from 0 in each row: as `BertEmbeddings.call` adds them.
        x = embeddings.layer_norm(word_embeddings + embeddings.token_type_embeddings[0]
                                  + embeddings.position_embeddings[:seq])
        adder = attention_adder_for(mask)
        out = [x]
        for block in encoder.blocks:
            x = block(x, adder)
            out.append(x)
        return out + [encoder.pooler(x[:, 0, :])]

    with norm.divided():  # LayerNorm as XNNPACK runs it whole
        return convert_variables_to_constants_v2(layers.get_concrete_function())


def convert(encoder) -> bytes:
    """The LiteRT model (a TFLite flatbuffer) of a float32 `BertEncoder`, int8 as the module docstring says.

    Raises:
        ValueError: `encoder` does not compute in float32 (its weights would be rounded twice).
    """
    if getattr(encoder, "precision", None) != "float32":
        raise InvalidValue(f"a LiteRT model is converted from a float32 encoder; got precision "
                           f"{getattr(encoder, 'precision', None)!r}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_traced(encoder)], encoder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 kernels, inputs per row
    with quiet_stderr():  # the converter's MLIR passes log to fd 2
        return converter.convert()


def load_or_convert(encoder, *, name: str, fingerprint: str | None, refresh: bool = False) -> tuple[bytes, bool]:
    """`(model, cached)`: the converted model of `encoder` (the checkpoint `name` with `fingerprint`) from the
    cache where it is there (`cached` True), else converted (once: announced, about half a minute for
    BERT-Base) and kept there. `refresh`: convert again and replace the cached file (one this module wrote,
    which did not load)."""
    from bert_tf.files.output import commit, make_temp_file

    path = cache_path(name, fingerprint)
    if path is not None and path.is_file() and not refresh:
        try:
            return path.read_bytes(), True
        except OSError as e:
            logger.warning("could not read the converted model %s (%s); converting again", path, e.strerror)
    announce("converting %s for precision='%s' (once per checkpoint; kept in %s)", name, PRECISION,
             path.parent if path is not None else "memory only: the checkpoint has no fingerprint")
    model = convert(encoder)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = make_temp_file(path)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(model)
                commit(temp, str(path))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as e:  # a read-only or full cache: the model still runs, converted again next time
            logger.warning("could not keep the converted model in %s (%s); it will be converted again next time",
                           path.parent, e.strerror or e)
    return model, False


#: Rows of one call run in groups whose extents round up to the same multiple of this, each group cut after
#: its longest row (`groups`). On the bench's 256 sentences (BERT-Base shape,
#: an AMD Zen 4) the six calls ran in 2.0 s so grouped, 2.0 by 2, 1 or 4 with 1,024 to 4,096 positions,
#: 2.3 by 8 or 16, and 2.8-2.9 as the batch plan pads them (27% of their positions padding).
LENGTH_STEP = 4
#: The most positions (rows x length) one group holds.
GROUP_POSITIONS = 2048


def groups(extent: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """`(rows, length)` groups covering every row with a real token once: rows whose extents (each
    row's last real position + 1) round up to the same multiple of `LENGTH_STEP`, at most
    `GROUP_POSITIONS // length` rows each (at least one), in order of length; `length` is the longest
    extent among the rows. Rows without a real token run nowhere."""
    out = []
    bucket = -(-extent // LENGTH_STEP) * LENGTH_STEP
    for size in np.unique(bucket[extent > 0]):
        rows = np.flatnonzero(bucket == size)
        per = max(1, GROUP_POSITIONS // int(size))
        for start in range(0, len(rows), per):
            part = rows[start:start + per]
            out.append((part, int(extent[part].max())))
    return out


class LiteEncoder:
    """A BERT encoder run by LiteRT's interpreter (module docstring), from a converted model and the float32
    word-embedding table: `run` takes and returns numpy, and the embedder calls it directly
    (`embed.graphs.encode_graph`), not inside a traced graph.

    Example:
        >>> lite = LiteEncoder.from_encoder(float32_encoder, name="uncased_L-12_H-768_A-12", fingerprint=fp)
        >>> states, pooled = lite.run(ids, mask)  # numpy, the real tokens' rows of every layer
    """

    precision = PRECISION
    keeps_kernels = False  # nothing of oneDNN's: `embed.graphs.layouts_by_size` is False
    #: Model calls at once (`BertEmbedder.streams`): one interpreter, whose threads take every core. Two calls
    #: on the embedder's streams only waited on each other (the bench's 256 sentences: 2.2-2.65 s a pass
    #: against 2.14-2.17 s one at a time, an AMD Zen 4).
    max_streams = 1

    def __init__(self, config, model: bytes, word_embeddings: np.ndarray, *, threads: int | None = None):
        """Args:
            config: the model's `BertConfig`.
            model: the converted model (`convert`).
            word_embeddings: `[vocab_size, hidden]` float32, the checkpoint's table.
            threads: the interpreter's threads; None: every core this process may use.
        """
        from bert_tf.streams import cores

        self.config = config
        self._table = np.ascontiguousarray(word_embeddings, dtype=np.float32)
        self.threads = cores() if threads is None else int(threads)
        self._lock = threading.Lock()  # one interpreter, one call at a time
        self._interpreter = interpreter(model, self.threads)
        self._shape: tuple[int, int] | None = None
        # The model's one signature names the traced function's arguments, and its outputs in order
        # (output_0, output_1, ...: `_traced`); the tensors are those of the interpreter's graph.
        signature = self._interpreter.get_signature_runner()
        self._inputs = {name: d["index"] for name, d in signature.get_input_details().items()}
        outputs = signature.get_output_details()
        self._outputs = [outputs[f"output_{i}"]["index"] for i in range(config.num_hidden_layers + 2)]

    @classmethod
    def from_encoder(cls, encoder, *, name: str, fingerprint: str | None, threads: int | None = None) -> "LiteEncoder":
        """From a float32 `BertEncoder`: its converted model (`load_or_convert`) and its word embeddings."""
        table = encoder.embeddings.word_embeddings.numpy()
        model, cached = load_or_convert(encoder, name=name, fingerprint=fingerprint)
        try:
            return cls(encoder.config, model, table, threads=threads)
        except (ValueError, RuntimeError, KeyError) as e:
            if not cached:
                raise
            logger.warning("the converted model kept for %s does not load (%s); converting it again", name, e)
            model, _ = load_or_convert(encoder, name=name, fingerprint=fingerprint, refresh=True)
            return cls(encoder.config, model, table, threads=threads)

    def run(self, ids: np.ndarray, mask: np.ndarray, layers: Sequence[int] | None = None
            ) -> tuple[list[np.ndarray | None], np.ndarray]:
        """`(states, pooled)` for int32 `ids` and `mask` `[batch, seq]`, as `BertEncoder.token_states`
        returns them: `states[i]` the real tokens' rows of hidden state i (0: the embedding output),
        `[tokens, hidden]` in the row-major order of `mask`; `pooled` `[batch, hidden]`, zeros for a row
        whose first position is padding. `layers`: the states wanted (indices into `states`); the others
        are None. Default: all.

        The model computes every position it is given, padding too, so the rows run in groups of like
        length (`groups`), each cut after its longest row's last token: a row's vectors are the same in
        any group (each token's int8 rounding is its own; attention never reads padding)."""
        count = self.config.num_hidden_layers + 1
        wanted = range(count) if layers is None else sorted({i % count for i in layers})
        block, pooled = self.run_stacked(ids, mask, wanted)
        states: list[np.ndarray | None] = [None] * count
        for j, i in enumerate(wanted):
            states[i] = block[j]
        return states, pooled

    def run_stacked(self, ids: np.ndarray, mask: np.ndarray, layers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """`run`'s states of `layers` as one array `[len(layers), tokens, hidden]` (in the order of `layers`,
        each in `0..num_hidden_layers`), and `pooled`: what the embedder passes to a graph as one tensor."""
        ids = np.asarray(ids, np.int32)
        mask = np.asarray(mask, np.int32)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise InvalidValue(f"ids and mask must be [batch, seq] alike; got {ids.shape} and {mask.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self._table)):
            raise InvalidValue(f"token ids must be in 0..{len(self._table) - 1}")
        count, h = self.config.num_hidden_layers + 1, self.config.hidden_size
        layers = list(layers)
        real = mask != 0
        tokens = real.sum(axis=1)
        first = np.concatenate([[0], np.cumsum(tokens)])  # each row's first token in the packed order
        states = np.empty((len(layers), int(first[-1]), h), np.float32)
        pooled = np.zeros((len(ids), h), np.float32)
        # A row's extent: past its last real position (a mask need not be a prefix).
        extent = (np.where(real.any(axis=1), real.shape[1] - np.argmax(real[:, ::-1], axis=1), 0) if real.size
                  else np.zeros(len(ids), np.int64))
        with self._lock:
            for rows, length in groups(extent):
                out = self._invoke(ids[rows, :length], mask[rows, :length], [*layers, count])
                # The group's tokens, row by row, and where each lands in the packed order: one block where
                # its rows have no padding and no row between them has a token (a query; rows of one length).
                picked = real[rows, :length].reshape(-1)
                start, end = int(first[rows[0]]), int(first[rows[-1] + 1])
                if end - start == len(picked):
                    for j, i in enumerate(layers):
                        states[j, start:end] = out[i].reshape(-1, h)
                else:
                    at = np.repeat(first[rows] - np.concatenate([[0], np.cumsum(tokens[rows])[:-1]]), tokens[rows])
                    at += np.arange(len(at))
                    for j, i in enumerate(layers):
                        states[j, at] = out[i].reshape(-1, h)[picked]
                pooled[rows] = np.where(real[rows, :1], out[count], 0.0)
        return states, pooled

    def _invoke(self, ids: np.ndarray, mask: np.ndarray, outputs: Sequence[int]) -> dict[int, np.ndarray]:
        """The model's `outputs` (indices: the states, then the pooled vector) for one group of rows, copied
        out; the others stay in the interpreter (the caller holds the lock)."""
        it = self._interpreter
        batch, seq = ids.shape
        if self._shape != (batch, seq):
            it.resize_tensor_input(self._inputs["word_embeddings"], [batch, seq, self.config.hidden_size])
            it.resize_tensor_input(self._inputs["mask"], [batch, seq])
            with quiet_stderr():  # the first allocation applies XNNPACK, which says so on fd 2
                it.allocate_tensors()
            self._shape = (batch, seq)
        it.set_tensor(self._inputs["word_embeddings"], self._table[ids])
        it.set_tensor(self._inputs["mask"], mask)
        it.invoke()
        return {i: it.get_tensor(self._outputs[i]) for i in outputs}


def interpreter(model: bytes, threads: int):
    """LiteRT's interpreter of `model` on `threads` threads, XNNPACK applied, without what it prints."""
    with warnings.catch_warnings(), quiet_stderr():  # its deprecation notice; "Created ... XNNPACK delegate"
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=model, num_threads=threads)


class LiteFunction:
    """A traced TensorFlow function without variables (`embed.graphs`' head), converted to a LiteRT model
    of builtin float32 ops and run by its own interpreter: numpy in, `{output name: numpy}` out.

    Why: it is what a query on int8-litert runs after the encoder's interpreter. Right after that (or after
    any pause) a TensorFlow call costs about a millisecond whatever it computes; this interpreter runs the
    head in a quarter of that (bench/README.md, "After the interpreter, every TensorFlow call is slow"). It
    is converted from the function itself, so it computes what the function does, no second implementation,
    to float32 rounding (its kernels may add a long sum in another order). A head converts in a fraction of
    a second to a model of tens of KB, so it is made in memory when first needed. A new input shape resizes
    it."""

    def __init__(self, fn, *, threads: int = 1):
        """Args:
            fn: a concrete function of tensors, its ops LiteRT builtins.
            threads: the interpreter's threads (one: a head's few ops gain nothing from more).

        Raises:
            ValueError: an op of `fn` that LiteRT does not run (the converter's message).
        """
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf.Module())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            with quiet_stderr():  # the converter's MLIR passes log to fd 2
                model = converter.convert()
        except Exception as e:  # the converter raises its own ConverterError
            raise InvalidValue(f"{fn.name} does not convert to LiteRT builtin ops: {e}") from None
        self._runner = interpreter(model, threads).get_signature_runner()
        self._names = [spec.name for spec in tf.nest.flatten(fn.structured_input_signature)]
        self._lock = threading.Lock()  # one interpreter, one call at a time

    def __call__(self, *args) -> dict[str, np.ndarray]:
        with self._lock:
            return self._runner(**dict(zip(self._names, args)))
