"""Fixtures of the occurrence-index tests: the labelled sense set, and its occurrences' vectors from the real model.

`data/senses.tsv` was written for these tests: 28 ambiguous English words (bank, mouse,
pitch, spring, lean, ...), two senses each (three for pitch and spring), five sentences per
sense. Every sentence holds its word exactly once, as a whole word that the uncased
all-MiniLM-L6-v2 vocabulary keeps as one piece (`test_sense_set_words_are_single_pieces`
checks it), so the occurrence of a row is unambiguous.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

#: The labelled sense set (tab-separated: word, sense, sentence; a header line).
SENSE_SET = Path(__file__).parent / "data" / "senses.tsv"
SENSE_COLUMNS = ("word", "sense", "sentence")


@dataclasses.dataclass(frozen=True)
class SenseSet:
    """The labelled rows as parallel tuples: row i is `sentences[i]`, holding `words[i]` in sense `senses[i]`."""

    words: tuple[str, ...]
    senses: tuple[str, ...]
    sentences: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)

    def rows_of(self, word: str) -> np.ndarray:
        """The row indices of `word`, in file order."""
        return np.flatnonzero(np.asarray(self.words) == word)

    def labels_of(self, word: str) -> np.ndarray:
        """`word`'s senses as integers 0..n-1 (in order of first appearance), one per row of `rows_of(word)`."""
        senses = [self.senses[i] for i in self.rows_of(word)]
        order = list(dict.fromkeys(senses))
        return np.array([order.index(s) for s in senses])

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The distinct words, in file order."""
        return tuple(dict.fromkeys(self.words))


def load_sense_set(path: str | os.PathLike = SENSE_SET) -> SenseSet:
    """Reads a labelled sense set; raises `ValueError` naming the line of a malformed row."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if tuple(header or ()) != SENSE_COLUMNS:
            raise ValueError(f"{path}: the header must be {SENSE_COLUMNS}, got {header}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if len(row) != 3 or not all(row):
                raise ValueError(f"{path}:{line}: expected 3 non-empty tab-separated fields, got {row}")
            rows.append(tuple(row))
    words, senses, sentences = zip(*rows)
    return SenseSet(words, senses, sentences)


@dataclasses.dataclass(frozen=True)
class SenseVectors:
    """The real model's word vectors for the sense set (default options: sum of the last four layers).

    `vectors[i]` is the vector of row i's occurrence of its word, at `sentences[i][starts[i]:ends[i]]`;
    `background` holds every word occurrence of every sentence (the statistics of a corpus).
    """

    vectors: np.ndarray  # [rows, hidden] float32
    starts: np.ndarray
    ends: np.ndarray
    background: np.ndarray  # [all word occurrences, hidden] float32


def embed_sense_set(embedder, sense_set: SenseSet) -> SenseVectors:
    """Embeds every sentence once and picks each row's occurrence (the one word equal to the row's word)."""
    vectors, starts, ends, background = [], [], [], []
    for word, sentence, occurrences in zip(sense_set.words, sense_set.sentences,
                                           embedder.embed_words(list(sense_set.sentences))):
        hits = [w for w in occurrences if w.text == word]
        if len(hits) != 1:
            raise ValueError(f"{word!r} occurs {len(hits)} times in {sentence!r} as the model sees it; need 1")
        vectors.append(hits[0].vector)
        starts.append(hits[0].start)
        ends.append(hits[0].end)
        background.extend(w.vector for w in occurrences)
    return SenseVectors(np.stack(vectors).astype(np.float32), np.array(starts), np.array(ends),
                        np.stack(background).astype(np.float32))


@pytest.fixture(scope="session")
def sense_set() -> SenseSet:
    """The labelled sense set of `data/senses.tsv`."""
    return load_sense_set()


@pytest.fixture(scope="session")
def minilm_embedder(minilm_checkpoint):
    """A `BertEmbedder` on the real all-MiniLM-L6-v2, once per session."""
    from bert_tf.embed.embedder import BertEmbedder

    return BertEmbedder.from_checkpoint(minilm_checkpoint)


@pytest.fixture(scope="session")
def sense_vectors(minilm_embedder, minilm_checkpoint, sense_set) -> SenseVectors:
    """The sense set's occurrence vectors from the real model (default options), once per session."""
    return embed_sense_set(minilm_embedder, sense_set)
