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


def _one_step(layer):
    before = {v.path: v.numpy().copy() for v in layer.encoder.weights}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(tf.constant(TEXTS[:2]))["vectors"].flat_values ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, layer.trainable_weights))
    return {path for path, value in before.items()
            if not np.array_equal(value, next(v for v in layer.encoder.weights if v.path == path).numpy())}


def test_fine_tuning_changes_only_the_top_layers(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    layer = WordVectors.from_checkpoint(directory, fine_tune_layers=1)
    changed = _one_step(layer)
    top = layer.encoder.blocks[-1]
    top_paths = {v.path for v in top.weights}
    # Every weight of the top layer moves except the key bias, whose gradient is zero (softmax ignores a shift).
    assert changed == top_paths - {p for p in top_paths if p.endswith("key/bias")}
    assert not changed & {v.path for v in layer.encoder.blocks[0].weights}
    assert not changed & {v.path for v in layer.encoder.embeddings.weights}


def test_frozen_layer_trains_the_head_and_no_encoder_weight(make_checkpoint):
    from bert_tf.keras import SentenceVectors
    directory, _ = make_checkpoint("tiny")
    features = SentenceVectors.from_checkpoint(directory)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(2)(features(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [v.numpy().copy() for v in model.weights]
    model.train_on_batch(tf.constant(TEXTS[:2]), np.array([0, 1]))
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.weights)]
    encoder_paths = {v.path for v in features.encoder.weights}
    assert not any(c for c, v in zip(changed, model.weights) if v.path in encoder_paths)
    assert any(c for c, v in zip(changed, model.weights) if v.path not in encoder_paths)  # the Dense head moved


def test_fine_tune_layers_checked(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    with pytest.raises(ValueError, match="fine_tune_layers must be an integer from 0 to 2"):
        WordVectors.from_checkpoint(directory, fine_tune_layers=3)


def test_given_words_one_vector_each(setup, make_checkpoint):
    from bert_tf.keras import GivenWordVectors
    embedder, _ = setup
    directory, _ = make_checkpoint("tiny")
    layer = GivenWordVectors.from_checkpoint(directory)
    given = [["The", "bank", "of", "the", "river", "."], ["U.S.", "日本", "\u200b", "unbelievable", "ok"]]
    out = layer(tf.ragged.constant(given))
    assert out.row_lengths().numpy().tolist() == [6, 5]  # one vector per given word, labels line up
    assert np.all(out[1][2].numpy() == 0)  # a word of dropped characters only: zeros
    assert np.any(out[1][0].numpy() != 0) and np.any(out[1][1].numpy() != 0)  # split words: one pooled vector
    # Where the splits agree (every given word is one tokenizer word), the library's vectors.
    expected = embedder.embed_words([" ".join(given[0])])[0]
    reference = np.stack([w.vector for w in expected])
    assert_float32_close(out[0].numpy(), reference, encoder_bound(embedder.config, reference), "given words")


def test_text_over_512_pieces_equals_embedder(make_checkpoint):
    directory, _ = make_checkpoint("tiny512", max_position_embeddings=512)
    embedder = BertEmbedder.from_checkpoint(directory)
    text = " ".join(["the river bank", "unbelievable !"] * 130)  # well over 510 pieces: three windows
    out = WordVectors.from_checkpoint(directory)(tf.constant([text]))
    expected = embedder.embed_words([text])[0]
    assert len(expected) > 510 and out["vectors"][0].shape[0] == len(expected)
    reference = np.stack([w.vector for w in expected])
    assert_float32_close(out["vectors"][0].numpy(), reference, encoder_bound(embedder.config, reference), "long")


def test_given_word_the_tokenizer_splits_pools_all_its_pieces(setup, make_checkpoint):
    from bert_tf.keras import GivenWordVectors
    embedder, _ = setup
    directory, _ = make_checkpoint("tiny")
    out = GivenWordVectors.from_checkpoint(directory)(tf.ragged.constant([["U.S.", "ok"]]))[0].numpy()
    expected = embedder.embed_words(["U.S. ok"])[0]  # the library sees u . s . ok: four words for "U.S."
    assert [w.text for w in expected][:4] == ["u", ".", "s", "."]
    pieces = np.concatenate([np.repeat(w.vector[None], len(w.pieces), 0) for w in expected[:4]])
    reference = np.stack([pieces.mean(0), expected[4].vector])
    assert_float32_close(out, reference, encoder_bound(embedder.config, reference), "U.S.")


def test_given_words_dense_padded_with_empty_strings(make_checkpoint):
    from bert_tf.keras import GivenWordVectors
    directory, _ = make_checkpoint("tiny")
    layer = GivenWordVectors.from_checkpoint(directory)
    ragged = layer(tf.ragged.constant([["The", "bank", "."], ["river"]]))
    dense = layer(tf.constant([["The", "bank", "."], ["river", "", ""]]))  # what model.export's signature passes
    assert dense.row_lengths().numpy().tolist() == [3, 1]
    np.testing.assert_array_equal(dense.flat_values.numpy(), ragged.flat_values.numpy())


def test_trainable_switches_fine_tuning_off_and_on_for_the_chosen_layers_only(make_checkpoint):
    from bert_tf.keras import SentenceVectors
    directory, _ = make_checkpoint("tiny")
    layer = WordVectors.from_checkpoint(directory, fine_tune_layers=1)
    top = {v.path for v in layer.encoder.blocks[-1].trainable_weights}
    assert {v.path for v in layer.trainable_weights} == top
    inputs = keras.Input(shape=(), dtype="string")
    features = SentenceVectors.from_checkpoint(directory, fine_tune_layers=1)
    model = keras.Model(inputs, keras.layers.Dense(2)(features(inputs)))
    head = {v.path for v in model.layers[-1].trainable_weights}
    features.trainable = False  # what a model collects: no encoder variable
    assert {v.path for v in model.trainable_weights} == head and features.trainable_weights == []
    features.trainable = True  # back to the top layer only, not the whole encoder (Keras's default)
    assert {v.path for v in model.trainable_weights} == head | {v.path for v in features.encoder.blocks[-1].weights}


def test_batch_runs_the_library_plan_and_comes_back_in_order(make_checkpoint, monkeypatch):
    """A batch is sorted by length and split into the library's model calls (each padded to its own longest
    window, not the batch's longest text), and every text's vectors come back in its place."""
    from bert_tf.embed.options import EmbeddingOptions
    directory, _ = make_checkpoint("tiny")
    calls = []
    embedder = BertEmbedder.from_checkpoint(directory, batch_size=2)
    embedder.on_call = lambda c: calls.append((c.rows, c.padded_length))
    options = EmbeddingOptions(max_seq_length=32, batch_size=2)
    layer = WordVectors.from_checkpoint(directory, options)
    shapes = []

    own = layer.encoder.token_states

    def recording(ids, mask, **kwargs):
        shapes.append(tuple(ids.shape))
        return own(ids, mask, **kwargs)

    monkeypatch.setattr(layer.encoder, "token_states", recording)
    out = layer(tf.constant(TEXTS))  # eagerly: one token_states per model call
    _check(embedder, out, 32)
    assert shapes == calls  # the library's calls, in its order and shapes
    assert len(set(shapes)) > 1 and max(r for r, _ in shapes) <= 2  # several calls, of different lengths
