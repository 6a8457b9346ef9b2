"""`WordVectors`: raw strings in, word vectors, words and offsets out, inside a Keras model.

The tokenizer, the encoder and the library's head (`bert_tf.embed.head`) run in the
graph, so a downstream model takes strings. Frozen (trainable=False) by default:
the vectors are features, as the research notebooks use them.

Every layer is registered with Keras (package "bert_tf") and its `get_config()` holds
the model's `bert_config.json` fields, the vocabulary and the options, never a path:
`model.save("m.keras")` stores the encoder's weights with the model's own, and
`keras.models.load_model` (after `import bert_tf.keras`) rebuilds the layer from the
config and reads them back, so the checkpoint folder is not needed any more.
"""

from __future__ import annotations

import os

from bert_tf.embed import batching, head
from bert_tf.embed.options import EmbeddingOptions, ResolvedOptions
from bert_tf.errors import InvalidValue
from bert_tf.model.config import BertConfig
from bert_tf.model.encoder import BertEncoder
from bert_tf.model.precision import check_in_graph, resolve_precision
from bert_tf.runtime import keras, tf
from bert_tf.store.checkpoint_dir import CheckpointDir
from bert_tf.text.tokenization import BertTokenizer
from bert_tf.text.vocab import check_lower_case


@keras.saving.register_keras_serializable(package="bert_tf")
class WordVectors(keras.layers.Layer):
    """Strings `[batch]` -> word vectors `[batch, (words), width]` (ragged), words and character offsets.

    Example:
        >>> layer = WordVectors.from_checkpoint("checkpoints/uncased_L-12_H-768_A-12")  # doctest: +SKIP
        >>> out = layer(tf.constant(["The bank of the river."]))  # doctest: +SKIP
        >>> out["vectors"].shape  # doctest: +SKIP
        TensorShape([1, None, 3072])
    """

    def __init__(self, encoder, config, tokenizer: BertTokenizer, options: EmbeddingOptions | None = None,
                 *, fine_tune_layers: int = 0, **kwargs):
        """Use `from_checkpoint`; this takes the pieces it loaded.

        Args:
            encoder, config: `load_encoder`'s result.
            tokenizer: the checkpoint's `BertTokenizer`.
            options: the library's `EmbeddingOptions` (layers, combine, subword_pooling, dim,
                max_seq_length); checked against the model here.
            fine_tune_layers: train the top this many encoder layers (0: frozen features). The
                embeddings, the pooler and the layers below stay frozen. While training
                (`training=True`, as `model.fit` calls it) these layers run with BERT's dropout
                (`BertEncoder.token_states`); every other call is the encoder's own forward. The
                encoder must hold them as float32 variables (`BertEncoder(trained_layers=...)`).

        Raises:
            ValueError: `fine_tune_layers` out of range, or not possible at the encoder's precision.
        """
        check_fine_tuning(fine_tune_layers, config, encoder.precision)
        untrainable = [block.name for block in encoder.blocks[config.num_hidden_layers - fine_tune_layers:]
                       if not block.float32_variables]
        if untrainable:
            raise InvalidValue(f"fine_tune_layers={fine_tune_layers} needs float32 weights in "
                               f"{', '.join(untrainable)}; load the encoder with trained_layers={fine_tune_layers}")
        kwargs.setdefault("trainable", fine_tune_layers > 0)
        super().__init__(**kwargs)
        self.fine_tune_layers = fine_tune_layers
        self.encoder = encoder
        self._set_trained_layers()
        self.config = config
        self.tokenizer = tokenizer
        self.options = options or EmbeddingOptions()
        self.resolved = self.options.resolve(config)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Turns fine-tuning off and on again as a whole: the layers that train are always the top
        `fine_tune_layers` (Keras's own setter would make every encoder layer trainable, embeddings included)."""
        keras.layers.Layer.trainable.fset(self, value)
        if getattr(self, "encoder", None) is not None:
            self._set_trained_layers()

    def _set_trained_layers(self):
        # Per sublayer, because a model collects its variables' own trainable flags, not this layer's.
        encoder = self.encoder
        first_trained = encoder.config.num_hidden_layers - self.fine_tune_layers
        encoder.embeddings.trainable = False
        encoder.pooler.trainable = False
        for i, block in enumerate(encoder.blocks):
            block.trainable = self.trainable and i >= first_trained

    @property
    def precision(self) -> str:
        """What the encoder computes in: "float32", "bfloat16", "float16" or "int8" (never "auto")."""
        return self.encoder.precision

    @classmethod
    def from_checkpoint(cls, checkpoint: "str | os.PathLike | CheckpointDir | None" = None,
                        options: EmbeddingOptions | None = None, *, lower_case: bool | None = None,
                        precision: str = "float32", fine_tune_layers: int = 0, **kwargs) -> "WordVectors":
        """The layer for a Google-layout checkpoint directory, resolved as `BertEmbedder.from_checkpoint`
        resolves it (None: `BERT_TF_CHECKPOINT`, BERT-Base, then the offline model), with the same casing;
        `kwargs` go to `__init__`.

        Args:
            precision: as for `BertEmbedder.from_checkpoint` ("float32", "bfloat16", "float16", "int8",
                "auto"; not "int8-litert", which runs outside TensorFlow's graph): frozen, the layer's encoder is BertEmbedder's at that precision. Fine-tuned, the
                top `fine_tune_layers` blocks hold float32 variables: under bfloat16 they compute as
                Keras's "mixed_bfloat16" policy does, under int8 in float32; float16 cannot fine-tune
                (its gradients need loss scaling). The layers below compute in `precision`.
            fine_tune_layers: as for `__init__`.

        Raises:
            CheckpointNotFoundError, CheckpointError: no usable checkpoint (the message says why).
            ValueError: an unknown `precision`, or one that cannot fine-tune.
        """
        lower_case = check_lower_case(lower_case)
        check_in_graph(precision, "a Keras layer")
        compute_dtype = resolve_precision(precision)
        checkpoint = checkpoint if isinstance(checkpoint, CheckpointDir) else CheckpointDir.resolve(checkpoint)
        check_fine_tuning(fine_tune_layers, checkpoint.config, compute_dtype)  # before the weights are read
        config, encoder = checkpoint.load_encoder(compute_dtype=compute_dtype, trained_layers=fine_tune_layers)
        tokenizer = BertTokenizer(checkpoint.vocab, lower_case=checkpoint.lower_case(lower_case))
        return cls(encoder, config, tokenizer, options, fine_tune_layers=fine_tune_layers, **kwargs)

    def get_config(self) -> dict:
        """Everything to rebuild the layer except its weights, which Keras saves beside the config:
        the model's `bert_config.json` fields, the vocabulary, the casing and the options."""
        return {
            **super().get_config(),
            "bert_config": self.config.to_dict(),
            "vocabulary": list(self.tokenizer.vocab),
            "lower_case": self.tokenizer.lower_case,
            "max_chars_per_word": self.tokenizer.max_chars_per_word,
            "options": self.options.to_dict(),
            "fine_tune_layers": self.fine_tune_layers,
            "precision": self.encoder.precision,
        }

    @classmethod
    def from_config(cls, config: dict):
        """The layer of `get_config()`, with an encoder of fresh weights for Keras to load the saved ones into,
        computing in the saved precision (a model saved before layers had one computes in float32)."""
        config = dict(config)
        bert_config = BertConfig.from_dict(config.pop("bert_config"), source="the layer's config")
        tokenizer = BertTokenizer(config.pop("vocabulary"), lower_case=config.pop("lower_case"),
                                  max_chars_per_word=config.pop("max_chars_per_word"))
        options = EmbeddingOptions(**config.pop("options"))
        precision = config.pop("precision", "float32")
        check_in_graph(precision, "a Keras layer")
        compute_dtype = resolve_precision(precision)
        fine_tune_layers = config.get("fine_tune_layers", 0)
        check_fine_tuning(fine_tune_layers, bert_config, compute_dtype)
        encoder = BertEncoder(bert_config, compute_dtype=compute_dtype, trained_layers=fine_tune_layers)
        return cls(encoder, bert_config, tokenizer, options, **config)

    def compute_output_spec(self, sentences):
        """Ragged outputs, which Keras cannot infer by tracing strings symbolically."""
        batch = sentences.shape[0] if sentences.shape else None
        spec = lambda shape, dtype: keras.KerasTensor((batch, None, *shape), dtype, ragged=True)  # noqa: E731
        return {"vectors": spec((self.resolved.vector_size,), "float32"), "words": spec((), "string"),
                "starts": spec((), "int64"), "ends": spec((), "int64")}

    @property
    def _gradients(self) -> bool:
        """Whether gradients may be asked of the encoder: fine-tuning on (in training or under a tape)."""
        return self.trainable and self.fine_tune_layers > 0

    def _dropout_layers(self, training) -> int:
        """How many top blocks run with dropout in this call: the fine-tuned ones, while training."""
        return self.fine_tune_layers if training and self.trainable else 0

    def call(self, sentences, training=None):
        """Returns a dict: "vectors" float32 [batch, (words), width], "words" string [batch, (words)],
        "starts"/"ends" int64 [batch, (words)] code-point offsets (end exclusive)."""
        resolved = self.resolved
        run = encode_texts(self.tokenizer, self.encoder, sentences, resolved,
                           {"words": (resolved.hidden_states, self.options.combine)},
                           dropout_layers=self._dropout_layers(training), gradients=self._gradients)
        pieces = run["pieces"]
        vectors = head.pool_words(tf.gather(run["words"], run["source"]), run["n"], pieces.values.row_lengths(),
                                  self.options.subword_pooling)
        vectors = tf.ensure_shape(vectors[:, :resolved.vector_size], [None, resolved.vector_size])
        tok = run["tokens"]
        return {
            "vectors": tf.RaggedTensor.from_row_splits(vectors, pieces.row_splits, validate=False),
            "words": tok["words"],
            "starts": tok["starts"],
            "ends": tok["ends"],
        }


@keras.saving.register_keras_serializable(package="bert_tf")
class SentenceVectors(WordVectors):
    """Strings `[batch]` -> one vector per text `[batch, hidden]`, by `options.sentence_strategy`
    ("mean", "max", "cls", "pooled") at `options.sentence_layer`, as `BertEmbedder.sentence_vectors`."""

    def __init__(self, encoder, config, tokenizer: BertTokenizer, options: EmbeddingOptions | None = None,
                 **kwargs):
        options = options or EmbeddingOptions()
        if options.sentence_strategy is None:
            raise InvalidValue("SentenceVectors needs options.sentence_strategy: one of mean, max, cls, pooled")
        super().__init__(encoder, config, tokenizer, options, **kwargs)

    def compute_output_spec(self, sentences):
        batch = sentences.shape[0] if sentences.shape else None
        return keras.KerasTensor((batch, self.config.hidden_size), "float32")

    def call(self, sentences, training=None):
        strategy = self.options.sentence_strategy
        features = {} if strategy == "pooled" else {"sentence": ((self.resolved.sentence_state,), "sum")}
        run = encode_texts(self.tokenizer, self.encoder, sentences, self.resolved, features,
                           dropout_layers=self._dropout_layers(training), gradients=self._gradients)
        rows = None if strategy == "pooled" else tf.gather(run["sentence"], run["source"])
        out = head.sentence_vectors(rows, run["n"], run["pooled"], run["plan"], strategy)
        return tf.ensure_shape(out, [None, self.config.hidden_size])


def check_fine_tuning(fine_tune_layers, config: BertConfig, compute_dtype: str) -> None:
    """Refuses a `fine_tune_layers` the model does not have, or fine-tuning where training cannot run.

    Raises:
        ValueError: saying what to use instead.
    """
    if isinstance(fine_tune_layers, bool) or not isinstance(fine_tune_layers, int) \
            or not 0 <= fine_tune_layers <= config.num_hidden_layers:
        raise InvalidValue(f"fine_tune_layers must be an integer from 0 to {config.num_hidden_layers}; "
                           f"got {fine_tune_layers!r}")
    if fine_tune_layers and compute_dtype == "float16":
        raise InvalidValue("fine-tuning cannot compute in float16: its small gradients underflow without loss "
                           "scaling; use precision='bfloat16' (same speed-up, float32's range) or 'float32'")


def encode_texts(tokenizer: BertTokenizer, encoder, sentences, resolved: ResolvedOptions, features: dict, *,
                 dropout_layers: int = 0, gradients: bool = False) -> dict:
    """Tokenizer and encoder over whole texts, in the library's batch plan; BERT's dropout in the top
    `dropout_layers` encoder layers (`BertEncoder.token_states`; 0 while not training).

    Returns:
        `encode_pieces`'s dict and "tokens" (`tokenizer.tokenize`'s dict), "pieces" [batch, (words), (pieces)].
    """
    sentences = tf.reshape(tf.convert_to_tensor(sentences, tf.string), [-1])
    tok = tokenizer.tokenize(sentences)
    pieces = tok["pieces"]  # [batch, (words), (pieces)]
    out = encode_pieces(tokenizer, encoder, pieces.merge_dims(1, 2), resolved, features,
                        dropout_layers=dropout_layers, gradients=gradients)
    return {"tokens": tok, "pieces": pieces, **out}


def encode_pieces(tokenizer: BertTokenizer, encoder, text_pieces, resolved: ResolvedOptions, features: dict, *,
                  dropout_layers: int = 0, gradients: bool = False) -> dict:
    """The encoder over the word-piece ids of each text, [batch, (pieces)], as the library runs it.

    The batch is planned as `BertEmbedder` plans a chunk of texts (`batching.plan_calls`: long texts
    in windows, segments sorted by length, model calls sized by the budget of padded positions), so
    a call pads only to its own longest segment, not to the batch's longest text; the outputs come
    back in the batch's order. A batch of a few hundred texts is then planned as the library plans them.
    A layer being fine-tuned runs its batch as one call instead (`gradients`).

    Args:
        resolved: the layer's `ResolvedOptions` (span, max_seq_length, batch_size).
        features: {name: (layers, combine)}: the combined hidden layers wanted (`batching.encode_calls`).
        gradients: whether gradients flow back into the encoder (a layer being fine-tuned): the
            batch then runs as one call, padded to its longest window (`batching.encode_calls`).

    Returns:
        A dict: each name of `features` [N, ...] for every window's real tokens, "pooled" [windows, hidden],
        "n" [batch] pieces per text, "plan" (the window plan, with `head.stitch_indices`' additions)
        and "source" (the rows that stitch windows back into texts).
    """
    n = text_pieces.row_lengths()
    plan = batching.plan_calls(n, resolved.span, resolved.max_seq_length, resolved.options.batch_size or 0,
                               batching.MAX_BATCH_POSITIONS)
    out = batching.encode_calls(
        encoder, text_pieces, plan, features, tokenizer.cls_id, tokenizer.sep_id,
        token_states=lambda ids, mask: encoder.token_states(ids, mask, dropout_layers=dropout_layers),
        gradients=gradients)
    source, plan = head.stitch_indices(n, resolved.span, plan)
    return {**out, "n": n, "plan": plan, "source": source}


@keras.saving.register_keras_serializable(package="bert_tf")
class GivenWordVectors(WordVectors):
    """Pre-split words `[batch, (words)]` (CoNLL-style token lists) -> exactly one vector per given word.

    Each given word is tokenized on its own; all its pieces (of every sub-word the tokenizer
    makes of it, "U.S." -> "u", ".", "s", ".") are pooled by `options.subword_pooling` into its
    one vector, so labels line up with the input. A given word with no pieces (empty, or only
    characters the tokenizer drops) gets a zero vector. The text the model sees is the given
    words' pieces in order, as if the words were joined by spaces.
    """

    def compute_output_spec(self, words):
        batch = words.shape[0] if words.shape else None
        return keras.KerasTensor((batch, None, self.resolved.vector_size), "float32", ragged=True)

    def call(self, words, training=None):
        """words: ragged string [batch, (words)] -> float32 ragged [batch, (words), width].

        A dense [batch, max_words] string tensor is taken as words padded with "" at the end (what
        `model.export`'s signature and a TF Serving client pass); the padding gets no vector."""
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(words, padding="")
        resolved = self.resolved
        flat = self.tokenizer.tokenize(words.flat_values)["pieces"].merge_dims(1, 2)  # [given, (pieces)]
        counts = flat.row_lengths()  # [given] pieces per given word
        text_pieces = tf.RaggedTensor.from_row_splits(flat.values, tf.gather(flat.row_splits, words.row_splits),
                                                      validate=False)  # [batch, (pieces)]
        n = text_pieces.row_lengths()
        run = encode_pieces(self.tokenizer, self.encoder, text_pieces, resolved,
                            {"words": (resolved.hidden_states, self.options.combine)},
                            dropout_layers=self._dropout_layers(training), gradients=self._gradients)
        has_pieces = counts > 0
        pooled = head.pool_words(tf.gather(run["words"], run["source"]), n, tf.boolean_mask(counts, has_pieces),
                                 self.options.subword_pooling)[:, :resolved.vector_size]
        vectors = tf.scatter_nd(tf.where(has_pieces), pooled,
                                tf.stack([tf.size(counts, out_type=tf.int64),
                                          tf.constant(resolved.vector_size, tf.int64)]))
        vectors = tf.ensure_shape(vectors, [None, resolved.vector_size])
        return tf.RaggedTensor.from_row_splits(vectors, words.row_splits, validate=False)
