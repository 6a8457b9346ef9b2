"""WordVectors equals BertEmbedder's word vectors, in a functional model and inside tf.data.Dataset.map."""

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.keras import WordVectors
from bert_tf.runtime import keras, tf
from bert_tf.testing import assert_float32_close, encoder_bound

TEXTS = ["The bank of the river.", "Héllo, wörld! 日本語 text", "",
         " ".join(["word"] * 20 + ["unbelievable"] * 10)]  # 50+ pieces: several windows at max_seq_length 16


@pytest.fixture
def setup(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    embedder = BertEmbedder.from_checkpoint(directory)
    layer = WordVectors.from_checkpoint(directory)
    return embedder, layer


def _check(embedder, out, max_seq_length):
    expected = embedder.embed_words(TEXTS, max_seq_length=max_seq_length)
    config = embedder.config
    for i, words in enumerate(expected):
        vectors = out["vectors"][i].numpy()
        assert [w.text for w in words] == [w.decode() for w in out["words"][i].numpy()]
        assert [w.start for w in words] == list(out["starts"][i].numpy())
        assert [w.end for w in words] == list(out["ends"][i].numpy())
        assert vectors.shape == (len(words), embedder.config.hidden_size)
        if words:
            reference = np.stack([w.vector for w in words])
            assert_float32_close(vectors, reference, encoder_bound(config, reference), f"text {i}")


def test_functional_model_equals_embedder(setup):
    embedder, layer = setup
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, layer(inputs))
    _check(embedder, model(tf.constant(TEXTS)), None)


def test_long_text_in_windows_equals_embedder(make_checkpoint):
    from bert_tf.embed.options import EmbeddingOptions
    directory, _ = make_checkpoint("tiny")
    embedder = BertEmbedder.from_checkpoint(directory)
    layer = WordVectors.from_checkpoint(directory, EmbeddingOptions(max_seq_length=16))
    _check(embedder, layer(tf.constant(TEXTS)), 16)


def test_inside_dataset_map(setup):
    embedder, layer = setup
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(len(TEXTS)).map(layer)
    _check(embedder, next(iter(ds)), None)


def test_frozen_by_default(setup):
    _, layer = setup
    assert not layer.trainable and layer.trainable_weights == []


@pytest.mark.parametrize("strategy", ["mean", "max", "cls", "pooled"])
def test_sentence_vectors_equal_embedder_in_sequential(make_checkpoint, strategy):
    from bert_tf.embed.options import EmbeddingOptions
    from bert_tf.keras import SentenceVectors
    directory, _ = make_checkpoint("tiny")
    embedder = BertEmbedder.from_checkpoint(directory)
    options = EmbeddingOptions(sentence_strategy=strategy, max_seq_length=16)
    model = keras.Sequential([keras.Input(shape=(), dtype="string"),
                              SentenceVectors.from_checkpoint(directory, options)])
    out = model(tf.constant(TEXTS)).numpy()
    reference = np.stack(embedder.sentence_vectors(TEXTS, sentence_strategy=strategy, max_seq_length=16))
    assert out.shape == reference.shape
    assert_float32_close(out, reference, encoder_bound(embedder.config, reference), strategy)
