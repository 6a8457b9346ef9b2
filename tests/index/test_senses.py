"""Sense clustering (`bert_tf.index.senses`) and the labelled sense set it is measured on."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from tests.index.conftest import SENSE_SET, load_sense_set


# ---------------------------------------------------------------------- the labelled set


def test_sense_set_is_well_formed(sense_set):
    assert len(sense_set.vocabulary) >= 24
    per_word = collections.defaultdict(collections.Counter)
    for word, sense in zip(sense_set.words, sense_set.senses):
        per_word[word][sense] += 1
    for word, senses in per_word.items():
        assert len(senses) >= 2, word
        assert min(senses.values()) >= 5, (word, senses)
    assert len(set(sense_set.sentences)) == len(sense_set), "a sentence is listed twice"
    for word, sentence in zip(sense_set.words, sense_set.sentences):
        assert len(re.findall(rf"\b{re.escape(word)}\b", sentence, flags=re.IGNORECASE)) == 1, (word, sentence)


def test_load_sense_set_names_a_bad_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("word\tsense\tsentence\nbank\triver\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        load_sense_set(bad)
    assert len(load_sense_set(SENSE_SET)) > 0


def test_sense_set_words_are_single_pieces(sense_vectors, sense_set):
    # embed_sense_set refuses a row whose word is not exactly one whole-word occurrence
    assert sense_vectors.vectors.shape == (len(sense_set), 384)
    for word, sentence, start, end in zip(sense_set.words, sense_set.sentences, sense_vectors.starts,
                                          sense_vectors.ends):
        assert sentence[start:end].lower() == word
