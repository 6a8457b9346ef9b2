"""Contextual word vectors as a Keras 3 layer (TensorFlow backend): strings in, ragged word vectors out."""

from bert_tf.keras.layers import SentenceVectors, WordVectors, encode_texts

__all__ = ["SentenceVectors", "WordVectors", "encode_texts"]
