"""In-graph BERT WordPiece tokenization, with each word's offsets into the original text.

`BertTokenizer` reproduces Google's reference tokenizer (`BasicTokenizer` then
`WordpieceTokenizer` in google-research/bert `tokenization.py`) with TensorFlow
and tensorflow-text ops only, so it runs inside `tf.function`, is vectorised
over the batch and can be saved in a SavedModel. Unlike `tf_text.BertTokenizer`
it reports, for every word, where the word lies in the ORIGINAL string, in code
points (Python `str` indices), and unlike `tf_text.FastBertTokenizer` it cleans
and case-folds exactly as the reference does (NUL and U+FFFD are removed rather
than split on or kept; `str.lower()`, not NFKC case folding).

The reference, restated per character of the original string:

1. Dropped: NUL, U+FFFD and every category C* character except tab, newline
   and carriage return. Removed before splitting, so "x\\x00y" is one word.
2. Whitespace: space, tab, newline, carriage return, category Zs, and also
   U+2028/U+2029, which survive cleaning and then split in `str.split()`.
   Whitespace separates words.
3. CJK ideographs (the eight ranges of `_is_chinese_char`): a word each.
4. Punctuation (ASCII 33-47, 58-64, 91-96, 123-126 or category P*): a word
   each. For lower-case vocabularies the reference tests punctuation AFTER
   lower-casing and accent stripping, so four symbols count as punctuation
   only there: U+1FEF GREEK VARIA (-> "`"), U+2260, U+226E and U+226F
   (-> "=", "<", ">" once the combining slash is stripped).
5. Every other character joins its neighbours into a word.

Uncased vocabularies normalise each word by `str.lower()`, NFD, and removal of
category Mn (accents). A word whose normalised text is empty (a lone combining
accent) disappears. Cased vocabularies get no normalisation at all: Google's
reference does none (Hugging Face's `BasicTokenizer` applies NFC to the whole
text first; we follow Google). A normalised word of more than 100 code points
becomes `[UNK]`, otherwise it is split greedily, longest match first, into
word pieces, and a word with any piece missing from the vocabulary becomes a
single `[UNK]`. A literal "[CLS]" in the text is ordinary text ("[", "cls",
"]"), as in Google's reference.

How the character rules are computed: every per-character fact (class, the
normalised text, and the two properties `str.lower()` uses for the Greek final
sigma) is tabulated once from Python's own `unicodedata` and `str.lower()`,
compressed into sorted code-point ranges, and looked up in the graph with
`tf.searchsorted`. RE2's `\\p{..}` classes and ICU's case mapping follow other
Unicode versions and other case rules (`str.lower()` maps U+0130 to "i" plus a
combining dot and applies the final-sigma rule), so tabulating Python's own
answers is what makes every code point agree with the reference, with no
allowlist. The tables follow the `unicodedata` of the Python that builds the
tokenizer (Unicode 14.0 on 3.11) and are frozen into a saved model.

One known difference remains, for uncased vocabularies only: NFD of a whole
word also sorts runs of combining marks by combining class, and we decompose
character by character. After accent stripping, the order can differ only when
a word holds two of the 38 non-Mn characters of non-zero combining class
(`_REORDERABLE_AFTER_STRIP`: some Mc viramas, U+302E/U+302F, musical symbols)
out of canonical order: then the normalised word keeps the typed order, and
its pieces differ only if the vocabulary holds those characters (BERT's does
not). No real text we know of does this; the test suite pins the list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from bert_tf.text.ops import wordpiece_ids, wordpiece_model
from bert_tf.runtime import tf
from bert_tf.text.inputs import checked_texts
from bert_tf.files.paths import user_cache

logger = logging.getLogger("bert_tf")

#: Google's `max_input_chars_per_word`: longer normalised words become [UNK].
MAX_CHARS_PER_WORD = 100

# Character classes, as stored in the lookup table (low 3 bits).
DROP, SPACE, CJK, PUNCT, OTHER = 0, 1, 2, 3, 4

# Final-sigma context classes (table bits 3-4): Python lowers U+03A3 to U+03C2
# when a cased character precedes it and none follows, skipping case-ignorable
# characters in both directions (CPython `handle_capital_sigma`).
_SIG_IGNORABLE, _SIG_CASED, _SIG_OTHER = 0, 1, 2

_CAPITAL_SIGMA = 0x03A3
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")

# Characters whose canonical combining class is not 0 and that survive accent
# stripping, from Unicode 14.0. See the module docstring.
_REORDERABLE_AFTER_STRIP = frozenset(
    [0x1715, 0x1734, 0x1B44, 0x1BAA, 0x1BF2, 0x1BF3, 0x302E, 0x302F, 0xA953, 0xA9C0]
    + [0x111C0, 0x11235, 0x1134D, 0x116B6, 0x1193D, 0x16FF0, 0x16FF1]
    + list(range(0x1D15E, 0x1D167))
    + list(range(0x1D16D, 0x1D173))
    + list(range(0x1D1BB, 0x1D1C1))
)


class Word(NamedTuple):
    """One word of a sentence: normalised text, code-point span and word pieces.

    `sentence[start:end]` is the word as typed; `text` is what the model sees.
    """

    text: str
    start: int
    end: int
    pieces: tuple[str, ...]
    ids: tuple[int, ...]


# --------------------------------------------------------------------------
# Vocabulary and casing
# --------------------------------------------------------------------------


def load_vocab(path: str | os.PathLike) -> list[str]:
    """Reads a WordPiece vocabulary: UTF-8, one token per line, id = line number.

    Only the line terminator is removed (as Hugging Face does; Google's reader
    also strips spaces, which no real vocabulary has). A UTF-8 byte-order mark,
    which some editors write, is dropped with a warning: kept, it would become
    part of the first token, and that token (often "[PAD]" or "the") could never
    match.

    Example:
        >>> vocab = load_vocab("uncased_L-12_H-768_A-12/vocab.txt")  # doctest: +SKIP
        >>> vocab[101]
        '[CLS]'

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file holds no tokens, or is not UTF-8 (the message names the
            file and the first line that is not).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
    except UnicodeDecodeError:
        raise ValueError(_not_utf8_message(path)) from None
    if vocab and vocab[0].startswith("\ufeff"):
        logger.warning("%s starts with a byte-order mark; ignoring it", path)
        vocab[0] = vocab[0][1:]
    if not vocab or all(not token for token in vocab):
        raise ValueError(f"vocabulary file is empty: {path!r}")
    return vocab


