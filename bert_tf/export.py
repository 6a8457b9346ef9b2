"""The embedder as a SavedModel for TensorFlow Serving and TF Hub-style loaders.

`export_saved_model` writes TF Serving's layout, `OUT/VERSION/` with
`saved_model.pb`, `variables/` and `assets/` (`vocab.txt`, `bert_tf_export.json`).
Clients send plain UTF-8 strings: the tokenizer (`BertTokenizer`, the same
tensorflow-text ops as the Python API) runs inside the graph.

Signatures (batch sizes are dynamic; `L` is `num_hidden_layers`, `H` the hidden
size, `D` the word-vector width fixed at export time):

* `serving_default`: `sentences` [batch] string ->
  `words` [batch, max_words] string (padding ""), `word_vectors`
  [batch, max_words, D] float32, `word_mask` [batch, max_words] int32,
  `word_starts`/`word_ends` [batch, max_words] int32 (code-point offsets,
  end exclusive), `sentence_embedding` [batch, H] float32.
  Long texts are split into overlapping windows in the graph, exactly as
  `BertEmbedder` does (`_window_starts`, `_max_context_window`).
* `encode`: TF Hub's BERT encoder interface. `input_word_ids`, `input_mask`,
  `input_type_ids` int32 [batch, seq] -> `pooled_output` [batch, H],
  `sequence_output` [batch, seq, H], `embedding_output` [batch, seq, H] and one
  `encoder_outputs_{i}` [batch, seq, H] per transformer layer, i = 0..L-1.
  (A signature returns a flat dict of tensors, so TF Hub's `encoder_outputs`
  list becomes L keys; the keys keep batch first, which TF Serving's row
  format requires.) The inputs are checked in the graph (`check_encoder_inputs`):
  shapes that differ, more positions than `max_position_embeddings`, ids outside
  the embedding tables or a mask other than 0/1 fail with a message naming them.
* `preprocess`: TF Hub's BERT preprocessor interface. `sentences` [batch]
  string -> the three encoder inputs, int32 [batch, max_seq_length]:
  `[CLS] pieces [SEP]`, padded with 0. Pieces beyond max_seq_length - 2 are
  dropped (TF Hub's preprocessors truncate too); `serving_default` windows.
* `metadata`: no inputs -> `json` scalar string, the export options (also in
  `assets/bert_tf_export.json`).

The root object is also a TF Hub reusable SavedModel: `obj(inputs, training=False)`
takes the dict of three encoder inputs and returns `pooled_output`, `default`
(its alias), `sequence_output`, `embedding_output` and `encoder_outputs` (a
list, one tensor per layer); `obj.variables`, `obj.trainable_variables`,
`obj.regularization_losses`, `obj.vocab_file` and `obj.do_lower_case` are there
as TF Hub's BERT encoders have them. `obj.embed`, `obj.encode`,
`obj.preprocess` and `obj.tokenizer.tokenize` are callable too.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Sequence

from bert_tf._text_ops import TENSORFLOW_TEXT_VERSION
from bert_tf._tf import tf
from bert_tf.atomic import check_target, staged_directory

logger = logging.getLogger("bert_tf")

#: The options file written into the SavedModel's assets/.
METADATA_ASSET = "bert_tf_export.json"
SIGNATURES = ("serving_default", "encode", "preprocess", "metadata")


def export_saved_model(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                       version: int = 1, layers: Sequence[int] | None = None, combine: str = "sum",
                       subword_pooling: str = "mean", dim: int | None = None, max_seq_length: int | None = None,
                       lower_case: bool | None = None, sentence_strategy: str = "mean",
                       sentence_layer: int = -2, force: bool = False) -> Path:
    """Exports the embedder for one checkpoint as a servable SavedModel.

    The embedding options are fixed at export time and have the meaning they have
    in `BertEmbedder.embed_words` and `BertEmbedder.sentence_vectors`.

    Args:
        checkpoint: checkpoint directory (None resolves it as the Python API does).
        out_dir: the model's base directory; the SavedModel goes to `out_dir/version/`,
            the layout TF Serving watches.
        version: the model version, a positive integer.
        layers, combine, subword_pooling, dim: how word vectors are made; `layers=None` (default)
            is the API's default, the last four layers or all the layers of a smaller model.
        max_seq_length: longest encoder input in pieces, [CLS] and [SEP] included (None: the
            checkpoint's limit, 512); longer texts are windowed by `serving_default` and
            truncated by `preprocess`.
        lower_case: override the checkpoint's casing.
        sentence_strategy, sentence_layer: how `sentence_embedding` is made.
        force: replace an existing `out_dir/version/`.

    Returns:
        The version directory, e.g. `exports/bert/1`.

    Raises:
        FileExistsError: the version directory exists and `force` is False, or `out_dir` is a file.
        PermissionError: `out_dir` cannot be written (the message names it).
        ValueError: a bad option (the message names the allowed values).
        CheckpointNotFoundError, CheckpointError: no usable checkpoint.

    Example:
        >>> path = export_saved_model("checkpoints/uncased_L-12_H-768_A-12", "exports/bert")
        >>> loaded = tf.saved_model.load(str(path))  # after `import tensorflow_text`
        >>> loaded.signatures["serving_default"](sentences=tf.constant(["A mouse."]))["word_vectors"].shape
        TensorShape([1, 3, 768])
    """
    from bert_tf.embeddings import BertEmbedder

    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version must be a positive integer (TF Serving's version directory); got {version!r}")
    target = Path(out_dir) / str(version)
    check_target(target, replace=force)  # before the slow part: an existing version, a file as --out

    embedder = BertEmbedder.from_checkpoint(checkpoint, lower_case=lower_case, max_seq_length=max_seq_length)
    options = _check_options(embedder, layers, combine, subword_pooling, dim, sentence_strategy, sentence_layer)
    metadata = _metadata(embedder, options, version)

    # Built beside the target under a name TF Serving ignores (not an integer),
    # then renamed: the server never sees a half-written version.
    with staged_directory(target, replace=force) as model_dir, tempfile.TemporaryDirectory() as assets:
        metadata_path = Path(assets) / METADATA_ASSET
        metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        # from_checkpoint read this very file, so the exported asset is the tokenizer's vocabulary.
        vocab_path = Path(embedder.checkpoint) / "vocab.txt"
        root = _build(embedder, options, json.dumps(metadata, sort_keys=True), vocab_path, metadata_path)
        tf.saved_model.save(root, str(model_dir), signatures={
            "serving_default": root.embed,
            "encode": root.encode,
            "preprocess": root.preprocess,
            "metadata": root.metadata,
        })
    logger.info("exported %s to %s", embedder.checkpoint, target)
    return target


# ---------------------------------------------------------------------- options


def _check_options(embedder, layers, combine, subword_pooling, dim, sentence_strategy, sentence_layer) -> dict:
    """Validates the options exactly as the Python API does, and resolves layer indices."""
    # An empty call runs the Python API's own checks, so the errors (and the
    # info line for a truncating `dim`) are the ones its users already know.
    list(embedder.iter_embed([], layers=layers, combine=combine, subword_pooling=subword_pooling, dim=dim,
                             sentence_strategy=sentence_strategy, sentence_layer=sentence_layer))
    n_states = embedder.config.num_hidden_layers + 1
    if layers is None:  # what the API's layers=None means for this checkpoint, recorded as such
        layers = embedder.default_layers
    layers = [int(layers)] if isinstance(layers, numbers.Integral) else [int(x) for x in layers]
    width = embedder.hidden_size * (len(layers) if combine == "concat" else 1)
    return {
        "layers": layers,
        "hidden_state_indices": [x % n_states for x in layers],
        "combine": combine,
        "subword_pooling": subword_pooling,
        "dim": None if dim is None else int(dim),
        "vector_size": width if dim is None else int(dim),
        "sentence_strategy": sentence_strategy,
        "sentence_layer": int(sentence_layer),
        "sentence_hidden_state_index": int(sentence_layer) % n_states,
    }


def _metadata(embedder, options: dict, version: int) -> dict:
    """What a client needs to know about the export; deterministic (no paths, no times)."""
    import bert_tf

    return {
        "format": "bert_tf SavedModel",
        "version": version,
        "checkpoint": os.path.basename(os.path.normpath(embedder.checkpoint)),
        "config": embedder.config.to_dict(),
        "lower_case": embedder.lower_case,
        "max_seq_length": embedder.max_seq_length,
        **options,
        "hidden_size": embedder.hidden_size,
        "num_hidden_layers": embedder.config.num_hidden_layers,
        "signatures": list(SIGNATURES),
        "encoder_outputs": [f"encoder_outputs_{i}" for i in range(embedder.config.num_hidden_layers)],
        "bert_tf": bert_tf.__version__,
        "tensorflow": tf.__version__,
        "tensorflow_text": TENSORFLOW_TEXT_VERSION,
    }


# ---------------------------------------------------------------------- the graph


def _build(embedder, options: dict, metadata_json: str, vocab_path: Path, metadata_path: Path):
    """The object that is saved: functions, the tokenizer, variables and assets."""
    encoder, tokenizer, config = embedder.encoder, embedder.tokenizer, embedder.config
    span = embedder.max_seq_length - 2
    hidden = config.hidden_size
    ids_spec = tf.TensorSpec([None, None], tf.int32)
    text_spec = tf.TensorSpec([None], tf.string)

    # Traced once and called from every function below: tracing the Keras
    # encoder is most of the export time.
    @tf.function(input_signature=[ids_spec, ids_spec, ids_spec], autograph=False)
    def encoder_fn(ids, mask, types):
        return encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})

    def run_encoder(ids, mask, types):
        out = encoder_fn(ids, mask, types)
        return out, [out["embedding_output"], *out["encoder_outputs"]]

    @tf.function(input_signature=[text_spec], autograph=False)
    def embed(sentences):
        return _embed(sentences, tokenizer, run_encoder, span, options, hidden)

    @tf.function(input_signature=[ids_spec, ids_spec, ids_spec], autograph=False)
    def encode(input_word_ids, input_mask, input_type_ids):
        out, _ = run_encoder(*check_encoder_inputs(input_word_ids, input_mask, input_type_ids, config))
        result = {"pooled_output": out["pooled_output"], "sequence_output": out["sequence_output"],
                  "embedding_output": out["embedding_output"]}
        for i, layer in enumerate(out["encoder_outputs"]):
            result[f"encoder_outputs_{i}"] = layer
        return result

    @tf.function(input_signature=[text_spec], autograph=False)
    def preprocess(sentences):
        pieces = tokenizer.tokenize(sentences)["pieces"].merge_dims(1, 2)[:, :span]
        nrows = pieces.nrows()
        ids = tf.concat([tf.fill([nrows, 1], tokenizer.cls_id), pieces,
                         tf.fill([nrows, 1], tokenizer.sep_id)], axis=1)
        shape = [None, span + 2]
        return {
            "input_word_ids": ids.to_tensor(default_value=tokenizer.pad_id, shape=shape),
            "input_mask": tf.ones_like(ids).to_tensor(default_value=0, shape=shape),
            "input_type_ids": tf.zeros_like(ids).to_tensor(default_value=0, shape=shape),
        }

    @tf.function(input_signature=[], autograph=False)
    def metadata():
        return {"json": tf.constant(metadata_json)}

    @tf.function(autograph=False)
    def call(inputs, training=False):
        del training  # the encoder has no dropout; accepted because TF Hub's callers pass it
        out, _ = run_encoder(*check_encoder_inputs(
            tf.cast(inputs["input_word_ids"], tf.int32), tf.cast(inputs["input_mask"], tf.int32),
            tf.cast(inputs["input_type_ids"], tf.int32), config))
        return {"pooled_output": out["pooled_output"], "default": out["pooled_output"],
                "sequence_output": out["sequence_output"], "embedding_output": out["embedding_output"],
                "encoder_outputs": list(out["encoder_outputs"])}

    spec = {name: ids_spec for name in ("input_word_ids", "input_mask", "input_type_ids")}
    for training in (False, True):
        call.get_concrete_function(spec, training=training)

    # TF Hub's reusable SavedModels are plain trackables with these attributes
    # (Keras' own exporter builds the same kind of object).
    root = tf.__internal__.tracking.AutoTrackable()
    root.__call__ = call
    root.embed = embed
    root.encode = encode
    root.preprocess = preprocess
    root.metadata = metadata
    root.tokenizer = tokenizer
    root.variables = list(encoder.variables)
    root.trainable_variables = list(encoder.trainable_variables)
    root.regularization_losses = []
    root.vocab_file = tf.saved_model.Asset(str(vocab_path))
    root.metadata_file = tf.saved_model.Asset(str(metadata_path))
    root.do_lower_case = tf.Variable(embedder.lower_case, trainable=False, name="do_lower_case")
    return root


def check_encoder_inputs(ids, mask, types, config):
    """The three encoder inputs of `encode` and the TF Hub call, checked in the graph.

    Without these checks the encoder gets some mistakes silently wrong: an
    `input_mask` of another shape broadcasts (a [batch, 1] mask of ones acts as
    "no padding"), an id past a table's end reads zeros on a GPU, and a sequence
    longer than the position table fails deep inside with a bare `strided_slice`
    error. Each check fails with a message naming the input, its shape or values,
    and the limit.

    Args:
        ids, mask, types: int32 [batch, seq] `input_word_ids`, `input_mask`, `input_type_ids`.
        config: the model's `BertConfig`.

    Returns:
        `(ids, mask, types)`, which run only after the checks passed.
    """
    shape = tf.shape(ids)
    checks = []
    for name, x in (("input_mask", mask), ("input_type_ids", types)):
        checks.append(tf.debugging.Assert(tf.reduce_all(tf.equal(tf.shape(x), shape)), [tf.strings.format(
            name + " has shape {} but input_word_ids has shape {}; the three inputs must have the same "
            "[batch, seq] shape", (tf.shape(x), shape))]))
    limit = config.max_position_embeddings
    checks.append(tf.debugging.Assert(shape[1] <= limit, [tf.strings.format(
        "input_word_ids has {} positions; this model takes at most " + str(limit)
        + " (max_position_embeddings): split longer inputs", (shape[1],))]))
    for name, x, size in (("input_word_ids", ids, config.vocab_size),
                          ("input_type_ids", types, config.type_vocab_size)):
        low, high = tf.reduce_min(x), tf.reduce_max(x)  # of an empty input: int32 max and min, which pass
        checks.append(tf.debugging.Assert((low >= 0) & (high < size), [tf.strings.format(
            name + " holds values from {} to {}; this model takes 0 to " + str(size - 1), (low, high))]))
    low, high = tf.reduce_min(mask), tf.reduce_max(mask)
    checks.append(tf.debugging.Assert((low >= 0) & (high <= 1), [tf.strings.format(
        "input_mask holds values from {} to {}; it takes 1 for a real token and 0 for padding", (low, high))]))
    with tf.control_dependencies(checks):
        return tf.identity(ids), tf.identity(mask), tf.identity(types)


def _embed(sentences, tokenizer, run_encoder, span: int, options: dict, hidden: int) -> dict:
    """`serving_default`: strings -> padded words, word vectors, offsets and sentence vectors."""
    from bert_tf.embeddings import PAD_MULTIPLE

    tok = tokenizer.tokenize(sentences)
    pieces = tok["pieces"]  # [batch, (words), (pieces)] int32
    text_pieces = pieces.merge_dims(1, 2)  # [batch, (pieces)]
    n = text_pieces.row_lengths()  # [batch] int64
    batch = text_pieces.nrows()
    plan = window_plan(n, span)

    # One encoder row per window: [CLS] pieces[start:start + len] [SEP], padded to a
    # multiple of PAD_MULTIPLE as the Python API pads its batches. Padding does not change
    # the result, but equal shapes round alike: on a 150-piece text the largest difference
    # from the Python API fell from 9e-6 to 1e-6.
    longest = tf.reduce_max(tf.concat([plan["seg_len"], [0]], axis=0)) + 2
    seq = tf.minimum(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, span + 2)
    pos = tf.range(seq)[tf.newaxis, :]  # [1, seq]
    seg_len = plan["seg_len"][:, tf.newaxis]  # [segments, 1]
    in_window = (pos >= 1) & (pos <= seg_len)
    flat = (tf.gather(text_pieces.row_splits, plan["seg_text"])[:, tf.newaxis]
            + plan["seg_start"][:, tf.newaxis] + pos - 1)  # [segments, seq] index into all pieces
    padded_ids = tf.concat([text_pieces.flat_values, [0]], axis=0)  # a safe slot for padding positions
    flat = tf.where(in_window, flat, tf.size(padded_ids, out_type=tf.int64) - 1)
    ids = tf.where(in_window, tf.gather(padded_ids, flat), tokenizer.pad_id)
    ids = tf.where(pos == 0, tokenizer.cls_id, ids)
    ids = tf.where(pos == seg_len + 1, tokenizer.sep_id, ids)
    mask = tf.cast(pos <= seg_len + 1, tf.int32)  # [segments, seq]
    out, states = run_encoder(ids, mask, tf.zeros_like(ids))

    # Every piece from its max-context window: [pieces, 2] (segment, position) pairs.
    piece_text = text_pieces.value_rowids()
    index = piece_positions(n, piece_text, text_pieces.row_splits, plan, span)

    # Word vectors: combine layers, pick pieces, pool pieces into words.
    picked = [states[i] for i in options["hidden_state_indices"]]
    if options["combine"] == "concat":
        combined = tf.concat(picked, axis=-1)
    else:
        combined = tf.add_n(picked) if len(picked) > 1 else picked[0]
        if options["combine"] == "mean":
            combined = combined / float(len(picked))
    piece_vectors = tf.gather_nd(combined, index)  # [pieces, width]
    word_splits = pieces.values.row_splits  # pieces of each word, all texts
    if options["subword_pooling"] == "first":
        word_vectors = tf.gather(piece_vectors, word_splits[:-1])
    elif options["subword_pooling"] == "last":
        word_vectors = tf.gather(piece_vectors, word_splits[1:] - 1)
    else:
        sums = tf.math.unsorted_segment_sum(piece_vectors, pieces.values.value_rowids(), pieces.values.nrows())
        counts = tf.cast(pieces.values.row_lengths(), tf.float32)[:, tf.newaxis]
        word_vectors = sums / counts
    if options["dim"] is not None:
        word_vectors = word_vectors[:, :options["dim"]]
    word_vectors = tf.RaggedTensor.from_row_splits(word_vectors, pieces.row_splits, validate=False)

    # Sentence vector: [CLS] of the first window, the stitched pieces, [SEP] of the last.
    first_seg = plan["seg_splits"][:-1]
    last_seg = plan["seg_splits"][1:] - 1
    strategy = options["sentence_strategy"]
    if strategy == "pooled":
        sentence = tf.gather(out["pooled_output"], first_seg)
    else:
        states_at = states[options["sentence_hidden_state_index"]]
        cls = tf.gather_nd(states_at, tf.stack([first_seg, tf.zeros_like(first_seg)], axis=1))
        if strategy == "cls":
            sentence = cls
        else:
            sep = tf.gather_nd(states_at, tf.stack([last_seg, tf.gather(plan["seg_len"], last_seg) + 1], axis=1))
            tokens = tf.gather_nd(states_at, index)
            if strategy == "max":
                sentence = tf.maximum(tf.math.unsorted_segment_max(tokens, piece_text, batch), tf.maximum(cls, sep))
            else:
                total = tf.math.unsorted_segment_sum(tokens, piece_text, batch) + cls + sep
                sentence = total / tf.cast(n + 2, tf.float32)[:, tf.newaxis]
    sentence = tf.ensure_shape(sentence, [None, hidden])

    ones = tf.ones_like(tok["starts"], tf.int32)
    return {
        "words": tok["words"].to_tensor(default_value=""),
        "word_vectors": word_vectors.to_tensor(default_value=0.0),
        "word_mask": ones.to_tensor(default_value=0),
        "word_starts": tf.cast(tok["starts"], tf.int32).to_tensor(default_value=0),
        "word_ends": tf.cast(tok["ends"], tf.int32).to_tensor(default_value=0),
        "sentence_embedding": sentence,
    }


def window_plan(n, span: int) -> dict:
    """The windows of every text, in the graph: `embeddings._window_starts` for a batch.

    Args:
        n: [batch] int64, pieces per text.
        span: pieces per window (max_seq_length - 2).

    Returns:
        A dict of int64 tensors: `seg_splits` [batch + 1] (text t owns segments
        seg_splits[t]:seg_splits[t + 1]), and per segment `seg_text`, `seg_start`
        (its first piece) and `seg_len` (its number of pieces).
    """
    stride = max(1, span // 2)
    n = tf.cast(n, tf.int64)
    # range(0, n - span, stride) plus the last start n - span, or one window.
    num_windows = tf.where(n <= span, tf.ones_like(n), (n - span + stride - 1) // stride + 1)
    seg_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(num_windows)], axis=0)
    seg_text = tf.ragged.row_splits_to_segment_ids(seg_splits, out_type=tf.int64)
    window = tf.range(seg_splits[-1]) - tf.gather(seg_splits, seg_text)
    seg_n = tf.gather(n, seg_text)
    seg_start = tf.minimum(window * stride, tf.maximum(seg_n - span, 0))
    return {
        "seg_splits": seg_splits,
        "num_windows": num_windows,
        "seg_text": seg_text,
        "seg_start": seg_start,
        "seg_len": tf.minimum(seg_n - seg_start, span),
    }


def piece_positions(n, piece_text, text_splits, plan: dict, span: int):
    """For every piece, (segment, position) of its max-context window: `_max_context_window` in the graph.

    Google's `run_squad.py` rule, score = min(left context, right context) + 0.01 * window
    length, written in integers (x100) so that ties are exact and go, as with numpy's
    argmax, to the earliest window. A piece lies in at most ceil(span / stride)
    consecutive regular windows ending at window floor(i / stride), or in the last
    window, so only those candidates are scored: memory stays linear in the pieces.

    Args:
        n: [batch] pieces per text; piece_text: [pieces] text of each piece;
        text_splits: [batch + 1] first piece of each text; plan: `window_plan(n, span)`.

    Returns:
        [pieces, 2] int64 indices into the encoder's [segments, seq, ...] outputs.
    """
    stride = max(1, span // 2)
    k = math.ceil(span / stride) + 1
    n = tf.cast(n, tf.int64)
    i = tf.range(tf.size(piece_text, out_type=tf.int64)) - tf.gather(text_splits, piece_text)  # position in text
    n_i = tf.gather(n, piece_text)
    last = tf.gather(plan["num_windows"], piece_text) - 1
    candidates = tf.concat([(i // stride)[:, tf.newaxis] - tf.range(k, dtype=tf.int64)[tf.newaxis, :],
                            last[:, tf.newaxis]], axis=1)  # [pieces, k + 1] window indices
    candidates = tf.clip_by_value(candidates, 0, last[:, tf.newaxis])
    starts = tf.minimum(candidates * stride, tf.maximum(n_i - span, 0)[:, tf.newaxis])
    ends = tf.minimum(starts + span, n_i[:, tf.newaxis])
    ii = i[:, tf.newaxis]
    inside = (ii >= starts) & (ii < ends)
    score = 100 * tf.minimum(ii - starts, ends - 1 - ii) + (ends - starts)
    score = tf.where(inside, score, -1)
    best = tf.reduce_max(score, axis=1, keepdims=True)
    window = tf.reduce_min(tf.where(score == best, candidates, tf.int64.max), axis=1)
    start = tf.minimum(window * stride, tf.maximum(n_i - span, 0))
    segment = tf.gather(plan["seg_splits"], piece_text) + window
    return tf.stack([segment, 1 + i - start], axis=1)


__all__ = ["export_saved_model", "METADATA_ASSET", "SIGNATURES"]
