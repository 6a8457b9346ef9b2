"""Dropout while fine-tuning: only with training=True, only in the fine-tuned layers, at the config's rates.

The dropout is the encoder's own (`BertEncoder.token_states(..., dropout_layers=N)`), so these also pin
that the encoder's inference graph has no dropout op and that only float32 weights drop out.
"""

import numpy as np
import pytest

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.errors import InvalidValue
from bert_tf.keras import WordVectors
from bert_tf.model.checkpoint import load_encoder
from bert_tf.runtime import tf

TEXTS = tf.constant(["The bank of the river.", "Héllo, wörld! 日本語 text", "",
                     " ".join(["word"] * 20 + ["unbelievable"] * 10)])
OPTIONS = EmbeddingOptions(max_seq_length=16)


def _vectors(layer, training):
    return layer(TEXTS, training=training)["vectors"].flat_values.numpy()


IDS = tf.constant([[2, 10, 11, 12, 3, 0], [2, 13, 3, 0, 0, 0]])
MASK = tf.cast(IDS > 0, tf.int32)


def _random_ops(encoder, dropout_layers):
    """The random ops in the traced graph of `token_states` with dropout in the top `dropout_layers` blocks."""
    graph = tf.function(lambda ids, mask: encoder.token_states(ids, mask, dropout_layers=dropout_layers)
                        ).get_concrete_function(IDS, MASK).graph
    return [op.type for op in graph.get_operations() if op.type.startswith("Random")]


def test_dropout_path_at_rate_zero_is_the_encoders_forward(make_checkpoint):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    _, encoder = load_encoder(directory)
    expected_states, expected_pooled = encoder.token_states(IDS, MASK)
    states, pooled = encoder.token_states(IDS, MASK, dropout_layers=2)
    for a, e in zip(states + [pooled], expected_states + [expected_pooled]):
        np.testing.assert_array_equal(a.numpy(), e.numpy())


def test_dropout_sits_where_bert_has_it_and_inference_has_none(make_checkpoint):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    _, encoder = load_encoder(directory)
    assert _random_ops(encoder, 0) == []  # the inference graph: no dropout op at all
    # Per dropped block: the attention probabilities, the attention output, the feed-forward output.
    assert len(_random_ops(encoder, 1)) == 3 and len(_random_ops(encoder, 2)) == 6


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_only_float32_weights_drop_out(make_checkpoint, precision):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    _, encoder = load_encoder(directory, compute_dtype=precision)
    with pytest.raises(InvalidValue, match="layer_1 cannot drop out: its weights are"):
        encoder.token_states(IDS, MASK, dropout_layers=1)
    # Trained blocks hold float32 variables and drop out; the frozen one below keeps its precision.
    _, encoder = load_encoder(directory, compute_dtype=precision, trained_layers=1)
    assert [b.precision for b in encoder.blocks] == [precision, "mixed_bfloat16" if precision == "bfloat16"
                                                     else "float32"]
    assert all(w.dtype == "float32" for w in encoder.blocks[1].weights)
    assert len(_random_ops(encoder, 1)) == 3
    with pytest.raises(InvalidValue, match="layer_0 cannot drop out"):
        encoder.token_states(IDS, MASK, dropout_layers=2)


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
