"""Word and sentence embeddings on the real all-MiniLM-L6-v2, checked against Hugging Face."""

import logging

import numpy as np
import pytest

from bert_tf import BertEmbedder, get_bert_embeddings
from bert_tf.embed import graphs
from bert_tf.testing import assert_float32_close, encoder_bound

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.numerics

PARITY_SENTENCES = [
    "A mouse is a rodent animal.",
    "The man went fishing by the bank of the river; the bank was muddy.",  # repeated word
    "Naïve café owners in Zürich don't serve crème brûlée on Mondays!",  # accents, apostrophe
    "東京は日本の首都です and Beijing 北京 too.",  # CJK
    "Emoji 😀 and ☃ are unknown, so is ⌘-Q?",  # [UNK] words
    "Prices rose 3.5% (to $1,024) — a record — in Q3'24...",  # punctuation galore
    "",
]


@pytest.fixture(scope="module")
def embedder(minilm_checkpoint):
    return BertEmbedder.from_checkpoint(minilm_checkpoint)


def assert_same(embedder, actual, reference, what):
    """Equal to float32 rounding of this encoder (see `bert_tf.testing.float32_bound`)."""
    return assert_float32_close(actual, reference, encoder_bound(embedder.config, reference), what)


def stacked(words):
    return np.stack([w.vector for w in words])


