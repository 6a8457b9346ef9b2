"""What the embedder returns: `WordVector` (one word occurrence) and `TokenStates` (every hidden state of a text)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class WordVector:
    """One word occurrence: its text as the model sees it, where it is, its pieces and its vector.

    `start`/`end` are character (code point) offsets into the original string:
    `sentence[start:end]` is the word as written.
    """

    text: str
    start: int
    end: int
    pieces: tuple[str, ...]
    vector: np.ndarray


@dataclasses.dataclass(frozen=True)
class TokenStates:
    """Every hidden state of every token of one text.

    `states` is `[num_hidden_layers + 1, n_tokens, hidden]`: index 0 is the
    embedding output, index -1 the last layer; tokens are `[CLS]`, the word
    pieces, `[SEP]`. `word_index[t]` is the word a token belongs to (-1 for
    `[CLS]`/`[SEP]`).
    """

    pieces: tuple[str, ...]
    ids: np.ndarray
    word_index: np.ndarray
    states: np.ndarray
