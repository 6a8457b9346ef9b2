"""The benchmark's workload: seeded English-like sentences with a realistic length mix.

Lengths are drawn from a lognormal in word pieces, counting [CLS] and [SEP],
clipped to 5..128: median 24, 90th percentile 61 (so sigma = ln(61/24) / z(0.9)).
The default seed (75) is the one whose 512-sentence draw matches the mix the
project's earlier performance measurements used (median 24, p90 61, about 15,760 tokens).

Each sentence is real text built from vocabulary words so that WordPiece
produces exactly the drawn number of pieces: common words are whole vocabulary
entries (one piece each), about one word in eight is a rarer compound that
splits into several pieces, with commas now and then and a full stop at the
end. Piece counts come from a plain-Python greedy longest-match WordPiece (the
reference algorithm); the benchmark then checks them with every engine's own
tokenizer.

This module needs only numpy, so the driver can build the workload without
importing TensorFlow or PyTorch.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

DEFAULT_SEED = 75
MEDIAN_PIECES = 24
P90_PIECES = 61
MIN_PIECES, MAX_PIECES = 5, 128
_Z90 = 1.2815515655446004  # standard normal 90th percentile
SIGMA = math.log(P90_PIECES / MEDIAN_PIECES) / _Z90

#: Length buckets for the report, in pieces including [CLS]/[SEP].
BUCKETS = ((5, 8), (9, 16), (17, 32), (33, 64), (65, 127), (128, 128))

_WORD = re.compile(r"^[a-z]+$")
_SUFFIX = re.compile(r"^##[a-z]+$")


def draw_lengths(n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """`n` sequence lengths in word pieces, [CLS] and [SEP] included, clipped to 5..128."""
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(mean=math.log(MEDIAN_PIECES), sigma=SIGMA, size=n)
    return np.clip(np.rint(raw), MIN_PIECES, MAX_PIECES).astype(np.int64)


def wordpiece_count(word: str, vocab: set[str], max_chars: int = 100) -> int | None:
    """Pieces of one (already lower-cased) word by greedy longest match; None if it would be [UNK]."""
    if len(word) > max_chars:
        return None
    start, count = 0, 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return None
        count += 1
        start = end
    return count


class SentenceMaker:
    """Builds sentences of an exact WordPiece length from an uncased BERT vocabulary."""

    def __init__(self, vocab: Sequence[str], rng: np.random.Generator):
        self.vocab = set(vocab)
        self.rng = rng
        # In BERT's uncased vocabulary whole words follow the single characters
        # roughly by frequency ("the" is 1996), so the vocabulary order is a usable rank.
        words = [t for t in vocab if _WORD.match(t) and (len(t) > 1 or t in ("a", "i"))]
        self.words = words
        rank = np.arange(len(words), dtype=np.float64)
        weights = 1.0 / (rank + 30.0)  # Zipf-like: common words dominate, the tail still appears
        self.word_p = weights / weights.sum()
        self.suffixes = [t[2:] for t in vocab if _SUFFIX.match(t)]
        self._compound_cache: dict[int, list[str]] = {}

    def _common_word(self) -> str:
        return self.words[self.rng.choice(len(self.words), p=self.word_p)]

    def _compound(self, max_pieces: int) -> tuple[str, int] | None:
        """A rarer word: a vocabulary word plus one or two suffix fragments, 2..max_pieces pieces."""
        for _ in range(20):
            stem = self.words[self.rng.integers(len(self.words) // 4, len(self.words))]
            tail = "".join(self.suffixes[self.rng.integers(len(self.suffixes))]
                           for _ in range(self.rng.integers(1, 3)))
            word = stem + tail
            n = wordpiece_count(word, self.vocab)
            if n is not None and 2 <= n <= max_pieces:
                return word, n
        return None

    def sentence(self, pieces: int) -> str:
        """One sentence that tokenizes to exactly `pieces` word pieces (without [CLS]/[SEP])."""
        if pieces < 2:
            raise ValueError("a sentence needs at least 2 pieces: a word and the full stop")
        budget = pieces - 1  # the final "."
        out: list[str] = []
        while budget > 0:
            if out and budget >= 2 and not out[-1].endswith(",") and self.rng.random() < 0.07:
                out[-1] += ","
                budget -= 1
                continue
            if budget >= 2 and self.rng.random() < 0.12:
                made = self._compound(min(budget, 4))
                if made is not None:
                    out.append(made[0])
                    budget -= made[1]
                    continue
            out.append(self._common_word())  # a whole vocabulary entry: exactly one piece
            budget -= 1
        if out[-1].endswith(","):  # "word,." reads badly; the comma's piece moves to the stop
            out[-1] = out[-1][:-1] + ";"
        text = " ".join(out) + "."
        return text[0].upper() + text[1:]


def make_workload(vocab: Sequence[str], n: int = 512, seed: int = DEFAULT_SEED) -> tuple[list[str], np.ndarray]:
    """`n` sentences and their intended lengths in pieces ([CLS] and [SEP] included)."""
    lengths = draw_lengths(n, seed)
    maker = SentenceMaker(vocab, np.random.default_rng([seed, 1]))
    texts = [maker.sentence(int(length) - 2) for length in lengths]
    return texts, lengths


def length_mix(lengths: Sequence[int]) -> dict:
    """Summary of a length mix for the report: quantiles, totals and a bucketed histogram."""
    a = np.asarray(lengths)
    q = {f"p{p}": float(np.percentile(a, p)) for p in (10, 25, 50, 75, 90, 99)}
    buckets = {f"{lo}-{hi}" if lo != hi else f"{lo}": int(((a >= lo) & (a <= hi)).sum()) for lo, hi in BUCKETS}
    return {"sentences": int(a.size), "real_tokens": int(a.sum()), "min": int(a.min()), "max": int(a.max()),
            "mean": float(a.mean()), **q, "buckets": buckets}
