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


@dataclasses.dataclass(frozen=True)
class DriftSet:
    """Two groups of texts ("A", "B") drawn from the sense set, in which each word's first sense has a known share.

    Attributes:
        texts, fields: the corpus, and per text `{"source": "A" | "B", "date": "2019-..." | "2021-..."}`.
        shares: `{word: (share of its first sense in A, in B)}`, as drawn (exact counts).
        change: `{word: |share in A - share in B|}`: 0 for the words whose use does not change.
        senses: `{word: (first sense, second sense)}`: the two senses each word is drawn from.
    """

    texts: tuple[str, ...]
    fields: tuple[dict, ...]
    shares: dict
    change: dict
    senses: dict


#: The changes of share drawn for the changed words (the others keep the same share in both groups).
DRIFT_CHANGES = (0.25, 0.5, 0.75, 1.0)


#: How many texts a word gets in a group: drawn from this range, for each word and group apart, so that
#: words differ in frequency (a measure that grows with count or with rarity shows it).
DRIFT_COUNTS = (8, 40)


def make_drift_set(sense_set: SenseSet, *, counts: tuple[int, int] = DRIFT_COUNTS, seed: int = 0) -> DriftSet:
    """A labelled drift set: half the words (chosen at random) change their first sense's share between
    the groups by one of `DRIFT_CHANGES`, the others keep one share (0.25, 0.5 or 0.75) in both.

    A word gets from `counts[0]` to `counts[1]` texts in each group (drawn apart), each a sentence of
    the sense set drawn with replacement from its sense's five; a word of three senses is drawn
    from its first two. Shares are exact counts, so the true change is known.
    """
    rng = np.random.default_rng(seed)
    words = list(sense_set.vocabulary)
    changed = set(rng.choice(words, len(words) // 2, replace=False).tolist())
    texts, fields, shares, change, senses = [], [], {}, {}, {}
    for word in words:
        rows = sense_set.rows_of(word)
        order = list(dict.fromkeys(sense_set.senses[i] for i in rows))[:2]
        pools = [[sense_set.sentences[i] for i in rows if sense_set.senses[i] == s] for s in order]
        if word in changed:
            d = float(rng.choice(DRIFT_CHANGES))
            low = float(rng.uniform(0, 1 - d))
            pair = (low + d, low) if rng.integers(2) else (low, low + d)
        else:
            base = float(rng.choice([0.25, 0.5, 0.75]))
            pair = (base, base)
        drawn = []
        for group, share, year in (("A", pair[0], 2019), ("B", pair[1], 2021)):
            per_group = int(rng.integers(counts[0], counts[1] + 1))
            first = int(round(share * per_group))
            for n in range(per_group):
                pool = pools[0] if n < first else pools[1]
                texts.append(pool[int(rng.integers(len(pool)))])
                fields.append({"source": group, "date": f"{year}-{int(rng.integers(1, 13)):02d}-01"})
            drawn.append(first / per_group)
        shares[word] = tuple(drawn)
        change[word] = abs(drawn[0] - drawn[1])  # as drawn: rounding to counts moves it by up to 1/16
        senses[word] = tuple(order)
    return DriftSet(tuple(texts), tuple(fields), shares, change, senses)
