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
  `BertEmbedder` does: both run the functions of `bert_tf.embed.head`.
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
import os
import tempfile
from pathlib import Path

from bert_tf.embed import batching, head
from bert_tf.embed.options import EmbeddingOptions, ResolvedOptions
from bert_tf.errors import InvalidValue
from bert_tf.model.encoder import ENCODER_INPUTS
from bert_tf.model.precision import check_in_graph
from bert_tf.runtime import tf
from bert_tf.text.ops import TENSORFLOW_TEXT_VERSION
from bert_tf.files.atomic import staged_directory
from bert_tf.files.owned import EXPORT, EXPORT_METADATA, check_replaceable

logger = logging.getLogger("bert_tf")

#: The options file written into the SavedModel's assets/ (by which `--force` knows a version folder as ours).
METADATA_ASSET = os.path.basename(EXPORT_METADATA)
SIGNATURES = ("serving_default", "encode", "preprocess", "metadata")


def export_saved_model(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                       version: int = 1, options: EmbeddingOptions | None = None, lower_case: bool | None = None,
                       precision: str = "float32", force: bool = False, **option_values) -> Path:
    """Exports the embedder for one checkpoint as a servable SavedModel.

    The embedding options are fixed at export time and have the meaning they have in
    the Python API (`EmbeddingOptions`); the metadata records them as written. The graph
    runs the same head as `BertEmbedder`, on the unpadded `token_states` forward.

    Args:
        checkpoint: checkpoint directory (None resolves it as the Python API does).
        out_dir: the model's base directory; the SavedModel goes to `out_dir/version/`,
            the layout TF Serving watches.
        version: the model version, a positive integer.
        options: the `EmbeddingOptions`, or their fields as keywords (`layers=`, `combine=`,
            `subword_pooling=`, `dim=`, `sentence_strategy=`, `sentence_layer=`,
            `max_seq_length=`). `max_seq_length` is the longest encoder input: longer texts
            are windowed by `serving_default` and truncated by `preprocess`.
        lower_case: override the checkpoint's casing.
        precision: what the exported graph computes in, as for `BertEmbedder.from_checkpoint`
            ("auto" is decided here, on this machine); every output stays float32, and the
            metadata records the precision. An int8 graph holds the XLA-compiled kernels the
            library runs (`model/int8_block.py`): TensorFlow Serving runs them when started with
            `--xla_cpu_compilation_enabled=true`.
        force: replace an existing `out_dir/version/` that bert_tf exported (any other folder is
            never replaced).

    Returns:
        The version directory, e.g. `exports/bert/1`.

    Raises:
        FileExistsError: the version directory exists and `force` is False, is not an export of
            bert_tf's, or `out_dir` is a file.
        PermissionError: `out_dir` cannot be written (the message names it).
        ValueError: a bad option (the message names the allowed values).
        CheckpointNotFoundError, CheckpointError: no usable checkpoint.

    Example:
        >>> path = export_saved_model("checkpoints/uncased_L-12_H-768_A-12", "exports/bert")
        >>> loaded = tf.saved_model.load(str(path))  # after `import tensorflow_text`
        >>> loaded.signatures["serving_default"](sentences=tf.constant(["A mouse."]))["word_vectors"].shape
        TensorShape([1, 3, 768])
    """
    from bert_tf.embed.embedder import BertEmbedder

    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidValue(f"version must be a positive integer (TF Serving's version directory); got {version!r}")
    check_in_graph(precision, "a SavedModel export")
    target = Path(out_dir) / str(version)
    # Before the slow part: an existing version, a folder that is not ours, a file as --out, the checkpoint inside.
    inputs = [("the checkpoint", checkpoint)] if checkpoint is not None else []
    check_replaceable(target, EXPORT, force=force, inputs=inputs)

    options = (options or EmbeddingOptions()).replace(**option_values)
    if options.sentence_strategy is None:
        raise InvalidValue("sentence_strategy must be one of mean, cls, pooled, max for an export "
                           "(serving_default returns a sentence vector)")
    embedder = BertEmbedder.from_checkpoint(checkpoint, lower_case=lower_case, precision=precision,
                                            max_seq_length=options.max_seq_length)
    resolved = embedder.resolve(options.replace(max_seq_length=embedder.max_seq_length))
    metadata = _metadata(embedder, resolved, version)

    # Built beside the target under a name TF Serving ignores (not an integer),
    # then renamed: the server never sees a half-written version.
    with staged_directory(target, replace=force, owner=EXPORT, inputs=inputs) as model_dir, tempfile.TemporaryDirectory() as assets:
        metadata_path = Path(assets) / METADATA_ASSET
        metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        # from_checkpoint read this very file, so the exported asset is the tokenizer's vocabulary.
        vocab_path = Path(embedder.checkpoint) / "vocab.txt"
        root = _build(embedder, resolved, json.dumps(metadata, sort_keys=True), vocab_path, metadata_path)
        tf.saved_model.save(root, str(model_dir), signatures={
            "serving_default": root.embed,
            "encode": root.encode,
            "preprocess": root.preprocess,
            "metadata": root.metadata,
        })
    logger.info("exported %s to %s", embedder.checkpoint, target)
    return target