def hf_word_vectors(hf_model, minilm_hf_dir, sentence, layers=(-4, -3, -2, -1)):
    """Word vectors built independently: HF tokenizer's word alignment + HF hidden states."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast(str(minilm_hf_dir / "vocab.txt"), do_lower_case=True)
    enc = tokenizer(sentence, return_tensors="pt", return_offsets_mapping=True)
    word_ids = enc.word_ids()
    offsets = enc.pop("offset_mapping")[0].numpy()
    with torch.inference_mode():
        states = hf_model(**enc, output_hidden_states=True).hidden_states
    summed = sum(states[i][0] for i in layers).numpy()
    words, spans = [], []
    for w in sorted({w for w in word_ids if w is not None}):
        idx = [t for t, x in enumerate(word_ids) if x == w]
        words.append(summed[idx].mean(axis=0))
        spans.append((int(offsets[idx[0]][0]), int(offsets[idx[-1]][1])))
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return np.array(words, np.float32).reshape(len(words), summed.shape[-1]), spans, tokens[1:-1]


@pytest.mark.parametrize("sentence", PARITY_SENTENCES)
def test_word_vectors_match_hugging_face(embedder, hf_minilm, minilm_hf_dir, sentence):
    ours = embedder.embed_words([sentence])[0]
    theirs, spans, tokens = hf_word_vectors(hf_minilm, minilm_hf_dir, sentence)
    assert [p for w in ours for p in w.pieces] == tokens
    assert [(w.start, w.end) for w in ours] == spans
    if ours:
        assert_same(embedder, stacked(ours), theirs, f"word vectors vs Hugging Face, {sentence!r}")


def test_get_bert_embeddings_is_the_notebook_api(minilm_checkpoint):
    sentences = ["A mouse is a rodent animal.", "A mouse is a computer device.",
                 "A rat is an animal that lives in the sewers.", "A computer has a keyboard as an input device."]
    emb = get_bert_embeddings(sentences, dim=384, checkpoint=minilm_checkpoint)
    assert len(emb) == 4 and all(isinstance(d, dict) for d in emb)
    assert list(emb[0]) == ["a", "mouse", "is", "rodent", "animal", "."]
    v = emb[0]["mouse"]
    assert v.dtype == np.float32 and v.shape == (384,)
    contextual = np.abs(emb[0]["mouse"] - emb[1]["mouse"]).max()
    assert contextual > 1000 * encoder_bound(BertEmbedder.from_checkpoint(minilm_checkpoint).config, v)


def test_repeated_word_keeps_first_occurrence(embedder, minilm_checkpoint):
    sentence = "The bank by the river is not the bank that holds money."
    words = embedder.embed_words([sentence])[0]
    banks = [w for w in words if w.text == "bank"]
    assert len(banks) == 2
    assert np.abs(banks[0].vector - banks[1].vector).max() > 100 * encoder_bound(embedder.config, banks[0].vector)
    d = get_bert_embeddings([sentence], checkpoint=minilm_checkpoint)[0]
    np.testing.assert_array_equal(d["bank"], banks[0].vector)


def test_options(embedder, caplog):
    s = ["Contextual embeddings are fun."]
    full = embedder.embed_words(s)[0]
    concat = embedder.embed_words(s, combine="concat")[0]
    mean = embedder.embed_words(s, combine="mean")[0]
    assert concat[0].vector.shape == (4 * 384,)
    assert_same(embedder, mean[0].vector * 4, full[0].vector, "combine=mean")
    assert_same(embedder, concat[0].vector.reshape(4, 384).sum(0), full[0].vector, "combine=concat")
    first = embedder.embed_words(s, subword_pooling="first", layers=[-1])[0]
    last = embedder.embed_words(s, subword_pooling="last", layers=[-1])[0]
    states = embedder.token_states(s)[0]
    word = next(i for i, w in enumerate(first) if len(w.pieces) > 1)  # "contextual" -> context ##ual
    tokens = np.nonzero(states.word_index == word)[0]
    assert_same(embedder, first[word].vector, states.states[-1, tokens[0]], "subword_pooling=first")
    assert_same(embedder, last[word].vector, states.states[-1, tokens[-1]], "subword_pooling=last")
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        small = embedder.embed_words(s, dim=10)[0]
    assert small[0].vector.shape == (10,) and "discards" in caplog.text
    np.testing.assert_array_equal(small[0].vector, full[0].vector[:10])


@pytest.mark.parametrize("kwargs, message", [
    (dict(combine="avg"), "combine must be one of sum, mean, concat; got 'avg'"),
    (dict(subword_pooling="max"), "subword_pooling must be one of mean, first, last"),
    (dict(dim=385), "dim=385 is larger"),
    (dict(dim=0), "dim must be a positive integer"),
    (dict(layers=[7]), "layers must be integers from -7 to 6"),
    (dict(layers=[-1, 6]), "same layer twice"),
    (dict(layers=[]), "at least one"),
    (dict(batch_size=0), "batch_size"),
    (dict(max_seq_length=513), "max_seq_length must be an integer from 8 to 512"),
])
def test_bad_options_are_named(embedder, kwargs, message):
    with pytest.raises(ValueError) as err:
        embedder.embed_words(["a b c"], **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("bad, message", [
    (None, "got None"),
    ("just one string", "wrap it in a list"),
    (["fine", 3, "fine"], "sentences[1] is int"),
    (["fine", b"bytes"], "sentences[1] is bytes, expected str (decode bytes first)"),
    (42, "got int"),
])
def test_bad_input_is_a_clear_type_error(embedder, bad, message):
    with pytest.raises(TypeError) as err:
        embedder.embed_words(bad)
    assert message in str(err.value)


def test_empty_and_odd_input(embedder):
    texts = ["", "   \t\n ", "\x00\x01\u200b", "a\u0301", "é" * 300, "x" * 50_000,
             "עברית ועוד", "مرحبا بالعالم", "\ud800 lone surrogate"]
    results = embedder.embed_words(texts)
    assert results[0] == [] and results[1] == [] and results[2] == []
    assert [w.text for w in results[3]] == ["a"]
    assert [w.pieces for w in results[4]] == [("[UNK]",)]  # 300 chars > 100: one [UNK], still a vector
    assert results[5][0].pieces == ("[UNK]",) and results[5][0].end == 50_000
    for text, words in zip(texts, results):
        for w in words:
            assert np.all(np.isfinite(w.vector)) and text[w.start:w.end]
    assert get_bert_embeddings(["", "  "], checkpoint=embedder.checkpoint) == [{}, {}]
    assert embedder.embed_words([]) == []


def test_result_does_not_depend_on_the_rest_of_the_batch(embedder):
    short = "The cat sat on the mat."
    long = " ".join(["A much longer sentence about rivers, banks and money."] * 20)
    alone = embedder.embed_words([short])[0]
    mixed = embedder.embed_words([long, short, "x", long + " again"], batch_size=3)[1]
    assert [w.text for w in alone] == [w.text for w in mixed]
    assert_same(embedder, stacked(mixed), stacked(alone), "a text alone vs in a batch")
    s_alone = embedder.sentence_vectors([short])
    s_mixed = embedder.sentence_vectors([long, short], batch_size=2)[1:]
    assert_same(embedder, s_mixed, s_alone, "a sentence vector alone vs in a batch")


def test_the_rounding_bound_is_far_below_what_a_mistake_does(embedder):
    """The float32 bound tolerates any summation order, and real mistakes still miss it by orders of
    magnitude: a padding mask that is ignored, and a piece taken from a window one piece off its best."""
    text = "The cat sat on the mat."
    right = embedder.token_states([text])[0]
    n = len(right.ids)
    ids = np.zeros((1, n + 8), np.int32)
    ids[0, :n] = right.ids
    ones = np.ones_like(ids)
    unmasked = embedder.encoder({"input_word_ids": ids, "input_mask": ones,
                                 "input_type_ids": np.zeros_like(ids)})["sequence_output"].numpy()[0, :n]
    bound = encoder_bound(embedder.config, right.states[-1])
    assert np.abs(unmasked - right.states[-1]).max() > 100 * bound

    long = " ".join(f"word{i % 50} is number {i}." for i in range(20))
    states = embedder.token_states([long])[0]
    piece, window = 40, 30  # the piece sits mid-window at start 25; one piece later it has less on its left

    def piece_vector(start):
        window_ids = [embedder.tokenizer.cls_id, *states.ids[1 + start:1 + start + window], embedder.tokenizer.sep_id]
        out = embedder.encoder({"input_word_ids": np.array([window_ids], np.int32),
                                "input_mask": np.ones((1, len(window_ids)), np.int32),
                                "input_type_ids": np.zeros((1, len(window_ids)), np.int32)})
        return out["sequence_output"].numpy()[0, 1 + piece - start]

    best, off_by_one = piece_vector(25), piece_vector(26)
    assert np.abs(off_by_one - best).max() > 100 * encoder_bound(embedder.config, best)


def _calls(plan):
    """The plan's calls as lists of segment lengths ([CLS] and [SEP] included), in call order."""
    lengths = plan["seg_len"] + 2
    splits = plan["call_splits"]
    return [lengths[plan["order"][splits[c]:splits[c + 1]]].tolist() for c in range(len(splits) - 1)]


