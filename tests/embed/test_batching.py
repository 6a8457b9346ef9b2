"""`batching.one_call_plan`: the plan of a request that makes one model call, in numpy, is `plan_calls`' plan."""

import numpy as np
import pytest

from bert_tf.embed import batching, graphs
from bert_tf.runtime import tf


def _plan_calls(n, max_seq_length, batch_size):
    out = batching.plan_calls(tf.constant(n, tf.int64), max_seq_length - 2, max_seq_length, batch_size or 0,
                              batching.MAX_BATCH_POSITIONS)
    return {key: value.numpy() for key, value in out.items()}


def test_the_one_call_plan_is_plan_calls_plan_value_for_value():
    rng = np.random.default_rng(0)
    fitted = 0
    for trial in range(120):
        n = rng.integers(0, int(rng.choice([8, 40, 130, 700])), size=int(rng.integers(1, 40)))
        seq, batch = int(rng.choice([16, 64, 128, 512])), (None, 1, 5, 50)[trial % 4]
        quick, reference = batching.one_call_plan(n, seq, batch), _plan_calls(n, seq, batch)
        one_call = len(reference["call_splits"]) == 2 and len(reference["seg_text"]) == len(n)
        assert (quick is not None) == one_call, (n, seq, batch)
        if quick is None:
            continue
        fitted += 1
        assert quick.keys() == reference.keys()
        for key in reference:
            np.testing.assert_array_equal(quick[key], reference[key], err_msg=key)
            assert quick[key].dtype == reference[key].dtype, key
    assert fitted > 20
    for n in ([5], [0], [510], [0, 3, 3, 1]):  # a query, an empty text, the longest unwindowed text, ties
        assert batching.plan(np.array(n), 512, None).keys() == _plan_calls(n, 512, None).keys()
        for key, value in batching.one_call_plan(np.array(n), 512, None).items():
            np.testing.assert_array_equal(value, _plan_calls(n, 512, None)[key], err_msg=key)


def test_what_one_call_cannot_hold_goes_to_plan_calls():
    assert batching.one_call_plan(np.array([511]), 512, None) is None  # windows
    assert batching.one_call_plan(np.array([3, 4]), 512, 1) is None  # two calls by batch_size
    assert batching.one_call_plan(np.array([100] * 30), 512, None) is None  # over the padded-position budget
    assert batching.one_call_plan(np.array([], np.int64), 512, None) is None
    assert batching.one_call_plan(np.array([3000]), 4096, None) is not None  # a lone segment runs whatever its size


@pytest.mark.parametrize("texts", [["how do i reset my password"], ["a", "", "the bank of the river was muddy"]])
def test_the_fast_path_gives_the_vectors_of_the_planned_path(make_checkpoint, monkeypatch, texts):
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    embedder = BertEmbedder.from_checkpoint(directory)
    outputs = ["word_vectors", "sentence_vectors", "token_states"]
    fast = embedder.embed(texts, outputs)
    monkeypatch.setattr(batching, "one_call_plan", lambda *args: None)
    planned = embedder.embed(texts, outputs)
    assert fast.words == planned.words
    for name in outputs:
        assert np.array_equal(getattr(fast, name), getattr(planned, name)), name


def test_one_call_runs_encoder_then_head_with_the_vectors_of_the_two(make_checkpoint):
    """A text alone is one call (`graphs.one_call_graph`: the encoder's output tensors straight into the head,
    through the head for texts of one window and, where `graphs.layouts_by_size`, the queries' encoder graph); with
    batch_size=1 among others each text is a call of the same shape in the batches' encoder graph, with the
    features through numpy: the same vectors bit for bit (a kept kernel's layout changes no number)."""
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    embedder = BertEmbedder.from_checkpoint(directory)
    texts = ["how do i reset my password", "", "the bank of the river was muddy", "a"]
    outputs = ["word_vectors", "sentence_vectors", "token_states"]
    apart = embedder.embed(texts, outputs, batch_size=1)
    calls = []
    embedder.on_call = calls.append
    alone = [embedder.embed([t], outputs) for t in texts]
    # the batches' encoder call and head, the queries' head (no windows to stitch) and, where layouts go by
    # size, the queries' encoder call; no other
    assert len(calls) == len(texts) and embedder.traces == (4 if graphs.layouts_by_size(embedder.encoder) else 3)
    for t, one in enumerate(alone):
        assert np.array_equal(one.word_vectors, apart.word_vectors[apart.word_splits[t]:apart.word_splits[t + 1]])
        assert np.array_equal(one.sentence_vectors[0], apart.sentence_vectors[t])
        assert np.array_equal(one.token_states, apart.token_states[apart.token_splits[t]:apart.token_splits[t + 1]])


def test_in_graph_calls_run_one_at_a_time(make_checkpoint):
    """`encode_calls` (the Keras layer's and the SavedModel's in-graph loop over the plan's calls) runs one
    call at a time, as the library does: a while loop's default runs up to 10 iterations side by side,
    each call then getting a share of the cores (two streams measured 0.80x of one in float32)."""
    from bert_tf.model.checkpoint import load_encoder

    directory, _ = make_checkpoint("tiny")
    _, encoder = load_encoder(directory)
    pieces = tf.ragged.constant([[5, 6, 7], [8], [9, 10, 11, 12, 13]], tf.int32)

    @tf.function(autograph=False)
    def run(text_pieces):
        plan = batching.plan_calls(tf.cast(text_pieces.row_lengths(), tf.int64), 14, 16, 1,
                                   batching.MAX_BATCH_POSITIONS)
        return batching.encode_calls(encoder, text_pieces, plan, {"last": ([-1], "sum")}, 1, 2)["last"]

    graph = run.get_concrete_function(pieces).graph
    # The calls' loop reads the encoder's variables, so it is the stateful one (the plan's is stateless).
    [calls] = [op for op in graph.get_operations() if op.type == "While"]
    assert calls.get_attr("parallel_iterations") == 1
    assert run(pieces).shape[0] == 3 + 1 + 5 + 3 * 2  # every real token and each call's [CLS] and [SEP]
