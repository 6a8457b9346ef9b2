"""What Google's BERT tokenizer does to each code point, tabulated from Python's unicodedata.

Google's `BasicTokenizer` (google-research/bert `tokenization.py`), restated per
character of the original string:

1. Dropped (`DROP`): NUL, U+FFFD and every category C* character except tab,
   newline and carriage return. Removed before splitting, so "x\\x00y" is one word.
2. Whitespace (`SPACE`): space, tab, newline, carriage return, category Zs, and
   also U+2028/U+2029, which survive cleaning and then split in `str.split()`.
   Whitespace separates words.
3. CJK ideographs (`CJK`, the eight ranges of `_is_chinese_char`): a word each.
4. Punctuation (`PUNCT`, ASCII 33-47, 58-64, 91-96, 123-126 or category P*): a
   word each. For lower-case vocabularies the reference tests punctuation AFTER
   lower-casing and accent stripping, so four symbols count as punctuation
   only there: U+1FEF GREEK VARIA (-> "`"), U+2260, U+226E and U+226F
   (-> "=", "<", ">" once the combining slash is stripped).
5. Every other character (`OTHER`) joins its neighbours into a word.

Uncased vocabularies normalise each word by `str.lower()`, NFD, and removal of
category Mn (accents); cased ones get no normalisation at all.

Every per-character fact (class, the normalised text, and the two properties
`str.lower()` uses for the Greek final sigma) is tabulated once from Python's own
`unicodedata` and `str.lower()`, compressed into sorted code-point ranges, and
looked up in the graph with `tf.searchsorted` (`CharLookup`). RE2's `\\p{..}`
classes and ICU's case mapping follow other Unicode versions and other case
rules (`str.lower()` maps U+0130 to "i" plus a combining dot and applies the
final-sigma rule), so tabulating Python's own answers is what makes every code
point agree with the reference, with no allowlist. The tables follow the
`unicodedata` of the Python that builds the tokenizer (Unicode 14.0 on 3.11) and
are frozen into a saved model.

One known difference remains, for uncased vocabularies only: NFD of a whole
word also sorts runs of combining marks by combining class, and we decompose
character by character. After accent stripping, the order can differ only when
a word holds two of the 38 non-Mn characters of non-zero combining class
(`REORDERABLE_AFTER_STRIP`: some Mc viramas, U+302E/U+302F, musical symbols)
out of canonical order: then the normalised word keeps the typed order, and
its pieces differ only if the vocabulary holds those characters (BERT's does
not). No real text we know of does this; the test suite pins the list.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import types
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bert_tf.files.output import AtomicFile
from bert_tf.files.paths import user_cache
from bert_tf.runtime import tf

# Character classes, as stored in the lookup table (low 3 bits).
DROP, SPACE, CJK, PUNCT, OTHER = 0, 1, 2, 3, 4

# Final-sigma context classes (table bits 3-4): Python lowers U+03A3 to U+03C2
# when a cased character precedes it and none follows, skipping case-ignorable
# characters in both directions (CPython `handle_capital_sigma`).
SIGMA_IGNORABLE, SIGMA_CASED, SIGMA_OTHER = 0, 1, 2

CAPITAL_SIGMA = 0x03A3

#: Characters whose canonical combining class is not 0 and that survive accent
#: stripping, from Unicode 14.0. See the module docstring.
REORDERABLE_AFTER_STRIP = frozenset(
    [0x1715, 0x1734, 0x1B44, 0x1BAA, 0x1BF2, 0x1BF3, 0x302E, 0x302F, 0xA953, 0xA9C0]
    + [0x111C0, 0x11235, 0x1134D, 0x116B6, 0x1193D, 0x16FF0, 0x16FF1]
    + list(range(0x1D15E, 0x1D167))
    + list(range(0x1D16D, 0x1D173))
    + list(range(0x1D1BB, 0x1D1C1))
)


# --------------------------------------------------------------------------
# The reference's rules, one character at a time
# --------------------------------------------------------------------------


def is_cjk(cp: int) -> bool:
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


def is_punctuation(ch: str) -> bool:
    """Google's `_is_punctuation`."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def normalize_uncased(text: str) -> str:
    """Google's uncased normalisation of one token: lower, NFD, drop category Mn.

    Example:
        >>> normalize_uncased("Héllo")
        'hello'
    """
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def sigma_class(ch: str) -> int:
    """How `ch` takes part in `str.lower()`'s final-sigma context: one of `SIGMA_*`.

    Python does not expose its Cased / Case_Ignorable flags, so we ask
    `str.lower()` itself: a capital sigma after "A" + ch stays final only if
    ch is ignorable or cased; before ch only if ch is ignorable or uncased.
    """
    after = ("A" + ch + "\u03a3").lower()[-1] == "\u03c2"
    before = ("A\u03a3" + ch).lower()[1] == "\u03c2"
    if after and before:
        return SIGMA_IGNORABLE
    return SIGMA_CASED if after else SIGMA_OTHER


