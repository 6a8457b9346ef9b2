"""Contextual word vectors as a Keras 3 layer (TensorFlow backend): strings in, ragged word vectors out."""

from bert_tf.keras.data import map_features, text_batches
from bert_tf.keras.layers import GivenWordVectors, SentenceVectors, WordVectors, encode_pieces, encode_texts

__all__ = [
    "GivenWordVectors", "SentenceVectors", "WordVectors", "encode_pieces", "encode_texts", "map_features",
    "text_batches",
]
