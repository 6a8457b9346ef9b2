"""`WordVectors`: raw strings in, word vectors, words and offsets out, inside a Keras model.

The tokenizer, the encoder and the library's head (`bert_tf.embed.head`) run in the
graph, so a downstream model takes strings. Frozen (trainable=False) by default:
the vectors are features, as the research notebooks use them.
"""

from __future__ import annotations

import os

from bert_tf.embed import head
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.model.checkpoint import load_encoder
from bert_tf.runtime import keras, tf
from bert_tf.text.tokenization import BertTokenizer


class WordVectors(keras.layers.Layer):
    """Strings `[batch]` -> word vectors `[batch, (words), width]` (ragged), words and character offsets.

    Example:
        >>> layer = WordVectors.from_checkpoint("checkpoints/uncased_L-12_H-768_A-12")  # doctest: +SKIP
        >>> out = layer(tf.constant(["The bank of the river."]))  # doctest: +SKIP
        >>> out["vectors"].shape  # doctest: +SKIP
        TensorShape([1, None, 3072])
    """

    def __init__(self, encoder, config, tokenizer: BertTokenizer, options: EmbeddingOptions | None = None,
                 **kwargs):
        """Use `from_checkpoint`; this takes the pieces it loaded.

        Args:
            encoder, config: `load_encoder`'s result.
            tokenizer: the checkpoint's `BertTokenizer`.
            options: the library's `EmbeddingOptions` (layers, combine, subword_pooling, dim,
                max_seq_length); checked against the model here.
        """
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.config = config
        self.tokenizer = tokenizer
        self.options = options or EmbeddingOptions()
        self.resolved = self.options.resolve(config)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, options: EmbeddingOptions | None = None,
                        *, lower_case: bool | None = None, **kwargs) -> "WordVectors":
        """The layer for a Google-layout checkpoint directory."""
        config, encoder = load_encoder(checkpoint)
        tokenizer = BertTokenizer.from_vocab_file(os.path.join(os.fspath(checkpoint), "vocab.txt"),
                                                  lower_case=lower_case)
        return cls(encoder, config, tokenizer, options, **kwargs)

    def compute_output_spec(self, sentences):
        """Ragged outputs, which Keras cannot infer by tracing strings symbolically."""
        batch = sentences.shape[0] if sentences.shape else None
        spec = lambda shape, dtype: keras.KerasTensor((batch, None, *shape), dtype, ragged=True)  # noqa: E731
        return {"vectors": spec((self.resolved.vector_size,), "float32"), "words": spec((), "string"),
                "starts": spec((), "int64"), "ends": spec((), "int64")}

    def call(self, sentences):
        """Returns a dict: "vectors" float32 [batch, (words), width], "words" string [batch, (words)],
        "starts"/"ends" int64 [batch, (words)] code-point offsets (end exclusive)."""
        resolved, span = self.resolved, self.resolved.span
        sentences = tf.reshape(tf.convert_to_tensor(sentences, tf.string), [-1])
        tok = self.tokenizer.tokenize(sentences)
        pieces = tok["pieces"]  # [batch, (words), (pieces)]
        text_pieces = pieces.merge_dims(1, 2)  # [batch, (pieces)]
        n = text_pieces.row_lengths()
        plan = head.window_plan(n, span)
        # One encoder input per window, [CLS] pieces[start:start + len] [SEP].
        # TODO(lead): the same construction lives privately in serve/export.py's _embed; make it public in head.
        starts = tf.gather(text_pieces.row_splits, plan["seg_text"]) + plan["seg_start"]
        flat = tf.gather(text_pieces.flat_values, tf.ragged.range(starts, starts + plan["seg_len"]).flat_values)
        windows = tf.RaggedTensor.from_row_lengths(flat, plan["seg_len"], validate=False)
        rows = tf.shape(plan["seg_len"], out_type=tf.int64)[:1]
        segments = tf.concat([tf.fill(tf.concat([rows, [1]], 0), self.tokenizer.cls_id), windows,
                              tf.fill(tf.concat([rows, [1]], 0), self.tokenizer.sep_id)], axis=1)
        ids = segments.to_tensor(default_value=0)
        mask = tf.cast(tf.sequence_mask(segments.row_lengths(), tf.shape(ids)[1]), tf.int32)
        states, _ = self.encoder.token_states(ids, mask)
        features = head.combine_layers(states, resolved.hidden_states, self.options.combine)
        source, plan = head.stitch_indices(n, span, plan)
        vectors = head.pool_words(tf.gather(features, source), n, pieces.values.row_lengths(),
                                  self.options.subword_pooling)
        vectors = tf.ensure_shape(vectors[:, :resolved.vector_size], [None, resolved.vector_size])
        return {
            "vectors": tf.RaggedTensor.from_row_splits(vectors, pieces.row_splits, validate=False),
            "words": tok["words"],
            "starts": tok["starts"],
            "ends": tok["ends"],
        }
