"""Dropout while fine-tuning: only with training=True, only in the fine-tuned layers, at the config's rates."""

import numpy as np
import pytest

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.keras import WordVectors
from bert_tf.keras.training import token_states
from bert_tf.runtime import tf
from bert_tf.testing import assert_float32_close, encoder_bound

TEXTS = tf.constant(["The bank of the river.", "Héllo, wörld! 日本語 text", "",
                     " ".join(["word"] * 20 + ["unbelievable"] * 10)])
OPTIONS = EmbeddingOptions(max_seq_length=16)


def _vectors(layer, training):
    return layer(TEXTS, training=training)["vectors"].flat_values.numpy()


def test_block_forward_at_rate_zero_is_the_encoders_forward(make_checkpoint):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    layer = WordVectors.from_checkpoint(directory)
    ids = tf.constant([[2, 10, 11, 12, 3, 0], [2, 13, 3, 0, 0, 0]])
    mask = tf.cast(ids > 0, tf.int32)
    expected_states, expected_pooled = layer.encoder.token_states(ids, mask)
    states, pooled = token_states(layer.encoder, ids, mask, dropout_layers=2)
    for i, (a, e) in enumerate(zip(states + [pooled], expected_states + [expected_pooled])):
        e = e.numpy()
        assert_float32_close(a.numpy(), e, encoder_bound(layer.config, e), f"state {i}")


def test_not_training_is_deterministic_and_equals_the_frozen_layer(make_checkpoint):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    frozen = _vectors(WordVectors.from_checkpoint(directory, OPTIONS), None)
    tuned = WordVectors.from_checkpoint(directory, OPTIONS, fine_tune_layers=2)
    for training in (False, None):
        np.testing.assert_array_equal(_vectors(tuned, training), frozen)
    # While training, dropout changes the vectors, and differently on each call.
    first, second = _vectors(tuned, True), _vectors(tuned, True)
    assert not np.allclose(first, frozen) and not np.allclose(first, second)


@pytest.mark.parametrize("hidden, attention", [(0.5, 0.0), (0.0, 0.5)])
def test_each_rate_comes_from_the_config(make_checkpoint, hidden, attention):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=hidden, attention_probs_dropout_prob=attention)
    tuned = WordVectors.from_checkpoint(directory, OPTIONS, fine_tune_layers=1)
    assert not np.allclose(_vectors(tuned, True), _vectors(tuned, False))


def test_frozen_layers_have_no_dropout(make_checkpoint):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    frozen = WordVectors.from_checkpoint(directory, OPTIONS)
    np.testing.assert_array_equal(_vectors(frozen, True), _vectors(frozen, False))
    # Top layer tuned: the layer below it (hidden state -2) sees no dropout, the top one does.
    below = EmbeddingOptions(max_seq_length=16, layers=(-2,))
    reference = _vectors(WordVectors.from_checkpoint(directory, below), False)
    np.testing.assert_array_equal(_vectors(WordVectors.from_checkpoint(directory, below, fine_tune_layers=1), True),
                                  reference)
    top = EmbeddingOptions(max_seq_length=16, layers=(-1,))
    tuned_top = WordVectors.from_checkpoint(directory, top, fine_tune_layers=1)
    assert not np.allclose(_vectors(tuned_top, True), _vectors(tuned_top, False))