def test_batches_are_filled_by_padded_positions():
    from bert_tf.embed.batching import MAX_BATCH_POSITIONS, PAD_MULTIPLE, plan

    rng = np.random.default_rng(3)
    pieces = list(rng.integers(1, 511, size=300)) + [510] * 5 + [1] * 400
    p = plan(np.array(pieces), 512, None)
    calls = _calls(p)
    assert sorted(p["order"].tolist()) == list(range(len(pieces)))  # each segment once
    assert sum(calls, []) == sorted(n + 2 for n in pieces)  # shortest first, stable
    for c, lengths in enumerate(calls):
        seq = p["call_padded"][c]
        assert seq % PAD_MULTIPLE == 0 and seq >= max(lengths) and len(lengths) * seq <= MAX_BATCH_POSITIONS
        assert seq == min(-(-max(lengths) // PAD_MULTIPLE) * PAD_MULTIPLE, 512)
    # Short texts share big calls (400 texts of 3 pieces, padded to 8: 256 per call)...
    assert len(calls[0]) == MAX_BATCH_POSITIONS // 8
    # ...and every call but the last of each padded length is nearly full.
    by_seq = {}
    for c, lengths in enumerate(calls):
        by_seq.setdefault(int(p["call_padded"][c]), []).append(lengths)
    for seq, group in by_seq.items():
        assert all(len(b) * seq > MAX_BATCH_POSITIONS - seq for b in group[:-1])


def test_a_segment_longer_than_the_budget_runs_alone(monkeypatch):
    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 256)
    assert _calls(batching.plan(np.array([598, 8]), 1024, None)) == [[10], [600]]


def test_batch_size_caps_the_texts_per_call():
    from bert_tf.embed.batching import plan

    p = plan(np.array([8] * 100 + [298] * 10), 512, 32)
    calls = _calls(p)
    assert max(len(b) for b in calls) == 32  # short texts: the row cap binds
    assert all(len(b) <= 6 for b in calls if max(b) == 300)  # long ones: positions do
    assert sorted(p["order"].tolist()) == list(range(110))


def test_a_plan_made_op_by_op_and_one_made_by_the_traced_graph_are_the_same(monkeypatch):
    """The first `EAGER_PLANS` plans of a process run `plan_calls` op by op (no 0.25 s trace for a short
    run), later ones its traced graph: the same integer ops, so the same plan, long texts included."""
    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "one_call_plan", lambda *args: None)  # plan_calls itself, even for one call
    rng = np.random.default_rng(0)
    for n, seq, batch in ((rng.integers(1, 700, size=300), 512, None), (np.array([100, 3, 70, 5]), 32, 2),
                          (np.array([0]), 128, None)):
        monkeypatch.setattr(batching, "_plans_made", iter([0]))  # the next plan: op by op
        eager = batching.plan(n, seq, batch)
        monkeypatch.setattr(batching, "_plans_made", iter([batching.EAGER_PLANS]))  # the next: the graph
        traced = batching.plan(n, seq, batch)
        assert eager.keys() == traced.keys()
        for key in eager:
            np.testing.assert_array_equal(eager[key], traced[key], err_msg=key)
            assert eager[key].dtype == traced[key].dtype, key


