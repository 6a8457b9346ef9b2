"""Comparing word vectors across sentences: the research notebook's experiment as library code."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidValue


@dataclasses.dataclass(frozen=True)
class WordInContext:
    """A word picked from one sentence: `label` names it in tables (e.g. "mouse@1")."""

    label: str
    word: str
    sentence_index: int
    vector: np.ndarray


def pick_words(embeddings: Sequence[dict[str, np.ndarray]], targets: Sequence[str]) -> list[WordInContext]:
    """Every (sentence, target word) pair present in `embeddings`, labelled `word@sentence` (1-based).

    Args:
        embeddings: the output of `get_bert_embeddings`.
        targets: words to look for, as the model sees them (lower-case for uncased models).

    Raises:
        ValueError: when a target occurs in no sentence (names it and the words available).
    """
    picked = []
    for target in targets:
        found = [i for i, sentence in enumerate(embeddings) if target in sentence]
        if not found:
            available = sorted({w for sentence in embeddings for w in sentence})
            raise InvalidValue(f"the word {target!r} is in none of the sentences; words available: "
                               f"{', '.join(available)}")
        for i in found:
            picked.append(WordInContext(f"{target}@{i + 1}", target, i, embeddings[i][target]))
    picked.sort(key=lambda w: (w.sentence_index, targets.index(w.word)))
    return picked


def cosine_matrix(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise cosine similarities (scikit-learn), `[n, n]`."""
    from sklearn.metrics.pairwise import cosine_similarity

    if len(vectors) == 0:
        return np.zeros((0, 0), np.float32)
    return cosine_similarity(np.stack(vectors))


def format_table(labels: Sequence[str], matrix: np.ndarray, *, digits: int = 4) -> str:
    """An aligned text table of `matrix` with `labels` on both axes."""
    cells = [[f"{v:.{digits}f}" for v in row] for row in matrix]
    width = max([len(label) for label in labels] + [digits + 3])
    head = " " * width + "  " + "  ".join(label.rjust(width) for label in labels)
    rows = [label.ljust(width) + "  " + "  ".join(c.rjust(width) for c in row)
            for label, row in zip(labels, cells)]
    return "\n".join([head, *rows])