# --------------------------------------------------------------------------
# The tables, computed once and cached on disk
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CharTables:
    """Run-length table of per-character codes, and the normalisation map."""

    run_starts: np.ndarray  # [runs] int32, first code point of each run
    run_codes: np.ndarray  # [runs] int32, class | sigma_class << 3
    norm_keys: np.ndarray  # [n] int32, sorted code points whose text changes
    norm_values: tuple[str, ...]  # [n] their normalised text ("" = vanishes)

    def same_as(self, other: "CharTables") -> bool:
        """Whether both hold the same tables (numpy arrays have no plain `==`)."""
        arrays = ("run_starts", "run_codes", "norm_keys")
        return (all(np.array_equal(getattr(self, k), getattr(other, k)) for k in arrays)
                and self.norm_values == other.norm_values)


@functools.lru_cache(maxsize=2)
def char_tables(lower_case: bool) -> CharTables:
    """The tables for one casing, from the user's cache when it holds them.

    Computing them visits every code point in Python, which is most of what building a
    tokenizer costs; a process that finds them cached reads them in milliseconds. The
    cache file is named by everything the tables depend on (see `cache_path`), so a new
    Python or a change to this code computes afresh; a missing, unreadable or unwritable
    cache only costs the time. Kept per process too: `char_tables.cache_clear()` forgets.
    """
    path = cache_path(lower_case)
    try:
        with np.load(path, allow_pickle=False) as saved:
            return CharTables(run_starts=saved["run_starts"], run_codes=saved["run_codes"],
                              norm_keys=saved["norm_keys"], norm_values=tuple(json.loads(str(saved["norm_values"]))))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        pass
    tables = compute_char_tables(lower_case)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with AtomicFile(path, "wb") as f:  # readers see the whole file or none
            np.savez_compressed(f, run_starts=tables.run_starts, run_codes=tables.run_codes,
                                norm_keys=tables.norm_keys, norm_values=np.array(json.dumps(tables.norm_values)))
    except OSError:
        pass  # no writable cache: the next process computes them again
    return tables


def cache_path(lower_case: bool) -> Path:
    """Where `char_tables` keeps the tables for this casing, this Python and this code.

    The name holds a hash of Python's version and Unicode version, the casing, the class
    numbers and the compiled code of the functions that compute the tables (their bytecode,
    names and constants, not their source: an install of `.pyc` files only has no source).
    """
    code = b"|".join(code_fingerprint(f.__code__) for f in (compute_char_tables, normalize_uncased, sigma_class,
                                                            is_punctuation, is_cjk))
    classes = (DROP, SPACE, CJK, PUNCT, OTHER, SIGMA_IGNORABLE, SIGMA_CASED, SIGMA_OTHER)
    digest = hashlib.sha256(f"{sys.version_info[:2]}|{unicodedata.unidata_version}|{lower_case}|{classes}|".encode())
    digest.update(code)
    return user_cache() / "char_tables" / f"{'uncased' if lower_case else 'cased'}-{digest.hexdigest()[:16]}.npz"


def code_fingerprint(code: types.CodeType) -> bytes:
    """What a compiled function computes, as bytes stable across processes: its bytecode, the names it
    uses and its constants (nested functions' code included; sets of constants in sorted order, as
    string hashing changes their order from one process to the next). Line numbers are left out."""
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(code_fingerprint(const))
        elif isinstance(const, frozenset):
            parts.append(repr(sorted(map(repr, const))).encode())
        else:
            parts.append(repr(const).encode())
    return b"\x00".join(parts)