# ---------------------------------------------------------------------- options


def _metadata(embedder, resolved: ResolvedOptions, version: int) -> dict:
    """What a client needs to know about the export; deterministic (no paths, no times).

    `space` is the `VectorSpace` of the served vectors (`exported_space` reads it back), without
    the path: the folder of the machine that exported means nothing where the model is served.
    The flat keys repeat it for clients that read them directly."""
    import bert_tf

    options = resolved.options
    space = embedder.space(options)
    return {
        "format": "bert_tf SavedModel",
        "version": version,
        "space": space.to_dict(with_path=False),
        "checkpoint": space.name,
        "config": embedder.config.to_dict(),
        "lower_case": space.lower_case,
        # What the encoder computes in; every output tensor is float32 whatever this says.
        "precision": space.precision,
        "output_dtype": "float32",
        "max_seq_length": resolved.max_seq_length,
        "options": options.to_dict(),
        # The options resolved for this checkpoint, for clients that read them directly.
        "layers": list(space.layers),
        "hidden_state_indices": list(resolved.hidden_states),
        "combine": options.combine,
        "subword_pooling": options.subword_pooling,
        "dim": options.dim,
        "vector_size": resolved.vector_size,
        "sentence_strategy": options.sentence_strategy,
        "sentence_layer": options.sentence_layer,
        "sentence_hidden_state_index": resolved.sentence_state,
        "hidden_size": embedder.hidden_size,
        "num_hidden_layers": embedder.config.num_hidden_layers,
        "signatures": list(SIGNATURES),
        "encoder_outputs": [f"encoder_outputs_{i}" for i in range(embedder.config.num_hidden_layers)],
        "bert_tf": bert_tf.__version__,
        "tensorflow": tf.__version__,
        "tensorflow_text": TENSORFLOW_TEXT_VERSION,
    }


def exported_space(version_dir: str | os.PathLike):
    """The `VectorSpace` of an export's vectors, from `assets/bert_tf_export.json` (no graph is loaded):
    compare it with `VectorSpace.differences` before mixing the served vectors with others.

    Raises:
        FileNotFoundError: the folder holds no bert_tf export.
        ValueError: an export by another bert_tf, without a readable space (export it again).

    Example:
        >>> exported_space("exports/bert/1").differences(embedder.space())
        {}
    """
    from bert_tf.embed.space import VectorSpace

    path = Path(version_dir) / "assets" / METADATA_ASSET
    if not path.is_file():
        raise FileNotFoundError(f"{version_dir} is not a bert_tf export (no assets/{METADATA_ASSET})")
    try:
        return VectorSpace.from_dict(json.loads(path.read_text(encoding="utf-8")).get("space"))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, ValueError) as e:
        raise InvalidValue(f"{path}: {e}; export the model again with this bert_tf") from None


# ---------------------------------------------------------------------- the graph


