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


#: The outputs `BertEmbedder.embed` can compute, by name.
OUTPUTS = ("word_vectors", "sentence_vectors", "token_states")


def ranges(splits: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The indices `splits[i]:splits[i + 1]` of every i in `items`, concatenated (no Python loop)."""
    items = np.asarray(items, np.int64)
    starts = splits[items]
    lengths = splits[items + 1] - starts
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)


@dataclasses.dataclass(frozen=True, repr=False)
class Embeddings:
    """What `BertEmbedder.embed` returns for a batch of texts: columns, one row per word, text or token.

    Text t owns words `word_splits[t]:word_splits[t + 1]`, pieces `piece_splits[t]:piece_splits[t + 1]`
    and token rows `token_splits[t]:token_splits[t + 1]` (`[CLS]`, its pieces, `[SEP]`). The
    outputs not asked for are None. `words_of(t)`, `token_states_of(t)` and `text(t)` are
    per-text views for code that wants objects or dicts; writers and indexes read the columns.

    Attributes:
        words: [W] str, the words as the model sees them, all texts in order.
        starts, ends: [W] int64, code-point offsets into the text (`text[start:end]` is the word).
        pieces_per_word: [W] int64.
        word_splits: [T + 1] int64.
        piece_ids: [P] int32, the word pieces of all texts ([CLS]/[SEP] not included).
        piece_splits: [T + 1] int64.
        pieces: [P] str, `piece_ids` as vocabulary entries.
        word_vectors: [W, D] float32 or None.
        sentence_vectors: [T, H] float32 or None.
        token_states: [P + 2T, num_hidden_layers + 1, H] float32 or None.
    """

    words: list[str]
    starts: np.ndarray
    ends: np.ndarray
    pieces_per_word: np.ndarray
    word_splits: np.ndarray
    piece_ids: np.ndarray
    piece_splits: np.ndarray
    pieces: np.ndarray
    word_vectors: np.ndarray | None = None
    sentence_vectors: np.ndarray | None = None
    token_states: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.word_splits) - 1

    @classmethod
    def concat(cls, batches: "list[Embeddings]") -> "Embeddings":
        """The batches as one, texts in order (the splits offset, the columns concatenated)."""
        if len(batches) == 1:
            return batches[0]

        def splits(name):
            ends = np.cumsum([getattr(b, name)[-1] for b in batches])[:-1]
            return np.concatenate([getattr(batches[0], name)] + [getattr(b, name)[1:] + e
                                                                  for b, e in zip(batches[1:], ends)])

        def joined(name):
            arrays = [getattr(b, name) for b in batches]
            return None if arrays[0] is None else np.concatenate(arrays)

        return cls(words=[w for b in batches for w in b.words], starts=joined("starts"), ends=joined("ends"),
                   pieces_per_word=joined("pieces_per_word"), word_splits=splits("word_splits"),
                   piece_ids=joined("piece_ids"), piece_splits=splits("piece_splits"), pieces=joined("pieces"),
                   word_vectors=joined("word_vectors"), sentence_vectors=joined("sentence_vectors"),
                   token_states=joined("token_states"))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={None if x is None else x.shape}" for name, x in (
            ("word_vectors", self.word_vectors), ("sentence_vectors", self.sentence_vectors),
            ("token_states", self.token_states)))
        return f"Embeddings({len(self)} texts, {len(self.words)} words, {shapes})"

    @property
    def token_splits(self) -> np.ndarray:
        """[T + 1]: text t's token rows (`token_states`) start at `piece_splits[t] + 2t`."""
        return self.piece_splits + 2 * np.arange(len(self.piece_splits), dtype=np.int64)

    def words_of(self, t: int) -> list[WordVector]:
        """Text t's words as `WordVector`s; their vectors are views of `word_vectors`."""
        w0, w1 = int(self.word_splits[t]), int(self.word_splits[t + 1])
        bounds = np.concatenate([[0], np.cumsum(self.pieces_per_word[w0:w1])]) + self.piece_splits[t]
        vectors = self.word_vectors
        return [WordVector(self.words[w], int(self.starts[w]), int(self.ends[w]),
                           tuple(self.pieces[bounds[k]:bounds[k + 1]]), None if vectors is None else vectors[w])
                for k, w in enumerate(range(w0, w1))]

    def token_states_of(self, t: int, cls_id: int, sep_id: int, vocab: np.ndarray) -> TokenStates:
        """Text t's `TokenStates` (its own copy, `[layers, tokens, hidden]`)."""
        p0, p1 = int(self.piece_splits[t]), int(self.piece_splits[t + 1])
        ids = np.concatenate([[cls_id], self.piece_ids[p0:p1], [sep_id]]).astype(np.int32)
        w0, w1 = int(self.word_splits[t]), int(self.word_splits[t + 1])
        word_index = np.concatenate([[-1], np.repeat(np.arange(w1 - w0), self.pieces_per_word[w0:w1]),
                                     [-1]]).astype(np.int32)
        r0 = p0 + 2 * t
        states = self.token_states[r0:r0 + (p1 - p0) + 2]
        return TokenStates(tuple(vocab[ids]), ids, word_index, np.ascontiguousarray(states.transpose(1, 0, 2)))

    def text(self, t: int) -> dict:
        """Text t as a dict: `words`, `starts`, `ends`, and each output computed (`word_vectors` [w, D],
        `sentence_vector` [H])."""
        w0, w1 = int(self.word_splits[t]), int(self.word_splits[t + 1])
        out = {"words": self.words[w0:w1], "starts": self.starts[w0:w1], "ends": self.ends[w0:w1]}
        if self.word_vectors is not None:
            out["word_vectors"] = self.word_vectors[w0:w1]
        if self.sentence_vectors is not None:
            out["sentence_vector"] = self.sentence_vectors[t]
        return out
