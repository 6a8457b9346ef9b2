"""Downstream models over the layers: a BiLSTM word tagger and a sentence classifier.

Keras's recurrent layers take dense `[batch, time, features]` tensors with a mask,
not ragged ones, so `PaddedWords` pads the word vectors and says which positions are
words; the mask then reaches the LSTM and the loss, so padding is neither read nor scored.
"""

from __future__ import annotations

from bert_tf.runtime import keras, tf


@keras.saving.register_keras_serializable(package="bert_tf")
class PaddedWords(keras.layers.Layer):
    """Ragged `[batch, (words), width]` -> zero-padded `[batch, max_words, width]`, masked where there is no word."""

    def compute_output_spec(self, vectors):
        return keras.KerasTensor((vectors.shape[0], None, vectors.shape[-1]), vectors.dtype)

    def call(self, vectors):
        return vectors.to_tensor(default_value=0.0)

    def compute_mask(self, vectors, mask=None):
        if not isinstance(vectors, tf.RaggedTensor):  # symbolic: Keras only wants to know there is one
            return None
        lengths = vectors.row_lengths()
        return tf.sequence_mask(lengths, tf.reduce_max(tf.concat([lengths, [0]], 0)))


def word_tagger(features, num_tags: int, *, units: int = 64) -> keras.Model:
    """Given words `[batch, (words)]` -> tag logits `[batch, max_words, num_tags]` (masked past each sentence).

    Args:
        features: a `GivenWordVectors` (frozen, or with `fine_tune_layers`), so every given word gets one
            vector and the logits line up with the labels.
        num_tags: the number of tags.
        units: LSTM units per direction.
    """
    words = keras.Input(shape=(None,), dtype="string", ragged=True, name="words")
    x = PaddedWords(name="padded_words")(features(words))
    x = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True), name="bilstm")(x)
    return keras.Model(words, keras.layers.Dense(num_tags, name="tags")(x), name="word_tagger")


def sentence_classifier(features, num_classes: int) -> keras.Model:
    """Texts `[batch]` -> class logits `[batch, num_classes]`: a linear layer over a `SentenceVectors`."""
    texts = keras.Input(shape=(), dtype="string", name="texts")
    logits = keras.layers.Dense(num_classes, name="classes")(features(texts))
    return keras.Model(texts, logits, name="sentence_classifier")
