"""The one tensorflow-text op bert_tf loads, and how it coexists with tensorflow_text itself."""

import subprocess
import sys
import textwrap

import pytest

from bert_tf.text import ops as text_ops
from bert_tf.runtime import tf

VOCAB = ["[UNK]", "the", "great", "##est", "they", "##'", "##re", "un", "##aff", "##able"]
WORDS = ["greatest", "they're", "unaffable", "zebra", "", "the"]
EXPECTED = [[2, 3], [4, 5, 6], [7, 8, 9], [0], [], [1]]


def _ids(ops) -> list:
    model = tf.constant(bytearray(ops.build_model(VOCAB, 100, "##", "[UNK]", True, False)), tf.uint8)
    _, ids, splits, _, _ = ops.tokenize_with_offsets(input_values=tf.constant(WORDS), wp_model=model)
    return tf.RaggedTensor.from_row_splits(ids, splits).to_list()


def test_wordpiece_ids_split_words_into_vocabulary_pieces():
    model = text_ops.wordpiece_model(VOCAB, suffix_indicator="##", max_bytes_per_word=100, unknown_token="[UNK]")
    pieces = text_ops.wordpiece_ids(tf.constant(WORDS), model)
    assert pieces.dtype == tf.int32
    assert pieces.to_list() == EXPECTED


@pytest.mark.parametrize("root", [None, "/nonexistent/tensorflow_text"])
def test_an_unexpected_package_layout_falls_back_to_the_whole_package(root):
    ops = text_ops.load_ops(root)
    assert ops.whole_package
    assert _ids(ops) == EXPECTED


@pytest.mark.slow  # a fresh Python process: TensorFlow's import, every time
def test_only_the_wordpiece_library_is_loaded_and_tensorflow_text_still_imports_after_it():
    """The tokenizer must not import tensorflow_text (103 MiB for 22 op libraries it does not use);
    a user who imports tensorflow_text afterwards gets the same op, with the same results."""
    code = textwrap.dedent("""
        import sys
        from bert_tf import BertTokenizer
        from bert_tf.text import ops as text_ops
        tok = BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "great", "##est"], lower_case=True)
        ours = tok.tokenize_words(["Greatest"])[0][0].pieces
        print(not text_ops.loaded_whole_package(), "tensorflow_text" in sys.modules, ours)
        import tensorflow as tf
        import tensorflow_text
        theirs = tensorflow_text.FastWordpieceTokenizer(["[UNK]", "great", "##est"], token_out_type=tf.string,
                                                      no_pretokenization=True).tokenize(["greatest"]).to_list()
        print(theirs)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "True False ('great', '##est')"
    assert out[1] == "[[b'great', b'##est']]"
