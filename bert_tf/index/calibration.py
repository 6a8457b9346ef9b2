"""Per-word calibrated scores: a cosine placed among the cosines of the word's own occurrence pairs.

A cosine of 0.6 between two occurrences of "bank" means something else than 0.6
between two of "the": words differ in how alike their occurrences are anyway. The
percentile of a pair's cosine among the pairs of the word's own occurrences in the
corpus ("more alike than 93% of pairs of *bank* here") puts every word on one scale, so
one threshold can tell same-sense from other-sense pairs across words (measured on
the labelled sense set: docs/index.md, tests/index/test_calibration_real.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Occurrences of a word whose pairs make its baseline, at most (a random sample of a more frequent word):
#: 600 give 179,700 pairs, a percentile to better than 0.5%.
BASELINE_OCCURRENCES = 600
#: The fewest occurrences a word needs for a baseline (one pair says nothing of a distribution).
MIN_BASELINE_OCCURRENCES = 3
SCORES = ("cosine", "percentile")


@dataclasses.dataclass(frozen=True)
class WordBaseline:
    """The sorted cosines of the pairs of (a sample of) one word's occurrences."""

    word: str
    occurrences: int  # those the pairs were made from
    pair_cosines: np.ndarray  # sorted ascending

    @classmethod
    def from_vectors(cls, word: str, vectors: np.ndarray) -> "WordBaseline":
        """The baseline of `[n, d]` unit occurrence vectors (every pair i < j)."""
        x = np.asarray(vectors, np.float32)
        upper = np.triu_indices(len(x), 1)
        return cls(word, len(x), np.sort((x @ x.T)[upper]))

    @classmethod
    def sampled(cls, word: str, rows: np.ndarray, store, *, seed: int = 0) -> "WordBaseline | None":
        """The baseline of `word` from its occurrence `rows` of `store` (a `VectorStore` of unit vectors),
        a random sample of `BASELINE_OCCURRENCES` of a more frequent word; None below `MIN_BASELINE_OCCURRENCES`."""
        if len(rows) > BASELINE_OCCURRENCES:
            rows = np.sort(np.random.default_rng(seed).choice(rows, BASELINE_OCCURRENCES, replace=False))
        return cls.from_vectors(word, store.rows(rows)) if len(rows) >= MIN_BASELINE_OCCURRENCES else None

    def percentile(self, cosines) -> np.ndarray:
        """The share (0..1) of the word's own pairs less alike than each of `cosines`."""
        cosines = np.asarray(cosines, np.float32)
        return np.searchsorted(self.pair_cosines, cosines, side="left") / max(len(self.pair_cosines), 1)
