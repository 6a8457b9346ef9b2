"""map_features: a tf.data.Dataset of texts through the layers, inside Dataset.map, equals BertEmbedder."""

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.keras import GivenWordVectors, SentenceVectors, WordVectors, map_features
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
