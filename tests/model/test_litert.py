"""precision="int8-litert" (`bert_tf.model.litert`) on tiny random checkpoints: the converted model against
the float32 encoder it came from, a text's vectors alone and in any batch, the cache of converted models,
and where the precision is refused. Its fidelity on the real all-MiniLM-L6-v2 is in
tests/embed/test_low_precision.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.errors import InvalidValue
from bert_tf.model import litert
from bert_tf.runtime import tf
from bert_tf.store.checkpoint_dir import CheckpointDir
from bert_tf.testing import assert_float32_close, encoder_bound, float32_bound
from tests.conftest import random_batch

pytestmark = pytest.mark.skipif(litert.available() is not None, reason=str(litert.available()))


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Converted models go to this test's folder, not the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "bert_tf" / "litert"


@pytest.fixture
def tiny(make_checkpoint):
    directory, _ = make_checkpoint(seed=3)
    config, encoder = CheckpointDir.resolve(directory).load_encoder()
    return directory, config, encoder


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_converted_model_computes_the_float32_encoder_to_int8_rounding(tiny):
    directory, config, encoder = tiny
    lite = litert.LiteEncoder(config, litert.convert(encoder), encoder.embeddings.word_embeddings.numpy())
    batch = random_batch(config, [9, 4, 1, 7], seed=5)
    ids, mask = batch["input_word_ids"], batch["input_mask"]
    states, pooled = lite.run(ids, mask)
    ref_states, ref_pooled = encoder.token_states(tf.constant(ids), tf.constant(mask))
    assert len(states) == config.num_hidden_layers + 1
    assert all(s.shape == (int(mask.sum()), config.hidden_size) and s.dtype == np.float32 for s in states)
    # The embedding output has no int8 in it: float32 rounding only (the same sums in another order).
    assert_float32_close(states[0], ref_states[0].numpy(), encoder_bound(config, states[0]), "embedding output")
    # Every later state passed through int8 matmuls: each token within the fidelity bar of float32, and
    # not float32 itself (the kernels really are int8).
    for i in range(1, len(states)):
        ref = ref_states[i].numpy()
        c = _cosines(states[i], ref)
        assert c.min() >= 0.995, (i, c.min())
        assert not np.allclose(states[i], ref, atol=1e-6)
    assert pooled.shape == (4, config.hidden_size)
    assert _cosines(pooled, ref_pooled.numpy()).min() >= 0.995
    # Only the states asked for are copied out.
    some, _ = lite.run(ids, mask, layers=[-1, 0])
    assert some[1] is None and np.array_equal(some[-1], states[-1]) and np.array_equal(some[0], states[0])


def test_a_row_whose_first_position_is_padding_pools_to_zeros_and_an_empty_call_runs(tiny):
    directory, config, encoder = tiny
    lite = litert.LiteEncoder(config, litert.convert(encoder), encoder.embeddings.word_embeddings.numpy())
    ids = np.array([[2, 5, 6], [0, 0, 0]], np.int32)
    mask = np.array([[1, 1, 1], [0, 0, 0]], np.int32)
    states, pooled = lite.run(ids, mask)
    assert states[-1].shape == (3, config.hidden_size) and np.all(pooled[1] == 0) and np.any(pooled[0] != 0)
    states, pooled = lite.run(np.zeros((0, 0), np.int32), np.zeros((0, 0), np.int32))
    assert states[0].shape == (0, config.hidden_size) and pooled.shape == (0, config.hidden_size)
    with pytest.raises(InvalidValue, match="token ids must be in 0..199"):
        lite.run(np.array([[1, 200]]), np.ones((1, 2)))
    with pytest.raises(InvalidValue, match="alike"):
        lite.run(np.ones((1, 3)), np.ones((1, 2)))


def test_its_layer_norms_run_inside_xnnpack(tiny, capfd):
    """The converted model holds no op of TensorFlow's `divide_no_nan` (EQUAL, SELECT_V2, DIV): XNNPACK does
    not run them, and each LayerNorm that had them split the model into another part (`norm.divided`)."""
    _, _, encoder = tiny
    model = litert.convert(encoder)
    capfd.readouterr()
    tf.lite.experimental.Analyzer.analyze(model_content=model)
    ops = capfd.readouterr().out
    assert "FULLY_CONNECTED" in ops and "RSQRT" in ops
    for name in ("SELECT_V2", "EQUAL", "DIV"):
        assert f" {name}(" not in ops, name


def test_only_a_float32_encoder_is_converted(make_checkpoint):
    directory, _ = make_checkpoint()
    _, encoder = CheckpointDir.resolve(directory).load_encoder(compute_dtype="int8")
    with pytest.raises(InvalidValue, match="float32 encoder"):
        litert.convert(encoder)


def test_a_texts_vectors_are_the_same_alone_and_in_any_batch(make_checkpoint):
    """To the float32 bound (measured: the same bits here; attention's float32 sums may group differently
    over a longer padded row on another CPU, and int8 then rounds a last-bit difference)."""
    directory, _ = make_checkpoint(seed=4)
    embedder = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    texts = ["a b c d e f g h", "b c", "c d e f g h a b c d e f g h a b c d", "", "d", "e f g"] * 3
    together = embedder.embed_words(texts)
    one_per_call = embedder.embed_words(texts, batch_size=1)
    for i, text in enumerate(texts):
        alone = [w.vector for w in embedder.embed_words([text])[0]]
        assert len(alone) == len(together[i]) == len(one_per_call[i]) == len(text.split())
        if alone:
            bound = encoder_bound(embedder.config, np.stack(alone))
            for other in (together[i], one_per_call[i]):
                assert_float32_close(np.stack([w.vector for w in other]), np.stack(alone), bound, "alone vs batch")
    # The sentence vectors and token states run through the same engine.
    sentences = embedder.sentence_vectors(texts[:3])
    assert sentences.shape == (3, embedder.hidden_size) and np.isfinite(sentences).all()
    assert_float32_close(embedder.sentence_vectors([texts[2]])[0], sentences[2],
                         encoder_bound(embedder.config, sentences[2]), "a sentence vector alone vs in a batch")
    assert embedder.token_states(["a b"])[0].states.shape[0] == embedder.config.num_hidden_layers + 1


def test_a_request_of_one_call_combines_the_layers_and_runs_the_head_on_litert(make_checkpoint, monkeypatch):
    """After the interpreter every TensorFlow call is slow (its weights have left the caches), so a request
    of one model call (a query) runs the layers' combination and the head as one graph
    (`graphs.one_call_graph`), never the batches' combination graph, and where no text has windows that
    graph runs converted to LiteRT (`litert.LiteFunction`); a batch of calls runs TensorFlow's graphs, and so
    does a query of several windows. The vectors are the same either way, to the rounding of the head's one
    sum (a mean over a text's rows may add them in another order)."""
    from bert_tf.embed import graphs

    directory, _ = make_checkpoint(seed=4)
    embedder = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    texts = ["a b c d", "e f g h a b", "a b c d e f g h a b c d e f"]
    batched = embedder.embed(texts, ["word_vectors", "sentence_vectors"], batch_size=1, max_seq_length=10)
    interpreter_calls, lite_heads = [], []
    states, lite_call = graphs.OutsideEncode.states, litert.LiteFunction.__call__

    def counted(self, ids, mask):
        interpreter_calls.append(len(ids))
        return states(self, ids, mask)

    def counted_head(self, *args):
        lite_heads.append(len(args[2]))  # n: the texts
        return lite_call(self, *args)

    def separate_combination(*args):
        raise AssertionError("a one-call request ran the batches' combination graph")

    monkeypatch.setattr(graphs.OutsideEncode, "states", counted)
    monkeypatch.setattr(litert.LiteFunction, "__call__", counted_head)
    monkeypatch.setattr(graphs.OutsideEncode, "__call__", separate_combination)
    for t, text in enumerate(texts):
        alone = embedder.embed([text], ["word_vectors", "sentence_vectors"], max_seq_length=10)
        first, end = batched.word_splits[t], batched.word_splits[t + 1]
        rows = len(alone.pieces) + 2  # the longest sum of the head: a sentence's mean over its rows
        for got, want in ((alone.word_vectors, batched.word_vectors[first:end]),
                          (alone.sentence_vectors[0], batched.sentence_vectors[t])):
            assert_float32_close(got, want, float32_bound(want, depth=1, width=rows), "a query vs a batch")
    assert interpreter_calls == [1, 1, 3]  # the third text: three windows, in one call
    assert lite_heads == [1, 1]  # the windows were stitched by TensorFlow's head


def test_a_function_runs_on_litert_as_it_computes_and_one_it_cannot_run_is_refused():
    spec = tf.TensorSpec([None, None], tf.float32)
    fn = tf.function(lambda x, y: {"sum": tf.reduce_sum(x * 2.0 + y, axis=1), "first": x[:, 0]},
                     input_signature=[spec, spec]).get_concrete_function()
    lite = litert.LiteFunction(fn)
    for shape in ((2, 3), (5, 7), (2, 3)):  # a new shape resizes it; the old one still runs
        rng = np.random.default_rng(shape[1])
        x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        want = fn(x, y)
        out = lite(x, y)
        assert set(out) == {"sum", "first"}
        for name in out:
            assert_float32_close(out[name], want[name].numpy(), float32_bound(want[name].numpy(), depth=2,
                                                                              width=shape[1]), name)
    strings = tf.function(lambda s: tf.strings.length(tf.strings.upper(s)),
                          input_signature=[tf.TensorSpec([None], tf.string)]).get_concrete_function()
    with pytest.raises(InvalidValue, match="does not convert to LiteRT builtin ops"):
        litert.LiteFunction(strings)


def test_its_vectors_are_a_space_of_their_own(make_checkpoint):
    directory, _ = make_checkpoint()
    lite = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    int8 = BertEmbedder.from_checkpoint(directory, precision="int8")
    assert lite.precision == "int8-litert" and lite.space().precision == "int8-litert"
    assert lite.space().differences(int8.space()) == {"precision": ("int8-litert", "int8")}


def test_a_checkpoint_is_converted_once_and_read_from_the_cache_after(make_checkpoint, own_cache, monkeypatch, caplog):
    directory, _ = make_checkpoint(seed=6)
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        first = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    assert any("converting tiny for precision='int8-litert'" in r.getMessage() for r in caplog.records)
    kept = list(own_cache.iterdir())
    fingerprint = CheckpointDir.resolve(directory).fingerprint
    assert len(kept) == 1 and fingerprint[:16] in kept[0].name and kept[0].suffix == ".tflite"

    def no_conversion(encoder):
        raise AssertionError("converted again")

    monkeypatch.setattr(litert, "convert", no_conversion)
    second = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    texts = ["a b c", "d e"]
    assert all(np.array_equal(a.vector, b.vector) for x, y in zip(first.embed_words(texts), second.embed_words(texts))
               for a, b in zip(x, y))
    assert list(own_cache.iterdir()) == kept  # no temporary file left beside it


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_embedder(make_checkpoint, monkeypatch, caplog):
    directory, _ = make_checkpoint()
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/bert_tf_no_such_place")
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        embedder = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    assert any("could not keep the converted model" in r.getMessage() for r in caplog.records)
    assert len(embedder.embed_words(["a b"])[0]) == 2


def test_an_interrupted_conversion_leaves_nothing_a_later_run_reads(make_checkpoint, own_cache, monkeypatch):
    directory, _ = make_checkpoint(seed=7)
    real_commit = __import__("bert_tf.files.output", fromlist=["commit"]).commit

    def interrupted(temp, final):
        raise KeyboardInterrupt

    monkeypatch.setattr("bert_tf.files.output.commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    assert not own_cache.exists() or not any(own_cache.iterdir())
    monkeypatch.setattr("bert_tf.files.output.commit", real_commit)
    assert len(BertEmbedder.from_checkpoint(directory, precision="int8-litert").embed_words(["a"])[0]) == 1
    assert len(list(own_cache.iterdir())) == 1


def test_a_cache_path_names_the_weights_recipe_and_converter():
    path = litert.cache_path("my model/../x", "0123456789abcdef0123")
    assert path.name == f"my_model_.._x-0123456789abcdef-int8-r{litert.RECIPE}-tf{tf.__version__}.tflite"
    assert litert.cache_path("x", None) is None


def test_what_cannot_hold_a_graph_refuses_it_with_one_line(make_checkpoint, tmp_path):
    from bert_tf.keras.layers import WordVectors
    from bert_tf.serve.export import export_saved_model

    directory, _ = make_checkpoint()
    with pytest.raises(InvalidValue, match="outside TensorFlow's graph, so a Keras layer cannot hold it"):
        WordVectors.from_checkpoint(directory, precision="int8-litert")
    with pytest.raises(InvalidValue, match="so a SavedModel export cannot hold it"):
        export_saved_model(directory, tmp_path / "export", precision="int8-litert")
    assert not (tmp_path / "export").exists()
    with pytest.raises(InvalidValue, match="cannot be fine-tuned"):
        CheckpointDir.resolve(directory).load_encoder(compute_dtype="int8-litert", trained_layers=1)


def test_rows_run_in_groups_of_like_length_each_cut_to_its_longest_row():
    extent = np.array([5, 0, 8, 3, 9, 4, 700, 8])
    got = [(list(rows), length) for rows, length in litert.groups(extent)]
    if litert.LENGTH_STEP == 4:  # extents 3 and 4 round to 4; 5 and 8 to 8; 9 to 12
        assert got == [([3, 5], 4), ([0, 2, 7], 8), ([4], 9), ([6], 700)]
    covered = sorted(r for rows, _ in got for r in rows)
    assert covered == [0, 2, 3, 4, 5, 6, 7]  # row 1 has no real token: it runs nowhere
    for rows, length in got:
        assert length == extent[rows].max()
        buckets = {-(-e // litert.LENGTH_STEP) for e in extent[rows]}
        assert len(buckets) == 1 and len(rows) * length <= max(litert.GROUP_POSITIONS, length)
    many = litert.groups(np.full(5000, 9))
    assert sum(len(rows) for rows, _ in many) == 5000
    assert all(len(rows) * length <= litert.GROUP_POSITIONS for rows, length in many)


def test_any_mask_gives_each_row_what_it_gives_alone(tiny):
    """Rows with holes, a padded first position, none at all, lengths far apart: each row's tokens and
    pooled vector are those of the row run alone (to the float32 bound) and in mask order."""
    directory, config, encoder = tiny
    lite = litert.LiteEncoder(config, litert.convert(encoder), encoder.embeddings.word_embeddings.numpy())
    rng = np.random.default_rng(2)
    ids = rng.integers(1, config.vocab_size, (6, 40)).astype(np.int32)
    mask = np.zeros_like(ids)
    mask[0, :40] = 1
    mask[1, :3] = 1
    mask[2, [0, 1, 5, 6, 7]] = 1  # a hole
    mask[3, 2:9] = 1  # first position padding
    mask[5, :17] = 1  # row 4: no token
    states, pooled = lite.run(ids, mask)
    ref_states, _ = encoder.token_states(tf.constant(ids), tf.constant(mask))
    assert states[-1].shape == (int(mask.sum()), config.hidden_size)
    assert _cosines(states[-1], ref_states[-1].numpy()).min() >= 0.995  # the same tokens, in mask order
    start = 0
    for r in range(len(ids)):
        n = int(mask[r].sum())
        alone_states, alone_pooled = lite.run(ids[r:r + 1], mask[r:r + 1])
        for i in range(len(states)):
            assert_float32_close(states[i][start:start + n], alone_states[i], encoder_bound(config, alone_states[i]),
                                 f"row {r} state {i}")
        assert_float32_close(pooled[r], alone_pooled[0], encoder_bound(config, alone_pooled), f"row {r} pooled")
        start += n
    assert np.all(pooled[3] == 0) and np.all(pooled[4] == 0)


def test_its_calls_run_one_at_a_time_on_an_interpreter_that_takes_every_core(make_checkpoint):
    directory, _ = make_checkpoint()
    assert BertEmbedder.from_checkpoint(directory, precision="int8-litert", streams=2).streams == 1
    assert BertEmbedder.from_checkpoint(directory, precision="int8", streams=2).streams == 2


def test_a_damaged_model_in_the_cache_is_converted_again(make_checkpoint, own_cache, caplog):
    directory, _ = make_checkpoint(seed=8)
    BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    (kept,) = own_cache.iterdir()
    kept.write_bytes(kept.read_bytes()[:1000])  # cut short, as a full disk would leave a file written in place
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        embedder = BertEmbedder.from_checkpoint(directory, precision="int8-litert")
    assert any("does not load" in r.getMessage() for r in caplog.records)
    assert len(embedder.embed_words(["a b"])[0]) == 2 and kept.stat().st_size > 1000