def _not_utf8_message(path: str) -> str:
    """Names the first line of `path` that is not UTF-8, and what to do."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (f"{path}: not UTF-8 (it starts with a UTF-16 byte-order mark); "
                f"a vocab.txt must be UTF-8, one token per line: save it again as UTF-8")
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"{path}: line {number} is not UTF-8 (byte 0x{line[e.start]:02x} at byte {e.start + 1} "
                    f"of the line); a vocab.txt must be UTF-8, one token per line: save it again as UTF-8")
    return f"{path}: not UTF-8; a vocab.txt must be UTF-8, one token per line: save it again as UTF-8"


def _lower_case_from_name(name: str | None) -> bool | None:
    """What a checkpoint's name says about casing, or None when it says nothing.

    Follows Google's `validate_case_matches_checkpoint`: "uncased_*",
    "multilingual_L-*" (the first, uncased multilingual model) and
    "chinese_L-*" are lower-cased; "cased_*", "multi_cased_*", "wwm_cased_*"
    are not.
    """
    if not name:
        return None
    base = os.path.basename(os.path.normpath(str(name))).lower()
    if re.search(r"(?<![a-z])uncased", base):
        return True
    if re.search(r"(?<![a-z])cased", base):
        return False
    if re.search(r"(?<![a-z])(multilingual|chinese)_l-\d", base):
        return True
    return None


def infer_lower_case(vocab: Sequence[str], name: str | None = None, known: bool | None = None) -> bool:
    """Whether text must be lower-cased for this vocabulary.

    `known`, the registry's casing of a released checkpoint, decides when given; then
    the checkpoint's name when it says (see `_lower_case_from_name`);
    otherwise the vocabulary does: an uncased vocabulary has essentially no
    token that `str.lower()` changes (BERT-Base uncased: none), a cased one has
    thousands (BERT-Base cased: about one token in seven).

    Example:
        >>> infer_lower_case(["[UNK]", "the", "##s"], name="uncased_L-12_H-768_A-12")
        True
        >>> infer_lower_case(["[UNK]", "The", "the", "Paris"])
        False
    """
    if known is not None:
        return known
    from_name = _lower_case_from_name(name)
    if from_name is not None:
        return from_name
    ordinary = [t for t in vocab if t and not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in ordinary if t != t.lower())
    return upper <= 0.01 * len(ordinary)


def check_lower_case(value, *, allow_none: bool = True) -> bool | None:
    """`value` as a casing override: True, False or (when allowed) None.

    Anything else is refused rather than tested for truth: `"false"` and `"no"`
    are truthy, so they would silently mean lower-casing.

    Raises:
        TypeError: `value` is not a bool (numpy's included) or None.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    allowed = "True, False or None (None: from the checkpoint)" if allow_none else "True or False"
    raise TypeError(f"lower_case must be {allowed}; got {value!r}")


def resolve_lower_case(vocab: Sequence[str], name: str | None, override: bool | None, *,
                       known: bool | None = None) -> bool:
    """The casing to use: `override` when given, else `infer_lower_case`.

    An override that contradicts the checkpoint is obeyed but logged as a
    warning on the `bert_tf` logger: the model then sees tokens it was not
    trained on.

    Raises:
        TypeError: `override` is not True, False or None.
    """
    override = check_lower_case(override)
    inferred = infer_lower_case(vocab, name, known)
    if override is None:
        return inferred
    if override != inferred:
        source = ("the registry of Google's checkpoints" if known is not None else
                  f"its name {name!r}" if _lower_case_from_name(name) is not None else "its vocabulary")
        logger.warning(
            "lower_case=%s contradicts the checkpoint, which is %s according to %s; "
            "using lower_case=%s as asked",
            override,
            "uncased" if inferred else "cased",
            source,
            override,
        )
    return override


# --------------------------------------------------------------------------
# Per-character tables, from Python's unicodedata
# --------------------------------------------------------------------------


def _is_cjk(cp: int) -> bool:
    """Google's `_is_chinese_char`: the CJK Unified Ideographs blocks."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation_char(ch: str) -> bool:
    """Google's `_is_punctuation`."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def normalize_uncased(text: str) -> str:
    """Google's uncased normalisation of one token: lower, NFD, drop category Mn."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def _sigma_class(ch: str) -> int:
    """How `ch` takes part in `str.lower()`'s final-sigma context.

    Python does not expose its Cased / Case_Ignorable flags, so we ask
    `str.lower()` itself: a capital sigma after "A" + ch stays final only if
    ch is ignorable or cased; before ch only if ch is ignorable or uncased.
    """
    after = ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
    before = ("A\u03a3" + ch).lower()[1] == "\u03c2"
    if after and before:
        return _SIG_IGNORABLE
    return _SIG_CASED if after else _SIG_OTHER


@dataclasses.dataclass(frozen=True)
class _CharTables:
    """Run-length table of per-character codes, and the normalisation map."""

    run_starts: np.ndarray  # [runs] int32, first code point of each run
    run_codes: np.ndarray  # [runs] int32, class | sigma_class << 3
    norm_keys: np.ndarray  # [n] int32, sorted code points whose text changes
    norm_values: tuple[str, ...]  # [n] their normalised text ("" = vanishes)


@functools.lru_cache(maxsize=2)
def _char_tables(lower_case: bool) -> _CharTables:
    """The tables for one casing, from the user's cache when it holds them.

    Computing them visits every code point in Python, about 0.9 s, which is most of what
    building a tokenizer costs; a process that finds them cached reads them in milliseconds.
    The cache file is named by everything the tables depend on (Python's Unicode version,
    the casing and the source of the functions that compute them), so a new Python or a
    change to this code computes afresh; a missing, unreadable or unwritable cache only
    costs the time.
    """
    path = _char_tables_cache(lower_case)
    try:
        with np.load(path, allow_pickle=False) as saved:
            return _CharTables(run_starts=saved["run_starts"], run_codes=saved["run_codes"],
                               norm_keys=saved["norm_keys"], norm_values=tuple(json.loads(str(saved["norm_values"]))))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        pass
    tables = _compute_char_tables(lower_case)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return tables  # no writable cache
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, run_starts=tables.run_starts, run_codes=tables.run_codes,
                                norm_keys=tables.norm_keys, norm_values=np.array(json.dumps(tables.norm_values)))
        os.replace(tmp, path)  # readers see the whole file or none
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return tables


def _char_tables_cache(lower_case: bool) -> Path:
    """Where `_char_tables` keeps the tables for this casing, this Python and this code."""
    code = "".join(inspect.getsource(f) for f in (_compute_char_tables, normalize_uncased, _sigma_class,
                                                  _is_punctuation_char, _is_cjk))
    classes = (DROP, SPACE, CJK, PUNCT, OTHER, _SIG_IGNORABLE, _SIG_CASED, _SIG_OTHER)
    key = hashlib.sha256(f"{unicodedata.unidata_version}|{lower_case}|{classes}|{code}".encode()).hexdigest()[:16]
    return user_cache() / "char_tables" / f"{'uncased' if lower_case else 'cased'}-{key}.npz"


def _compute_char_tables(lower_case: bool) -> _CharTables:
    codes = np.empty(0x110000, np.int32)
    norm_keys, norm_values = [], []
    for cp in range(0x110000):
        ch = chr(cp)
        category = unicodedata.category(ch)
        if cp == 0 or cp == 0xFFFD or (category[0] == "C" and ch not in "\t\n\r"):
            codes[cp] = DROP | _SIG_IGNORABLE << 3  # removed before str.lower() sees it
            continue
        if category == "Zs" or ch.isspace():
            codes[cp] = SPACE | _SIG_OTHER << 3
            continue
        text = normalize_uncased(ch) if lower_case else ch
        if text != ch:
            norm_keys.append(cp)
            norm_values.append(text)
        if _is_cjk(cp):
            cls = CJK
        elif len(text) == 1 and _is_punctuation_char(text):
            cls = PUNCT
        elif any(_is_punctuation_char(c) or c.isspace() for c in text):
            # A character whose normalised text mixes punctuation or whitespace
            # with other characters would split inside itself. Unicode 14 has
            # none; a newer Python might.
            raise NotImplementedError(f"U+{cp:04X} normalises to {text!r}")
        else:
            cls = OTHER
        sigma = _sigma_class(ch) if lower_case else _SIG_OTHER
        codes[cp] = cls | sigma << 3
    run_starts = np.flatnonzero(np.diff(codes, prepend=-1)).astype(np.int32)
    return _CharTables(
        run_starts=run_starts,
        run_codes=codes[run_starts],
        norm_keys=np.asarray(norm_keys, np.int32),
        norm_values=tuple(norm_values),
    )


# --------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------


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
        missing = [t for t in _SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"vocabulary lacks special tokens: {', '.join(missing)}")
        if int(max_chars_per_word) < 1:
            raise ValueError(f"max_chars_per_word must be >= 1; got {max_chars_per_word}")
        self._vocab = tuple(vocab)
        self._lower_case = lower_case
        self._max_chars = int(max_chars_per_word)
        # A token listed twice means its last id, as in Google's dict-based
        # load_vocab; the earlier copies become entries no word can match
        # (words never hold spaces), since FastWordpieceTokenizer wants unique tokens.
        index = {token: i for i, token in enumerate(vocab)}
        wordpiece_vocab = [t if index[t] == i else f" duplicate {i}" for i, t in enumerate(vocab)]
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (index[t] for t in _SPECIAL_TOKENS)
        self.vocab_size = len(vocab)

        tables = _char_tables(self._lower_case)
        self._run_starts = tf.constant(tables.run_starts)
        self._run_codes = tf.constant(tables.run_codes)
        self._norm_keys = tf.constant(tables.norm_keys, tf.int32)
        self._norm_values = tf.constant(tables.norm_values or ("",), tf.string)
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
        chars = tf.strings.unicode_decode(sentences, "UTF-8", errors="replace")
        cps = chars.flat_values  # [chars] int32, all sentences end to end
        rows = chars.value_rowids()  # [chars] sentence of each char
        positions = tf.range(tf.size(cps, out_type=tf.int64)) - tf.gather(chars.row_splits, rows)
        classes, sigma = self._char_codes(cps)
        texts = self._char_texts(cps, rows, sigma)

        # Dropped chars vanish before anything else, so they never split a word.
        keep = tf.not_equal(classes, DROP)
        classes = tf.boolean_mask(classes, keep)
        rows = tf.boolean_mask(rows, keep)
        positions = tf.boolean_mask(positions, keep)
        texts = tf.boolean_mask(texts, keep)

        # A word starts at every CJK or punctuation char, and at an ordinary
        # char not preceded (in the same sentence) by an ordinary char.
        other = tf.equal(classes, OTHER)
        same_row = tf.concat([[False], tf.equal(rows[1:], rows[:-1])], axis=0)
        after_other = tf.concat([[False], other[:-1]], axis=0) & same_row
        starts_word = tf.equal(classes, CJK) | tf.equal(classes, PUNCT) | (other & ~after_other)
        word_ids = tf.cumsum(tf.cast(starts_word, tf.int64)) - 1
        in_word = tf.not_equal(classes, SPACE)
        word_ids = tf.boolean_mask(word_ids, in_word)
        num_words = tf.reduce_sum(tf.cast(starts_word, tf.int64))
        positions = tf.boolean_mask(positions, in_word)
        words = tf.strings.unsorted_segment_join(tf.boolean_mask(texts, in_word), word_ids, num_words)
        starts = tf.math.unsorted_segment_min(positions, word_ids, num_words)
        ends = tf.math.unsorted_segment_max(positions, word_ids, num_words) + 1
        word_rows = tf.math.unsorted_segment_min(tf.boolean_mask(rows, in_word), word_ids, num_words)

        # Words made only of stripped accents disappear, as in the reference.
        nonempty = tf.strings.length(words) > 0
        words, starts, ends, word_rows = (
            tf.boolean_mask(t, nonempty) for t in (words, starts, ends, word_rows)
        )
        nrows = tf.shape(sentences, out_type=tf.int64)[0]

        def per_sentence(values):
            return tf.RaggedTensor.from_value_rowids(values, word_rows, nrows=nrows, validate=False)

        return {
            "pieces": per_sentence(self._word_pieces(words)),
            "words": per_sentence(words),
            "starts": per_sentence(starts),
            "ends": per_sentence(ends),
        }

    def _char_codes(self, cps):
        """Class and final-sigma class of each code point. [chars] -> 2 x [chars] int32."""
        run = tf.searchsorted(self._run_starts, cps, side="right") - 1
        codes = tf.gather(self._run_codes, run)
        return tf.bitwise.bitwise_and(codes, 7), tf.bitwise.right_shift(codes, 3)

    def _char_texts(self, cps, rows, sigma):
        """Each char's normalised text, capital sigma resolved by context. [chars] string."""
        texts = tf.strings.unicode_encode(tf.expand_dims(cps, -1), "UTF-8", errors="replace")
        if not self._lower_case:
            return texts
        slot = tf.minimum(tf.searchsorted(self._norm_keys, cps), tf.size(self._norm_keys) - 1)
        hit = tf.equal(tf.gather(self._norm_keys, slot), cps)
        texts = tf.where(hit, tf.gather(self._norm_values, slot), texts)

        # Python's str.lower() writes U+03A3 as final sigma when the nearest
        # non-ignorable char before it (within the sentence) is cased and the
        # nearest one after it is not. Whitespace and sentence ends are uncased.
        sigmas = tf.where(tf.equal(cps, _CAPITAL_SIGMA))[:, 0]  # [sigmas] int64
        relevant = tf.not_equal(sigma, _SIG_IGNORABLE)
        relevant_cased = tf.boolean_mask(tf.equal(sigma, _SIG_CASED), relevant)  # [relevant]
        relevant_rows = tf.boolean_mask(rows, relevant)
        last = tf.size(relevant_cased, out_type=tf.int64) - 1
        # A capital sigma is itself relevant; k is its index among relevant chars.
        k = tf.gather(tf.cumsum(tf.cast(relevant, tf.int64)), sigmas) - 1
        sigma_rows = tf.gather(rows, sigmas)

        def cased_neighbour(j):
            inside = (j >= 0) & (j <= last)
            j = tf.clip_by_value(j, 0, tf.maximum(last, 0))
            return (
                inside
                & tf.equal(tf.gather(relevant_rows, j), sigma_rows)
                & tf.gather(relevant_cased, j)
            )

        final = cased_neighbour(k - 1) & ~cased_neighbour(k + 1)
        lower = tf.where(final, "\u03c2", "\u03c3")
        return tf.tensor_scatter_nd_update(texts, tf.expand_dims(sigmas, -1), lower)

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
    "Word",
    "check_lower_case",
    "infer_lower_case",
    "load_vocab",
    "normalize_uncased",
    "resolve_lower_case",
]
