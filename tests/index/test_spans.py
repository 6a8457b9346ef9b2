"""Multi-word spans: span vectors against the pooled pieces computed by hand; a multi-word `search --word`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tf.cli.main import main
from bert_tf.index import build_index
from tests.index.test_index_store import corpus, module_dir, tiny  # noqa: F401  (the module's tiny model)


@pytest.fixture(scope="module")
def small(tiny, module_dir):  # noqa: F811
    # the expression inserted, and its words apart and reversed
    texts = corpus(80, seed=21) + ["stone river bank road", "river bank", "old house river bank",
                                   "bank river water", "river old bank"]
    return build_index(texts, module_dir / "spans", embedder=tiny), texts


def by_hand(embedder, options, sentence, start, end):
    """Mean over the span's pieces of the combined hidden states, from `token_states` (no library pooling)."""
    (states,) = embedder.token_states([sentence])
    resolved = embedder.resolve(options)
    combined = states.states[list(resolved.hidden_states)]  # [layers, tokens, hidden]
    combined = {"sum": combined.sum(0), "mean": combined.mean(0),
                "concat": np.concatenate(list(combined), axis=-1)}[options.combine]
    words = embedder.tokenizer.tokenize_words([sentence])[0]
    covered = [i for i, w in enumerate(words) if start <= w.start and w.end <= end]
    pieces = np.flatnonzero(np.isin(states.word_index, covered))
    return combined[pieces].mean(axis=0)[:resolved.vector_size]


def test_a_span_vector_is_the_mean_of_its_pieces_computed_by_hand(small):
    index, texts = small
    sentence = texts[3]
    words = index.embedder.tokenizer.tokenize_words([sentence])[0]
    assert index.options.subword_pooling == "mean"
    for first, last in ((0, 1), (1, 3), (0, len(words) - 1)):
        start, end = words[first].start, words[last].end
        expected = by_hand(index.embedder, index.options, sentence, start, end)
        np.testing.assert_allclose(index.span_vector(sentence, start, end), expected, rtol=1e-4, atol=1e-4)
    one = index.span_vector(sentence, words[2].start, words[2].end)
    np.testing.assert_allclose(one, index.embed(sentence)[0][2].vector, atol=1e-6)  # one word: its own vector
    with pytest.raises(ValueError, match="cuts through a word"):
        index.span_vector(sentence, words[0].start + 1, words[1].end)
    with pytest.raises(ValueError, match="covers no word"):
        index.span_vector(sentence, len(sentence), len(sentence))


def test_a_multi_word_search_finds_every_run_of_the_words_and_only_those(small, capsys):
    index, texts = small
    expected = set()
    for t, text in enumerate(texts):
        words = text.split()
        starts = np.cumsum([0] + [len(w) + 1 for w in words])
        expected |= {(t, int(starts[i])) for i in range(len(words) - 1) if words[i:i + 2] == ["river", "bank"]}
    assert len(expected) >= 4  # the inserted three and the corpus's own
    query = "An old River Bank road."  # the expression as typed, in any case
    hits = index.search_word("river bank", query, k=100)
    assert {(h.text_id, h.start) for h in hits} == expected
    for h in hits:
        assert h.text[h.start:h.end] == "river bank" and h.word == "river bank"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    with pytest.raises(ValueError, match="'bank river' is not in the query sentence"):
        index.search_word("bank river", query)
    assert main(["search", str(index.directory), "--word", "river bank", query, "--json", "-k", "1"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["text"][row["start"]:row["end"]] == "river bank"


@pytest.mark.slow
def test_a_multi_word_search_puts_the_inserted_occurrences_of_the_expression_first(minilm_embedder, sense_set,
                                                                                 tmp_path):
    city = ["After college she moved to the Big Apple to work on Broadway.",
            "Every tourist in the Big Apple wants to see Times Square.",
            "The subway is the fastest way around the Big Apple at rush hour."]
    fruit = ["He picked a big apple from the tree in the orchard.",
             "She packed a big apple and a sandwich for lunch.",
             "The horse happily crunched a big apple from the farmer."]
    texts = list(sense_set.sentences[:120]) + fruit + city
    index = build_index(texts, tmp_path / "ix", embedder=minilm_embedder)
    hits = index.search_word("big apple", "She moved to the Big Apple last year.", k=6)
    assert len(hits) == 6
    assert {h.text for h in hits[:3]} == set(city)
    hits = index.search_word("big apple", "For dessert I ate a big apple with cheese.", k=6)
    assert {h.text for h in hits[:3]} == set(fruit)
