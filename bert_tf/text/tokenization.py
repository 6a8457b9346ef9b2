"""In-graph BERT WordPiece tokenization, with each word's offsets into the original text.

`BertTokenizer` reproduces Google's reference tokenizer (`BasicTokenizer` then
`WordpieceTokenizer` in google-research/bert `tokenization.py`) with TensorFlow
and tensorflow-text ops only, so it runs inside `tf.function`, is vectorised
over the batch and can be saved in a SavedModel. Unlike `tf_text.BertTokenizer`
it reports, for every word, where the word lies in the ORIGINAL string, in code
points (Python `str` indices), and unlike `tf_text.FastBertTokenizer` it cleans
and case-folds exactly as the reference does (NUL and U+FFFD are removed rather
than split on or kept; `str.lower()`, not NFKC case folding).

What happens to each character (dropped, whitespace, a word of its own, part of
a word; its normalised text) is `bert_tf.text.char_tables`, which states the
reference's rules and the one known difference. This module groups characters
into words and words into pieces:

Uncased vocabularies normalise each word by `str.lower()`, NFD, and removal of
category Mn (accents). A word whose normalised text is empty (a lone combining
accent) disappears. Cased vocabularies get no normalisation at all: Google's
reference does none (Hugging Face's `BasicTokenizer` applies NFC to the whole
text first; we follow Google). A normalised word of more than 100 code points
becomes `[UNK]`, otherwise it is split greedily, longest match first, into
word pieces, and a word with any piece missing from the vocabulary becomes a
single `[UNK]`. A literal "[CLS]" in the text is ordinary text ("[", "cls",
"]"), as in Google's reference.

The vocabulary file and the casing are `bert_tf.text.vocab`.
"""

from __future__ import annotations

import os
from typing import Iterable, NamedTuple, Sequence

from bert_tf.errors import InvalidValue
from bert_tf.runtime import tf
from bert_tf.text.char_tables import CJK, DROP, OTHER, PUNCT, SPACE, CharLookup, normalize_uncased
from bert_tf.text.inputs import checked_texts
from bert_tf.text.ops import wordpiece_ids, wordpiece_model
from bert_tf.text.vocab import check_lower_case, infer_lower_case, load_vocab, resolve_lower_case

#: Google's `max_input_chars_per_word`: longer normalised words become [UNK].
MAX_CHARS_PER_WORD = 100

#: What every vocabulary must hold; their ids are the tokenizer's `pad_id`, `unk_id`, `cls_id`, `sep_id`.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


class Word(NamedTuple):
    """One word of a sentence: normalised text, code-point span and word pieces.

    `sentence[start:end]` is the word as typed; `text` is what the model sees.
    """

    text: str
    start: int
    end: int
    pieces: tuple[str, ...]
    ids: tuple[int, ...]


def _masked(mask, *tensors):
    """`tf.boolean_mask(t, mask)` of each of `tensors` (1-D, as long as `mask`): one `Where`, a gather each."""
    kept = tf.where(mask)[:, 0]
    return [tf.gather(t, kept) for t in tensors]


