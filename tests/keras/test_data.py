"""map_features (a tf.data.Dataset of texts through the layers, inside Dataset.map) and text_batches (texts
batched for model.predict): the vectors equal BertEmbedder's, and both pipelines run untuned."""

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.keras import GivenWordVectors, SentenceVectors, WordVectors, map_features, text_batches
from bert_tf.runtime import keras
from bert_tf.runtime import tf
from bert_tf.testing import assert_float32_close, encoder_bound

TEXTS = ["The bank of the river.", "Héllo, wörld! 日本語 text", "",
         " ".join(["word"] * 20 + ["unbelievable"] * 10)]  # several windows at max_seq_length 16
OPTIONS = EmbeddingOptions(max_seq_length=16)


@pytest.fixture
def checkpoint(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    return directory, BertEmbedder.from_checkpoint(directory)


def test_word_vectors_with_labels_passed_through(checkpoint):
    directory, embedder = checkpoint
    labels = np.arange(len(TEXTS))
    ds = map_features(tf.data.Dataset.from_tensor_slices((TEXTS, labels)),
                      WordVectors.from_checkpoint(directory, OPTIONS), batch_size=3)
    batches = list(ds)
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2], [3]]
    expected = embedder.embed_words(TEXTS, max_seq_length=16)
    got = [v.numpy() for features, _ in batches for v in features["vectors"]]
    assert [len(g) for g in got] == [len(e) for e in expected]
    for i, (g, e) in enumerate(zip(got, expected)):
        if e:
            reference = np.stack([w.vector for w in e])
            assert_float32_close(g, reference, encoder_bound(embedder.config, reference), f"text {i}")


def test_sentence_vectors(checkpoint):
    directory, embedder = checkpoint
    ds = map_features(tf.data.Dataset.from_tensor_slices(TEXTS),
                      SentenceVectors.from_checkpoint(directory, OPTIONS), batch_size=2)
    got = np.concatenate([b.numpy() for b in ds])
    reference = np.stack(embedder.sentence_vectors(TEXTS, max_seq_length=16))
    assert_float32_close(got, reference, encoder_bound(embedder.config, reference), "sentences")


def test_given_words_and_tags_batch_ragged(checkpoint):
    directory, embedder = checkpoint
    words = tf.ragged.constant([["The", "bank", "."], ["river"], ["a", "b", "c", "d"]])
    tags = tf.ragged.constant([[1, 2, 0], [2], [0, 0, 1, 1]])
    ds = map_features(tf.data.Dataset.from_tensor_slices((words, tags)),
                      GivenWordVectors.from_checkpoint(directory, OPTIONS), batch_size=3)
    vectors, batch_tags = next(iter(ds))
    assert vectors.row_lengths().numpy().tolist() == [3, 1, 4] == batch_tags.row_lengths().numpy().tolist()
    reference = np.stack([w.vector for w in embedder.embed_words(["The bank ."], max_seq_length=16)[0]])
    assert_float32_close(vectors[0].numpy(), reference, encoder_bound(embedder.config, reference), "given")


def test_not_texts_refused(checkpoint):
    directory, _ = checkpoint
    with pytest.raises(ValueError, match="needs texts"):
        map_features(tf.data.Dataset.from_tensor_slices([1, 2]), WordVectors.from_checkpoint(directory))


def _autotuned(dataset) -> bool:
    # an autotuned iterator's deletion waits for the tuner's next wake-up (bert_tf/keras/data.py)
    return dataset.options().autotune.enabled is not False


def test_map_features_runs_untuned(checkpoint):
    directory, _ = checkpoint
    texts = tf.data.Dataset.from_tensor_slices(TEXTS).map(tf.strings.strip, num_parallel_calls=tf.data.AUTOTUNE)
    assert _autotuned(texts)
    assert not _autotuned(map_features(texts, WordVectors.from_checkpoint(directory, OPTIONS)))


def test_text_batches_in_predict_equal_the_embedder_in_order(checkpoint):
    directory, embedder = checkpoint
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, WordVectors.from_checkpoint(directory, OPTIONS)(inputs)["vectors"])
    texts = TEXTS * 2 + ["The bank of the river."]  # a duplicate, an empty text, a last short batch
    batches = text_batches(texts, batch_size=4)
    assert not _autotuned(batches)
    assert [len(b) for b in batches] == [4, 4, 1]
    got = model.predict(batches, verbose=0)
    expected = embedder.embed_words(texts, max_seq_length=16)
    assert got.row_lengths().numpy().tolist() == [len(e) for e in expected]
    for i, e in enumerate(expected):
        if e:
            reference = np.stack([w.vector for w in e])
            assert_float32_close(got[i].numpy(), reference, encoder_bound(embedder.config, reference), f"text {i}")


def test_text_batches_of_word_lists_for_given_words(checkpoint):
    directory, embedder = checkpoint
    inputs = keras.Input(shape=(None,), dtype="string", ragged=True)
    model = keras.Model(inputs, GivenWordVectors.from_checkpoint(directory, OPTIONS)(inputs))
    words = [["The", "bank", "."], ("river",), ["a", "b", "c", "d"]]
    got = model.predict(text_batches(words, batch_size=2), verbose=0)
    assert got.row_lengths().numpy().tolist() == [3, 1, 4]
    reference = np.stack([w.vector for w in embedder.embed_words(["The bank ."], max_seq_length=16)[0]])
    assert_float32_close(got[0].numpy(), reference, encoder_bound(embedder.config, reference), "given")


@pytest.mark.parametrize("texts, batch_size, message", [
    ([], 8, "no texts"),
    ("one text", 8, "not one string"),
    (["a text", ["a", "list"]], 8, "item 1 is list"),
    (["a text", 3], 8, "item 1 is int"),
    ([["a", "list"], ["b", 3]], 8, "item 1 is a list holding a word that is not a string"),
    ([["a", "list"], "a text"], 8, "item 1 is str"),
    (["a text"], 0, "positive integer"),
    (["a text"], True, "positive integer"),
])
def test_text_batches_refuses_what_it_cannot_batch(texts, batch_size, message):
    with pytest.raises(ValueError, match=message):
        text_batches(texts, batch_size=batch_size)