def test_the_plan_says_which_texts_are_complete_after_each_call(monkeypatch):
    """A long text whose windows run over several calls is complete after the call with its last
    window, and only then; every text is complete exactly once, in the order its rows come back."""
    from bert_tf.embed import batching

    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 64)  # two windows of 32 per call
    n = np.array([100, 3, 70, 5])  # span 30: 6 and 4 windows of 32 positions; two short texts
    p = batching.plan(n, 32, None)
    calls = _calls(p)
    assert calls[0] == [5, 7] and all(c == [32, 32] for c in calls[1:]) and len(calls) == 6
    # Text 2's 4 windows follow text 0's 6 in the sorted order (stable), 2 per call.
    assert p["text_order"].tolist() == [1, 3, 0, 2]
    assert p["ready_texts"].tolist() == [0, 2, 2, 2, 3, 3, 4]
    assert p["ready"].tolist() == [0, 2, 2, 2, 8, 8, 12]
    assert p["token_splits"][-1] == 5 + 7 + 10 * 32


def test_result_does_not_depend_on_how_texts_are_batched(embedder, monkeypatch):
    from bert_tf.embed import batching

    texts = ["A short one.", " ".join(["Rivers, banks and money."] * 12), "x", "The cat sat on the mat."]
    default = embedder.embed_words(texts)
    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 16)  # one text per call
    for a, b in zip(default, embedder.embed_words(texts), strict=True):
        assert [w.text for w in a] == [w.text for w in b]
        assert_same(embedder, stacked(b), stacked(a), "one text per call vs the default batches")


def test_long_texts_whose_windows_run_in_different_calls(embedder, monkeypatch):
    """A long text is reduced only once all of its windows are back, wherever they ran."""
    from bert_tf.embed import batching

    long = " ".join(f"bank{i % 7} of river {i}." for i in range(30))  # ~150 pieces: 11 windows of 24
    texts = [long, "Short.", long.upper(), "Another short one here."]
    options = dict(max_seq_length=24, sentence_strategy="mean", sentence_layer=-1)
    together = list(embedder.iter_embed(texts, **options))
    monkeypatch.setattr(batching, "MAX_BATCH_POSITIONS", 24)  # one window per call
    apart = list(embedder.iter_embed(texts, **options))
    for (words_a, sentence_a), (words_b, sentence_b) in zip(together, apart, strict=True):
        assert [w.text for w in words_a] == [w.text for w in words_b]
        assert_same(embedder, stacked(words_b), stacked(words_a), "windows in one call vs apart")
        assert_same(embedder, sentence_b, sentence_a, "sentence vector, windows in one call vs apart")
    # The stitched sentence vector is the mean over every token of the text, each from its best window.
    states = embedder.token_states([long], max_seq_length=24)[0]
    assert_same(embedder, together[0][1], states.states[-1].mean(axis=0), "stitched sentence vector")


def _owner(array: np.ndarray) -> np.ndarray:
    while array.base is not None:
        array = array.base
    return array


def test_results_hold_no_view_of_a_batch(embedder):
    """What a text's results keep alive is its chunk's word and sentence vectors (the columns of one
    `Embeddings`), never a model call's token vectors: this is what holds memory to one batch of
    token vectors on inputs of any length."""
    texts = ["A mouse is a rodent animal.", "A mouse is a computer device.", "Rats.", ""]
    for strategy in ("cls", "pooled", "mean"):
        results = list(embedder.iter_embed(texts, sentence_strategy=strategy))
        n_words = sum(len(words) for words, _ in results)
        for words, sentence in results:
            assert _owner(sentence).shape == (len(texts), embedder.hidden_size)
            for w in words:
                assert _owner(w.vector).shape == (n_words, embedder.hidden_size)
    for states in embedder.token_states(texts):
        assert _owner(states.states).nbytes == states.states.nbytes


