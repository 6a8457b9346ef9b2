"""The layers compute in the library's precisions: frozen as `BertEmbedder` does, fine-tuned with float32
weights (bfloat16: Keras's mixed policy in the trained blocks; int8: float32 trained blocks), saved with the model."""

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.errors import InvalidValue
from bert_tf.keras import WordVectors
from bert_tf.model.checkpoint import load_encoder
from bert_tf.runtime import keras, tf
from tests.embed.test_low_precision import MEAN_BAR, MIN_BAR

TEXTS = ["The bank of the river.", "Héllo, wörld! 日本語 text", "",
         " ".join(["word"] * 20 + ["unbelievable"] * 10)]  # several windows at max_seq_length 16
OPTIONS = EmbeddingOptions(max_seq_length=16)


def _words(layer):
    return layer(tf.constant(TEXTS))["vectors"].flat_values.numpy()


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_frozen_layer_is_the_embedders_encoder_at_that_precision(make_checkpoint, precision):
    directory, _ = make_checkpoint("tiny")
    embedder = BertEmbedder.from_checkpoint(directory, precision=precision)
    layer = WordVectors.from_checkpoint(directory, OPTIONS, precision=precision)
    assert layer.precision == precision and not layer.trainable_weights
    # The same encoder construction: every variable of the same dtype and value.
    assert [(w.path, w.dtype) for w in layer.encoder.weights] == [(w.path, w.dtype) for w in embedder.encoder.weights]
    for a, b in zip(layer.encoder.weights, embedder.encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    out = _words(layer)
    reference = np.concatenate([np.stack([w.vector for w in ws])
                                for ws in embedder.embed_words(TEXTS, max_seq_length=16) if ws])
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert not np.array_equal(out, _words(WordVectors.from_checkpoint(directory, OPTIONS)))  # not float32
    # Within bfloat16's (int8's) rounding of the embedder's: the fidelity bar of tests/embed/test_low_precision.py.
    c = _cosines(out, reference)
    assert c.mean() >= MEAN_BAR and c.min() >= MIN_BAR, (c.mean(), c.min())


def _one_step(layer):
    """One SGD step on the layer's trainable weights, with dropout; the encoder weights it changed."""
    before = {v.path: v.numpy().copy() for v in layer.encoder.weights}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant(TEXTS[:2]), training=True)["vectors"].flat_values ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    return {v.path for v in layer.encoder.weights if not np.array_equal(before[v.path], v.numpy())}


@pytest.mark.parametrize("precision, trained", [("float32", "float32"), ("bfloat16", "mixed_bfloat16"),
                                                ("int8", "float32")])
def test_fine_tuning_trains_float32_top_layers_over_low_precision_ones(make_checkpoint, precision, trained):
    directory, _ = make_checkpoint("tiny", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    layer = WordVectors.from_checkpoint(directory, OPTIONS, precision=precision, fine_tune_layers=1)
    bottom, top = layer.encoder.blocks
    assert (bottom.precision, top.precision) == (precision, trained)
    assert {w.dtype for w in layer.trainable_weights} == {"float32"}
    assert {w.path for w in layer.trainable_weights} == {w.path for w in top.weights}
    changed = _one_step(layer)
    top_paths = {w.path for w in top.weights}
    # The key bias's gradient is zero in exact arithmetic (softmax ignores a shift); bfloat16 rounding may move it.
    assert top_paths - {p for p in top_paths if p.endswith("key/bias")} <= changed <= top_paths
    if precision == "bfloat16":  # every block trained, all float32 variables, yet not float32's numbers
        mixed = WordVectors.from_checkpoint(directory, OPTIONS, precision=precision, fine_tune_layers=2)
        assert {b.precision for b in mixed.encoder.blocks} == {"mixed_bfloat16"}
        assert not np.array_equal(_words(mixed), _words(WordVectors.from_checkpoint(directory, OPTIONS)))


@pytest.mark.parametrize("precision, fine_tune_layers", [("bfloat16", 0), ("bfloat16", 1), ("int8", 1)])
def test_saved_model_reloads_computing_the_same_way(make_checkpoint, tmp_path, precision, fine_tune_layers):
    directory, _ = make_checkpoint("tiny")
    layer = WordVectors.from_checkpoint(directory, OPTIONS, precision=precision, fine_tune_layers=fine_tune_layers)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, layer(inputs))
    x = tf.constant(TEXTS)
    expected = model(x)["vectors"].flat_values.numpy()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    again = next(lay for lay in loaded.layers if isinstance(lay, WordVectors))
    assert again.get_config()["precision"] == precision
    assert [b.precision for b in again.encoder.blocks] == [b.precision for b in layer.encoder.blocks]
    assert [w.dtype for w in again.encoder.weights] == [w.dtype for w in layer.encoder.weights]
    np.testing.assert_array_equal(loaded(x)["vectors"].flat_values.numpy(), expected)


def test_precisions_that_cannot_fine_tune_are_refused(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    with pytest.raises(InvalidValue, match="fine-tuning cannot compute in float16.*use precision='bfloat16'"):
        WordVectors.from_checkpoint(directory, precision="float16", fine_tune_layers=1)
    with pytest.raises(InvalidValue, match="precision must be one of"):
        WordVectors.from_checkpoint(directory, precision="bf16")
    # An encoder whose top block holds bfloat16 weights cannot be handed over for fine-tuning.
    config, encoder = load_encoder(directory, compute_dtype="bfloat16")
    frozen = WordVectors.from_checkpoint(directory)
    with pytest.raises(InvalidValue, match="needs float32 weights in layer_1; load the encoder with trained_layers=1"):
        WordVectors(encoder, config, frozen.tokenizer, fine_tune_layers=1)