class BertTokenizer(tf.Module):
    """Google's BERT tokenizer as TensorFlow ops, with word offsets.

    Example:
        >>> tok = BertTokenizer.from_vocab_file("uncased_L-12_H-768_A-12/vocab.txt")  # doctest: +SKIP
        >>> [(w.text, w.start, w.end, w.pieces) for w in tok.tokenize_words(["Héllo, wörld"])[0]]  # doctest: +SKIP
        [('hello', 0, 5, ('hello',)), (',', 5, 6, (',',)), ('world', 7, 12, ('world',))]
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lower_case: bool,
        max_chars_per_word: int = MAX_CHARS_PER_WORD,
    ):
        """Builds the tokenizer for `vocab`.

        Args:
            vocab: Tokens, id = position. Must hold [PAD], [UNK], [CLS], [SEP].
            lower_case: Lower-case and strip accents (uncased checkpoints).
                Use `resolve_lower_case` when unsure.
            max_chars_per_word: Normalised words longer than this, in code
                points, become [UNK].

        Raises:
            ValueError: a special token is missing or `max_chars_per_word < 1`.
            TypeError: `lower_case` is not a bool.
        """
        lower_case = check_lower_case(lower_case, allow_none=False)
        super().__init__(name="bert_tokenizer")
        vocab = [str(token) for token in vocab]
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise InvalidValue(f"vocabulary lacks special tokens: {', '.join(missing)}")
        if int(max_chars_per_word) < 1:
            raise InvalidValue(f"max_chars_per_word must be >= 1; got {max_chars_per_word}")
        self._vocab = tuple(vocab)
        self._lower_case = lower_case
        self._max_chars = int(max_chars_per_word)
        # A token listed twice means its last id, as in Google's dict-based
        # load_vocab; the earlier copies become entries no word can match
        # (words never hold spaces), since FastWordpieceTokenizer wants unique tokens.
        index = {token: i for i, token in enumerate(vocab)}
        wordpiece_vocab = [t if index[t] == i else f" duplicate {i}" for i, t in enumerate(vocab)]
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (index[t] for t in SPECIAL_TOKENS)
        self.vocab_size = len(vocab)

        self._chars = CharLookup(lower_case=self._lower_case)
        # A normalised word has at most max_chars code points of at most 4
        # bytes; longer ones never reach WordPiece (see _word_pieces).
        self._wordpiece_model = wordpiece_model(
            wordpiece_vocab, suffix_indicator="##", max_bytes_per_word=4 * self._max_chars, unknown_token="[UNK]")

    @classmethod
    def from_vocab_file(
        cls,
        path: str | os.PathLike,
        *,
        lower_case: bool | None = None,
        name: str | None = None,
    ) -> "BertTokenizer":
        """Loads `path` and infers the casing unless `lower_case` is given.

        Args:
            path: The checkpoint's vocab.txt.
            lower_case: Overrides the inferred casing (with a warning when it
                contradicts the checkpoint).
            name: Checkpoint name, e.g. "uncased_L-12_H-768_A-12". Defaults to
                the vocabulary's directory name, which is the checkpoint's name
                in Google's archives.
        """
        vocab = load_vocab(path)
        if name is None:
            name = os.path.basename(os.path.dirname(os.path.abspath(os.fspath(path))))
        return cls(vocab, lower_case=resolve_lower_case(vocab, name, lower_case))

    @property
    def vocab(self) -> tuple[str, ...]:
        return self._vocab

    @property
    def lower_case(self) -> bool:
        return self._lower_case

    @property
    def max_chars_per_word(self) -> int:
        return self._max_chars

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize(self, sentences):
        """Splits UTF-8 sentences into words and word pieces.

        Args:
            sentences: [batch] tf.string, UTF-8. Invalid bytes decode to U+FFFD
                and are dropped; offsets count the decoded code points.

        Returns:
            A dict of RaggedTensors:
            "pieces": int32 [batch, (words), (pieces)], word-piece ids, no [CLS]/[SEP];
            "words": string [batch, (words)], each word normalised as the model sees it;
            "starts", "ends": int64 [batch, (words)], code-point offsets of each
            word in the original sentence (end exclusive).
        """
        out = self._columns(sentences)

        def per_sentence(values):
            return tf.RaggedTensor.from_row_splits(values, out["word_splits"], validate=False)

        pieces = tf.RaggedTensor.from_row_splits(out["piece_ids"], out["piece_splits"], validate=False)
        return {"pieces": per_sentence(pieces), "words": per_sentence(out["words"]),
                "starts": per_sentence(out["starts"]), "ends": per_sentence(out["ends"])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize_columns(self, sentences):
        """`tokenize` as flat tensors, what the embedder reads (a ragged output costs a short text's call
        about 0.7 ms more in Python, `bench/README.md`): "piece_ids" int32 [pieces], "pieces_per_word" int64
        [words], "word_splits" int64 [batch + 1] (each sentence's first word), "words" string [words],
        "starts" and "ends" int64 [words]."""
        out = self._columns(sentences)
        piece_splits = out.pop("piece_splits")
        out["pieces_per_word"] = piece_splits[1:] - piece_splits[:-1]
        return out

    def _columns(self, sentences):
        """`tokenize`'s ops, its outputs as flat tensors: "piece_ids" [pieces] and "piece_splits" [words + 1]
        (each word's first piece), "words", "starts", "ends" [words], "word_splits" [batch + 1]. A mask of
        several tensors is one `Where` and a gather each (`_masked`): a query's tokenizer runs few ops."""
        chars = tf.strings.unicode_decode(sentences, "UTF-8", errors="replace")
        cps = chars.flat_values  # [chars] int32, all sentences end to end
        rows = chars.value_rowids()  # [chars] sentence of each char
        positions = tf.range(tf.size(cps, out_type=tf.int64)) - tf.gather(chars.row_splits, rows)
        classes, sigma = self._chars.classify(cps)
        texts = self._chars.texts(cps, rows, sigma)

        # Dropped chars vanish before anything else, so they never split a word.
        classes, rows, positions, texts = _masked(tf.not_equal(classes, DROP), classes, rows, positions, texts)

        # A word starts at every CJK or punctuation char, and at an ordinary
        # char not preceded (in the same sentence) by an ordinary char.
        other = tf.equal(classes, OTHER)
        same_row = tf.concat([[False], tf.equal(rows[1:], rows[:-1])], axis=0)
        after_other = tf.concat([[False], other[:-1]], axis=0) & same_row
        starts_word = tf.equal(classes, CJK) | tf.equal(classes, PUNCT) | (other & ~after_other)
        word_ids = tf.cumsum(tf.cast(starts_word, tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(starts_word, tf.int64))
        word_ids, positions, texts, rows = _masked(tf.not_equal(classes, SPACE), word_ids, positions, texts, rows)
        words = tf.strings.unsorted_segment_join(texts, word_ids, num_words)
        starts = tf.math.unsorted_segment_min(positions, word_ids, num_words)
        ends = tf.math.unsorted_segment_max(positions, word_ids, num_words) + 1
        word_rows = tf.math.unsorted_segment_min(rows, word_ids, num_words)

        # Words made only of stripped accents disappear, as in the reference.
        words, starts, ends, word_rows = _masked(tf.strings.length(words) > 0, words, starts, ends, word_rows)
        nrows = tf.shape(sentences, out_type=tf.int64)[0]
        pieces = self._word_pieces(words)
        word_splits = tf.RaggedTensor.from_value_rowids(words, word_rows, nrows=nrows, validate=False).row_splits
        return {"piece_ids": pieces.flat_values, "piece_splits": pieces.row_splits, "word_splits": word_splits,
                "words": words, "starts": starts, "ends": ends}

    def _word_pieces(self, words):
        """WordPiece ids of each word; over-long words are one [UNK]. [words] -> [words, (pieces)]."""
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self._max_chars
        pieces = wordpiece_ids(tf.where(too_long, "", words), self._wordpiece_model)  # too long: no pieces
        lengths = tf.where(too_long, tf.ones_like(pieces.row_lengths()), pieces.row_lengths())
        splits = tf.concat([[0], tf.cumsum(lengths)], axis=0)
        # Move each piece to its row's new start; the one slot of a too-long
        # word keeps the [UNK] it was filled with.
        piece_rows = pieces.value_rowids()
        new_positions = (
            tf.gather(splits, piece_rows)
            + tf.range(tf.size(pieces.values, out_type=tf.int64))
            - tf.gather(pieces.row_splits, piece_rows)
        )
        values = tf.tensor_scatter_nd_update(
            tf.fill([splits[-1]], tf.constant(self.unk_id, tf.int32)),
            tf.expand_dims(new_positions, -1),
            pieces.values,
        )
        return tf.RaggedTensor.from_row_splits(values, splits, validate=False)

    def tokenize_words(self, sentences: Iterable[str]) -> list[list[Word]]:
        """Python convenience: `tokenize` as lists of `Word`.

        Example:
            >>> [(w.text, w.start, w.end, w.pieces) for w in tok.tokenize_words(["x\\x00y [CLS]"])[0]]  # doctest: +SKIP
            [('xy', 0, 3, ('x', '##y')), ('[', 4, 5, ('[',)), ('cls', 5, 8, ('cl', '##s')), (']', 8, 9, (']',))]
        """
        prepared = checked_texts(sentences)
        out = self.tokenize(tf.constant(prepared, dtype=tf.string, shape=[len(prepared)]))
        # RaggedTensor.to_list() is quadratic in practice; walk the flat arrays.
        sentence_splits = out["words"].row_splits.numpy().tolist()
        texts = [w.decode("utf-8") for w in out["words"].flat_values.numpy().tolist()]
        starts = out["starts"].flat_values.numpy().tolist()
        ends = out["ends"].flat_values.numpy().tolist()
        piece_splits = out["pieces"].values.row_splits.numpy().tolist()
        ids = out["pieces"].flat_values.numpy().tolist()
        words = []
        for w, text in enumerate(texts):
            word_ids = tuple(ids[piece_splits[w] : piece_splits[w + 1]])
            pieces = tuple(self._vocab[i] for i in word_ids)
            words.append(Word(text=text, start=starts[w], end=ends[w], pieces=pieces, ids=word_ids))
        return [words[a:b] for a, b in zip(sentence_splits[:-1], sentence_splits[1:])]


__all__ = [
    "BertTokenizer",
    "MAX_CHARS_PER_WORD",
    "SPECIAL_TOKENS",
    "Word",
    # Re-exported from bert_tf.text.vocab and .char_tables, where they live, for existing imports.
    "check_lower_case",
    "infer_lower_case",
    "load_vocab",
    "normalize_uncased",
    "resolve_lower_case",
]