def test_long_text_is_windowed_not_truncated(embedder):
    """Every piece of a long text takes its vector from the window where it has most context."""
    text = " ".join(f"word{i % 50} is number {i}." for i in range(60))  # ~360 pieces
    window = 64
    words = embedder.embed_words([text], max_seq_length=window, layers=[-1])[0]
    states = embedder.token_states([text])[0]
    n_pieces = len(states.pieces) - 2
    assert sum(len(w.pieces) for w in words) == n_pieces > 3 * window
    assert words[-1].end == len(text.rstrip())
    # Rebuild the expected vector of a piece deep inside the text by hand: its best window.
    from bert_tf.embed import head
    from bert_tf.runtime import tf

    span = window - 2
    n = tf.constant([n_pieces])
    plan = head.window_plan(n, span)
    starts = plan["seg_start"].numpy()
    best = head.piece_positions(n, plan, span).numpy()[:, 0]  # one text: segment = window
    flat = [(wi, p) for wi, w in enumerate(words) for p in range(len(w.pieces))]
    for piece in (0, n_pieces // 2, n_pieces - 1):
        start = starts[best[piece]]
        assert start <= piece < start + span
        if 0 < piece < n_pieces - 1:  # context on both sides
            assert min(piece - start, start + span - 1 - piece) >= span // 4
        ids = [embedder.tokenizer.cls_id, *states.ids[1 + start:1 + start + span], embedder.tokenizer.sep_id]
        out = embedder.encoder({"input_word_ids": np.array([ids], np.int32),
                                "input_mask": np.ones((1, len(ids)), np.int32),
                                "input_type_ids": np.zeros((1, len(ids)), np.int32)})
        expected = out["sequence_output"].numpy()[0, 1 + piece - start]
        word_index, _ = flat[piece]
        if len(words[word_index].pieces) == 1:
            assert_same(embedder, words[word_index].vector, expected, f"piece {piece} from its best window")


def test_one_pass_gives_words_and_sentence_vector(embedder):
    texts = ["One pass, two results.", "", "Another sentence here."]
    both = list(embedder.iter_embed(texts, sentence_strategy="max", sentence_layer=-1))
    words = embedder.embed_words(texts)
    sentences = embedder.sentence_vectors(texts, strategy="max", layer=-1)
    for (w, s), w2, s2 in zip(both, words, sentences):
        assert [x.text for x in w] == [x.text for x in w2]
        if w:
            assert_same(embedder, stacked(w), stacked(w2), "iter_embed vs embed_words")
        assert_same(embedder, s, s2, "iter_embed vs sentence_vectors")


def test_sentence_vectors(embedder):
    sentences = ["A mouse is a rodent animal.", "Stocks fell sharply on Monday."]
    states = embedder.token_states(sentences)
    mean = embedder.sentence_vectors(sentences)
    assert mean.shape == (2, 384) and mean.dtype == np.float32
    assert_same(embedder, mean[0], states[0].states[-2].mean(axis=0), "strategy=mean")
    assert_same(embedder, embedder.sentence_vectors(sentences, strategy="max")[1],
                states[1].states[-2].max(axis=0), "strategy=max")
    assert_same(embedder, embedder.sentence_vectors(sentences, strategy="cls", layer=-1)[0],
                states[0].states[-1, 0], "strategy=cls")
    pooled = embedder.sentence_vectors(sentences, strategy="pooled")
    assert pooled.shape == (2, 384) and np.abs(pooled).max() <= 1.0
    with pytest.raises(ValueError, match="strategy must be one of mean, cls, pooled, max"):
        embedder.sentence_vectors(sentences, strategy="avg")


def test_token_states_match_hugging_face(embedder, hf_minilm):
    sentence = "Token states for every layer."
    st = embedder.token_states([sentence])[0]
    assert st.states.shape == (7, len(st.pieces), 384)
    assert st.pieces[0] == "[CLS]" and st.pieces[-1] == "[SEP]"
    with torch.inference_mode():
        out = hf_minilm(input_ids=torch.from_numpy(st.ids.astype(np.int64)[None]), output_hidden_states=True)
    theirs = np.stack([h[0].numpy() for h in out.hidden_states])
    assert_same(embedder, st.states, theirs, "token states vs Hugging Face")


def test_model_is_loaded_once(minilm_checkpoint, monkeypatch):
    get_bert_embeddings(["warm up"], checkpoint=minilm_checkpoint)
    calls = []
    monkeypatch.setattr(BertEmbedder, "load", classmethod(lambda cls, *a, **k: calls.append(a)))
    get_bert_embeddings(["again"], checkpoint=minilm_checkpoint)
    get_bert_embeddings(["and again"], checkpoint=str(minilm_checkpoint) + "/")
    assert calls == []


def test_one_trace_serves_many_batch_shapes(embedder):
    """Per set of options, two heads (one for requests of one call without windows, which stitches nothing,
    and one for the rest) and one encoder graph per size class (`graphs.size_class`), whatever the batch
    shapes: a query's, where `graphs.layouts_by_size` (each graph keeps a copy of the kernels laid out for its
    class), and the batches', which also runs every request of one call over more tokens than a query's."""
    texts = [" ".join(["word"] * n) for n in (1, 5, 17, 40, 3, 90)]
    kept = graphs.layouts_by_size(embedder.encoder)
    start = embedder.traces
    embedder.embed_words(texts[:1], combine="mean", dim=33)  # a query, with options no other test uses
    before = embedder.traces
    assert before - start == 2  # its encoder call and the head, for these options
    embedder.embed_words(texts, batch_size=2, combine="mean", dim=33)
    assert embedder.traces == before + 1 + kept  # the batches' head, and encoder call where queries have their own
    embedder.embed_words(texts[5:6], combine="mean", dim=33)  # one call over more tokens than a query's
    embedder.embed_words(texts[4:5], combine="mean", dim=33)  # a query again
    embedder.embed_words(texts[::-1], batch_size=3, combine="mean", dim=33)
    assert embedder.traces == before + 1 + kept


def test_embed_returns_the_outputs_named_as_columns(embedder):
    """One entry point, outputs chosen by name; the per-text views are the same numbers as the columns."""
    texts = ["A mouse is a rodent animal.", "", "The bank of the river; the bank was muddy."]
    batch = embedder.embed(texts, ["word_vectors", "sentence_vectors", "token_states"])
    assert len(batch) == 3 and batch.word_splits.tolist() == [0, 7, 7, 18]
    assert batch.word_vectors.shape == (18, embedder.hidden_size) and batch.sentence_vectors.shape == (3, 384)
    assert batch.token_states.shape == (len(batch.piece_ids) + 6, embedder.config.num_hidden_layers + 1, 384)
    words = embedder.embed_words(texts)
    for t, expected in enumerate(words):
        view = batch.words_of(t)
        assert [(w.text, w.start, w.end, w.pieces) for w in view] == [(w.text, w.start, w.end, w.pieces)
                                                                      for w in expected]
        assert all(np.array_equal(a.vector, b.vector) for a, b in zip(view, expected))
        assert batch.text(t)["words"] == [w.text for w in expected]
        w0 = batch.word_splits[t]
        assert [texts[t][s:e].lower() for s, e in zip(batch.starts[w0:w0 + len(view)], batch.ends[w0:w0 + len(view)])] \
            == [w.text for w in expected]
    np.testing.assert_array_equal(batch.sentence_vectors, embedder.sentence_vectors(texts))
    for t, states in enumerate(embedder.token_states(texts)):
        np.testing.assert_array_equal(batch.token_states_of(t, embedder.tokenizer.cls_id, embedder.tokenizer.sep_id,
                                                            np.array(list(embedder.tokenizer.vocab))).states,
                                      states.states)
    only = embedder.embed(texts, "sentence_vectors", sentence_strategy="cls")
    assert only.word_vectors is None and only.token_states is None
    np.testing.assert_array_equal(only.sentence_vectors, embedder.sentence_vectors(texts, sentence_strategy="cls"))
    empty = embedder.embed([], "word_vectors")
    assert len(empty) == 0 and empty.word_vectors.shape == (0, 384)
    with pytest.raises(ValueError, match="output_value must be one of word_vectors, sentence_vectors, token_states"):
        embedder.embed(texts, "vectors")
    with pytest.raises(ValueError, match="needs a sentence_strategy"):
        embedder.embed(texts, "sentence_vectors", sentence_strategy=None)


def test_iter_batches_streams_chunks_in_input_order(embedder):
    texts = [f"Text number {i} is here." for i in range(7)]
    batches = list(embedder.iter_batches(iter(texts), "word_vectors", chunk_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([b.word_vectors for b in batches]),
                                  embedder.embed(texts, "word_vectors").word_vectors)
    whole = embedder.embed(texts, "word_vectors")
    joined = type(whole).concat(batches)
    assert joined.words == whole.words and joined.word_splits.tolist() == whole.word_splits.tolist()
    assert joined.piece_splits.tolist() == whole.piece_splits.tolist()
    assert [[w.pieces for w in joined.words_of(t)] for t in range(7)] == \
        [[w.pieces for w in whole.words_of(t)] for t in range(7)]
