"""`BertEmbedder(streams=N)`: consecutive model calls run at once on N threads, with the vectors, their order
and the `on_call` reports of one stream."""

import threading

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.errors import InvalidValue
from bert_tf.testing import tiny_vocab


@pytest.fixture
def embedder(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    return BertEmbedder.from_checkpoint(directory)


def _texts():
    words = [w for w in tiny_vocab(200) if w.isalpha() and w.islower()]
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(words, size=int(k))) for k in rng.integers(1, 30, size=40)]
    long = " ".join(rng.choice(words, size=150))  # windows over several calls
    return [long] + texts[:20] + ["", long.upper()] + texts[20:]


def _run(embedder, streams, texts, **options):
    embedder.streams = streams
    calls = []
    embedder.on_call = lambda call: calls.append((call.rows, call.padded_length, call.real_tokens))
    out = embedder.embed(texts, ["word_vectors", "sentence_vectors", "token_states"], progress=False, **options)
    embedder.on_call = None
    return out, calls


def test_two_streams_give_the_vectors_of_one_bit_for_bit(embedder, monkeypatch):
    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 96)  # many calls; long texts span several
    texts = _texts()
    one, calls_one = _run(embedder, 1, texts, max_seq_length=24)
    assert len(calls_one) > 10
    for streams in (2, 3):
        many, calls = _run(embedder, streams, texts, max_seq_length=24)
        assert f"bert_tf-stream_{streams - 1}" in {t.name for t in threading.enumerate()}  # its threads ran them
        assert calls == calls_one  # the same calls, reported in plan order
        assert many.words == one.words and np.array_equal(many.word_splits, one.word_splits)
        for name in ("word_vectors", "sentence_vectors", "token_states"):
            assert np.array_equal(getattr(many, name), getattr(one, name)), (streams, name)


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_two_streams_give_the_vectors_of_one_bit_for_bit_in_every_precision(make_checkpoint, monkeypatch, precision):
    """Two calls at once are the default: in int8 (oneDNN's int8 matmuls and XLA's compiled kernels, run by
    two threads at once) and in bfloat16 too, each text's vectors are those of one call at a time."""
    from bert_tf.embed import batching

    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    embedder = BertEmbedder.from_checkpoint(directory, precision=precision)
    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 96)  # many calls, of several padded row counts
    texts = _texts()
    one, calls_one = _run(embedder, 1, texts, max_seq_length=24)
    assert len(calls_one) > 10 and len({rows for rows, _, _ in calls_one}) > 2
    for attempt in range(2):  # the threads interleave differently each time
        two, calls = _run(embedder, 2, texts, max_seq_length=24)
        assert calls == calls_one
        for name in ("word_vectors", "sentence_vectors", "token_states"):
            assert np.array_equal(getattr(two, name), getattr(one, name)), (precision, name, attempt)


def test_one_embedder_used_from_several_threads_with_two_streams(embedder, monkeypatch):
    """Its lock and its stream threads serve callers of their own threads: each gets its own texts' vectors."""
    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 64)
    texts = _texts()
    embedder.streams = 1
    expected = [embedder.sentence_vectors(texts[k::3], progress=False) for k in range(3)]
    embedder.streams = 2
    got, errors = [None] * 3, []

    def work(k):
        try:
            got[k] = embedder.sentence_vectors(texts[k::3], progress=False)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_changing_streams_leaves_no_threads_behind(embedder, monkeypatch):
    """A new stream count gets new threads; the old pool's exit once nothing holds it (a caller still
    iterating keeps it until done), so an embedder switched back and forth does not pile threads up."""
    import gc
    import time

    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 64)
    texts = _texts()

    def stream_threads():
        return {t for t in threading.enumerate() if t.name.startswith("bert_tf-stream") and t.is_alive()}

    before = stream_threads()  # other embedders' (earlier tests'), which may exit meanwhile
    for streams in (2, 3, 2, 3):
        _run(embedder, streams, texts)
    gc.collect()
    deadline = time.monotonic() + 10
    while len(stream_threads() - before) > 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stream_threads() - before) == 3  # the last pool's, and only those


def test_the_progress_bar_counts_every_call_with_two_streams(embedder, monkeypatch):
    from bert_tf.embed import batching, calls

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 64)
    seen = []

    def progress(batches, progress, total_texts):  # the bar as the loop uses it: advanced once per call
        for c in batches:
            seen.append(c)
            yield c

    monkeypatch.setattr(calls, "progress_bar", progress)
    embedder.streams = 2
    texts = _texts()
    embedder.embed_words(texts, progress=True)
    assert seen == list(range(len(embedder.model_inputs(texts)))) and len(seen) > 4


@pytest.mark.parametrize("value", [0, -2, "2x", 1.0, True])
def test_a_bad_streams_value_is_one_clear_error_before_anything_loads(value, tmp_path):
    with pytest.raises(InvalidValue, match=r"^streams must be 'auto' or a positive integer"):
        BertEmbedder.from_checkpoint(tmp_path / "no such checkpoint", streams=value)


def test_auto_is_what_the_process_is_sized_for_else_two_on_the_shared_pools(embedder, monkeypatch):
    from bert_tf import streams

    monkeypatch.setenv("BERT_TF_STREAMS", "3")
    embedder.streams = "auto"
    assert embedder.streams == 3
    monkeypatch.delenv("BERT_TF_STREAMS")
    monkeypatch.setattr(streams, "cores", lambda: 2)
    embedder.streams = "auto"
    assert embedder.streams == streams.AUTO_STREAMS == 2
    monkeypatch.setattr(streams, "cores", lambda: 1)  # one core: nothing to share
    embedder.streams = "auto"
    assert embedder.streams == 1
    with pytest.raises(InvalidValue):
        embedder.streams = 0
    assert embedder.streams == 1


def test_each_call_reports_the_span_its_work_lay_in(embedder, monkeypatch):
    """`ModelCall.span` holds the call's `seconds` and lies within the request; one stream's spans follow
    one another, so the union of spans is what measurements take as time inside model calls."""
    import time

    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 96)
    texts = _texts()
    for streams in (1, 2):
        embedder.streams = streams
        calls = []
        embedder.on_call = calls.append
        started = time.perf_counter()
        embedder.embed(texts, ["word_vectors"], progress=False, max_seq_length=24)
        finished = time.perf_counter()
        embedder.on_call = None
        assert len(calls) > 10
        for call in calls:
            start, end = call.span
            assert started <= start <= end <= finished
            assert call.seconds <= end - start + 1e-6  # the call's work lies within its span
        if streams == 1:
            assert all(a.span[1] <= b.span[0] for a, b in zip(calls, calls[1:]))
