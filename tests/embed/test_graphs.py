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
