"""Contextual word vectors as a Keras 3 layer (TensorFlow backend): strings in, ragged word vectors out."""

from bert_tf.keras.layers import WordVectors

__all__ = ["WordVectors"]