def _build(embedder, resolved: ResolvedOptions, metadata_json: str, vocab_path: Path, metadata_path: Path):
    """The object that is saved: functions, the tokenizer, variables and assets."""
    encoder, tokenizer, config = embedder.encoder, embedder.tokenizer, embedder.config
    span = resolved.span
    ids_spec = tf.TensorSpec([None, None], tf.int32)
    text_spec = tf.TensorSpec([None], tf.string)

    # Traced once and called from every function below: tracing the Keras
    # encoder is most of the export time.
    @tf.function(input_signature=[ids_spec, ids_spec, ids_spec], autograph=False)
    def encoder_fn(ids, mask, types):
        return encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})

    def run_encoder(ids, mask, types):
        return encoder_fn(ids, mask, types)

    @tf.function(input_signature=[text_spec], autograph=False)
    def embed(sentences):
        return _embed(sentences, tokenizer, encoder, resolved)

    @tf.function(input_signature=[ids_spec, ids_spec, ids_spec], autograph=False)
    def encode(input_word_ids, input_mask, input_type_ids):
        out = run_encoder(*check_encoder_inputs(input_word_ids, input_mask, input_type_ids, config))
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
        out = run_encoder(*check_encoder_inputs(
            tf.cast(inputs["input_word_ids"], tf.int32), tf.cast(inputs["input_mask"], tf.int32),
            tf.cast(inputs["input_type_ids"], tf.int32), config))
        return {"pooled_output": out["pooled_output"], "default": out["pooled_output"],
                "sequence_output": out["sequence_output"], "embedding_output": out["embedding_output"],
                "encoder_outputs": list(out["encoder_outputs"])}

    spec = {name: ids_spec for name in ENCODER_INPUTS}
    for training in (False, True):
        call.get_concrete_function(spec, training=training)

    root = _SavedRoot()
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


class _SavedRoot(tf.Module):
    """The saved object: a `tf.Module` holding TF Hub's reusable-SavedModel attributes.

    TF Hub's interface names `variables` and `trainable_variables` as stored attributes;
    `tf.Module` computes them instead (properties, not saved), so they are stored here.
    """

    variables = None
    trainable_variables = None


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


def _embed(sentences, tokenizer, encoder, resolved: ResolvedOptions) -> dict:
    """`serving_default`: strings -> padded words, word vectors, offsets and sentence vectors.

    The windows and model calls come from `batching.plan_calls`, the plan the library runs, so
    every call has the shape the library's has and bfloat16 and int8 give the library's vectors.
    """
    options, span = resolved.options, resolved.span
    tok = tokenizer.tokenize(sentences)
    pieces = tok["pieces"]  # [batch, (words), (pieces)] int32
    text_pieces = pieces.merge_dims(1, 2)  # [batch, (pieces)]
    n = text_pieces.row_lengths()  # [batch] int64
    plan = batching.plan_calls(n, span, resolved.max_seq_length, 0, batching.MAX_BATCH_POSITIONS)
    out = batching.encode_calls(encoder, text_pieces, plan,
                                {"words": (resolved.hidden_states, options.combine),
                                 "sentence": ((resolved.sentence_state,), "sum")},
                                tokenizer.cls_id, tokenizer.sep_id)
    features, sentence_rows, pooled = out["words"], out["sentence"], out["pooled"]

    # The head, as BertEmbedder runs it.
    source, plan = head.stitch_indices(n, span, plan)
    word_vectors = head.pool_words(tf.gather(features, source), n, pieces.values.row_lengths(),
                                   options.subword_pooling)
    if options.dim is not None:
        word_vectors = word_vectors[:, :options.dim]
    word_vectors = tf.ensure_shape(word_vectors, [None, resolved.vector_size])  # a signature's static shape
    word_vectors = tf.RaggedTensor.from_row_splits(word_vectors, pieces.row_splits, validate=False)
    rows = None if options.sentence_strategy == "pooled" else tf.gather(sentence_rows, source)
    sentence = head.sentence_vectors(rows, n, pooled, plan, options.sentence_strategy)
    sentence = tf.ensure_shape(sentence, [None, encoder.config.hidden_size])

    ones = tf.ones_like(tok["starts"], tf.int32)
    return {
        "words": tok["words"].to_tensor(default_value=""),
        "word_vectors": word_vectors.to_tensor(default_value=0.0),
        "word_mask": ones.to_tensor(default_value=0),
        "word_starts": tf.cast(tok["starts"], tf.int32).to_tensor(default_value=0),
        "word_ends": tf.cast(tok["ends"], tf.int32).to_tensor(default_value=0),
        "sentence_embedding": sentence,
    }


__all__ = ["export_saved_model", "exported_space", "METADATA_ASSET", "SIGNATURES"]