def compute_char_tables(lower_case: bool) -> CharTables:
    """The tables for one casing, computed from this Python's `unicodedata` (no cache).

    Raises:
        NotImplementedError: a character normalises to text that mixes punctuation or
            whitespace with other characters, which the tables cannot express.
    """
    codes = np.empty(0x110000, np.int32)
    norm_keys, norm_values = [], []
    for cp in range(0x110000):
        ch = chr(cp)
        category = unicodedata.category(ch)
        if cp == 0 or cp == 0xFFFD or (category[0] == "C" and ch not in "\t\n\r"):
            codes[cp] = DROP | SIGMA_IGNORABLE << 3  # removed before str.lower() sees it
            continue
        if category == "Zs" or ch.isspace():
            codes[cp] = SPACE | SIGMA_OTHER << 3
            continue
        text = normalize_uncased(ch) if lower_case else ch
        if text != ch:
            norm_keys.append(cp)
            norm_values.append(text)
        if is_cjk(cp):
            cls = CJK
        elif len(text) == 1 and is_punctuation(text):
            cls = PUNCT
        elif any(is_punctuation(c) or c.isspace() for c in text):
            # A character whose normalised text mixes punctuation or whitespace
            # with other characters would split inside itself. Unicode 14 has
            # none; a newer Python might.
            raise NotImplementedError(f"U+{cp:04X} normalises to {text!r}")
        else:
            cls = OTHER
        sigma = sigma_class(ch) if lower_case else SIGMA_OTHER
        codes[cp] = cls | sigma << 3
    run_starts = np.flatnonzero(np.diff(codes, prepend=-1)).astype(np.int32)
    return CharTables(
        run_starts=run_starts,
        run_codes=codes[run_starts],
        norm_keys=np.asarray(norm_keys, np.int32),
        norm_values=tuple(norm_values),
    )


# --------------------------------------------------------------------------
# Lookup in the graph
# --------------------------------------------------------------------------


class CharLookup:
    """The tables of one casing as constants, and the two in-graph lookups the tokenizer makes.

    Example:
        >>> lookup = CharLookup(lower_case=True)
        >>> classes, _ = lookup.classify(tf.constant([ord("a"), ord(","), ord(" ")]))
        >>> classes.numpy().tolist() == [OTHER, PUNCT, SPACE]
        True
    """

    def __init__(self, *, lower_case: bool):
        tables = char_tables(lower_case)
        self.lower_case = lower_case
        self._run_starts = tf.constant(tables.run_starts)
        self._run_codes = tf.constant(tables.run_codes)
        self._norm_keys = tf.constant(tables.norm_keys, tf.int32)
        self._norm_values = tf.constant(tables.norm_values or ("",), tf.string)

    def classify(self, cps):
        """Class and final-sigma class of each code point. [chars] int32 -> 2 x [chars] int32."""
        run = tf.searchsorted(self._run_starts, cps, side="right") - 1
        codes = tf.gather(self._run_codes, run)
        return tf.bitwise.bitwise_and(codes, 7), tf.bitwise.right_shift(codes, 3)

    def texts(self, cps, rows, sigma):
        """Each char's normalised text, capital sigma resolved by context. [chars] string.

        Args:
            cps: [chars] int32 code points, all sentences end to end.
            rows: [chars] int64, the sentence of each char: final sigma looks no further.
            sigma: [chars] int32, the final-sigma class of each char (from `classify`).
        """
        texts = tf.strings.unicode_encode(tf.expand_dims(cps, -1), "UTF-8", errors="replace")
        if not self.lower_case:
            return texts
        slot = tf.minimum(tf.searchsorted(self._norm_keys, cps), tf.size(self._norm_keys) - 1)
        hit = tf.equal(tf.gather(self._norm_keys, slot), cps)
        texts = tf.where(hit, tf.gather(self._norm_values, slot), texts)

        # Python's str.lower() writes U+03A3 as final sigma when the nearest
        # non-ignorable char before it (within the sentence) is cased and the
        # nearest one after it is not. Whitespace and sentence ends are uncased.
        sigmas = tf.where(tf.equal(cps, CAPITAL_SIGMA))[:, 0]  # [sigmas] int64
        relevant = tf.not_equal(sigma, SIGMA_IGNORABLE)
        relevant_cased = tf.boolean_mask(tf.equal(sigma, SIGMA_CASED), relevant)  # [relevant]
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


__all__ = [
    "CJK",
    "DROP",
    "OTHER",
    "PUNCT",
    "REORDERABLE_AFTER_STRIP",
    "SPACE",
    "CharLookup",
    "CharTables",
    "cache_path",
    "char_tables",
    "code_fingerprint",
    "compute_char_tables",
    "normalize_uncased",
]
