"""`graphs.size_class` and `graphs.lay_out`: queries and batches keep oneDNN's kernels laid out each for its size."""

import numpy as np
import pytest

from bert_tf.embed import runner as runner_module
from bert_tf.embed import graphs
from bert_tf.model import onednn


def test_a_query_is_one_call_of_few_tokens():
    assert graphs.size_class(1, 3) == graphs.size_class(1, graphs.QUERY_TOKENS) == "query"
    assert graphs.size_class(1, graphs.QUERY_TOKENS + 1) == "batch"  # one call over more tokens
    assert graphs.size_class(2, 10) == "batch"  # a batch's small remainder call stays with its batch


@pytest.mark.parametrize("size, max_positions, shape", [("query", 512, (1, 8)), ("batch", 512, (4, 128)),
                                                        ("batch", 64, (8, 64)), ("batch", 100, (6, 100))])
def test_the_layout_call_has_its_class_s_tokens_within_the_model_s_positions(size, max_positions, shape):
    seen = []
    graphs.lay_out(lambda ids, mask: seen.append((ids.numpy(), mask.numpy())), size, max_positions, fill_id=101)
    (ids, mask), = seen
    assert ids.shape == mask.shape == shape and ids.shape[0] * ids.shape[1] >= np.prod(graphs.LAYOUT_CALLS[size])
    assert (ids == 101).all() and (mask == 1).all() and ids.dtype == np.int32


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_queries_and_batches_run_graphs_laid_out_for_them_where_kernels_are_kept(make_checkpoint, monkeypatch,
                                                                                 precision):
    """Where the encoder keeps float32 kernels, the first query makes the queries' encoder graph and lays it
    out with a query's call, the first batch the batches' graph with a batch's, each once; the numbers do not
    depend on which came first. bfloat16 (its kept kernels serve both sizes) and int8 (no float kernel kept):
    one graph, no layout call, the same numbers in either order."""
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    laid_out = []
    real = graphs.lay_out
    monkeypatch.setattr(runner_module, "lay_out", lambda encode, size, *a: (laid_out.append(size),
                                                                              real(encode, size, *a)))
    query, batch = ["how do i reset my password"], [" ".join(["bank"] * n) for n in (3, 30, 70, 9)]
    first = BertEmbedder.from_checkpoint(directory, precision=precision)
    kept = graphs.layouts_by_size(first.encoder)
    assert kept == (precision == "float32" and onednn.fixed_weights_available("float32"))
    assert first.encoder.keeps_kernels == (precision != "int8" and onednn.fixed_weights_available(precision))
    a = first.embed(query, "word_vectors").word_vectors
    b = first.embed(batch, "word_vectors", batch_size=2).word_vectors
    assert first.embed(query, "word_vectors").word_vectors.tobytes() == a.tobytes()
    first.embed(batch, "word_vectors", batch_size=2)
    assert laid_out == (["query", "batch"] if kept else [])
    laid_out.clear()
    other = BertEmbedder.from_checkpoint(directory, precision=precision)  # batches first
    assert other.embed(batch, "word_vectors", batch_size=2).word_vectors.tobytes() == b.tobytes()
    assert other.embed(query, "word_vectors").word_vectors.tobytes() == a.tobytes()
    assert laid_out == (["batch", "query"] if kept else [])


def test_a_function_call_runs_the_function_as_one_op_and_falls_back_where_it_must(monkeypatch):
    """`graphs.FunctionCall` gives what the concrete function gives (a dict argument, numpy and lists
    converted to the signature's dtypes, a captured variable read), without the concrete function's Python
    when eager; in a gradient tape or inside another graph it calls the concrete function, which records
    the gradient and builds the call."""
    from bert_tf.runtime import tf

    weight = tf.Variable(2.0)

    def fn(features, n):
        return {"sum": features["b"] * weight + tf.cast(n, tf.float32), "count": tf.size(features["a"])}

    call = graphs.traced(fn, [{"a": tf.TensorSpec([None], tf.string), "b": tf.TensorSpec([None], tf.float32)},
                              tf.TensorSpec([], tf.int64)])
    expected = call.concrete({"a": tf.constant(["x", "y"]), "b": tf.constant([1.0, 3.0])}, tf.constant(5, tf.int64))
    concrete_call = type(call.concrete).__call__
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(1)
        return concrete_call(self, *args, **kwargs)

    monkeypatch.setattr(type(call.concrete), "__call__", counted)
    got = call({"b": np.array([1.0, 3.0]), "a": [b"x", b"y"]}, np.int64(5))
    assert sorted(got) == ["count", "sum"] and not calls
    assert got["sum"].numpy().tolist() == expected["sum"].numpy().tolist() == [7.0, 11.0]
    assert got["count"].numpy() == expected["count"].numpy() == 2

    with tf.GradientTape() as tape:
        out = call({"a": tf.constant(["x"]), "b": tf.constant([1.0])}, tf.constant(0, tf.int64))
    assert calls == [1] and tape.gradient(out["sum"], weight).numpy() == 1.0

    inside = tf.function(lambda b: call({"a": tf.constant(["x"]), "b": b}, tf.constant(1, tf.int64))["sum"])
    assert inside(tf.constant([4.0])).numpy().tolist() == [9.0] and len(calls) == 2
