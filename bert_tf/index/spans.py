"""Multi-word spans: a vector for any run of whole words, pooled from its pieces as a word's vector is.

A word's vector pools its word pieces (`subword_pooling`: the mean, the first or the
last piece of the combined layers). A span of several words pools the pieces of all of
them the same way, and that needs only the words' own vectors and their piece counts:
the mean over the span's pieces is the piece-count-weighted mean of its words' vectors,
its first piece is the first word's, its last the last word's. `dim` keeps the first
components, which commutes with all three.

In the index, the occurrences of a text are stored in order, so a multi-word expression
is found as occurrences of its words with consecutive rows in one text; its vector there
is the same pooling over the stored (normalised) word vectors, compared with the query
span pooled the same way from the query's normalised word vectors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidValue


def words_in_span(words: Sequence, start: int, end: int) -> tuple[int, int]:
    """`(first, stop)`: the words `words[first:stop]` that the character span `[start, end)` covers.

    Raises:
        ValueError: the span covers no word, or cuts through one (it must start and end at word edges).
    """
    inside = [i for i, w in enumerate(words) if w.start < end and start < w.end]
    if not inside:
        raise InvalidValue(f"the span {start}:{end} covers no word")
    first, last = words[inside[0]], words[inside[-1]]
    if start > first.start or end < last.end:
        raise InvalidValue(f"the span {start}:{end} cuts through a word (words run {first.start}:{first.end} to "
                         f"{last.start}:{last.end}): give a span of whole words")
    return inside[0], inside[-1] + 1


def pool_span(vectors, piece_counts: Sequence[int], pooling: str) -> np.ndarray:
    """The span's vector from its words' vectors (`[..., n_words, d]`) as `pooling` pools a word's pieces."""
    vectors = np.asarray(vectors, np.float32)
    if pooling == "first":
        return vectors[..., 0, :]
    if pooling == "last":
        return vectors[..., -1, :]
    weights = np.asarray(piece_counts, np.float32)
    return np.einsum("...nd,n->...d", vectors, weights / weights.sum())


def find_phrase(words: Sequence, targets: Sequence[str]) -> list[int]:
    """The indices where the words `targets` (as the model sees them) start, consecutive, in `words`."""
    n = len(targets)
    return [i for i in range(len(words) - n + 1) if all(words[i + j].text == targets[j] for j in range(n))]


def unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
