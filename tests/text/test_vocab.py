"""vocab.txt files as editors save them: with a UTF-8 byte-order mark, or not UTF-8 at all."""

import logging

import pytest

from bert_tf.text.tokenization import BertTokenizer, load_vocab

# "the" first, so a byte-order mark kept in the first token turns "the" into t ##h ##e.
VOCAB = ["the", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "t", "h", "e", "##t", "##h", "##e", "cat"]


def bom_warnings(caplog):
    return [r for r in caplog.records if r.name == "bert_tf" and "byte-order mark" in r.getMessage()]


def test_a_byte_order_mark_is_dropped_with_one_warning(tmp_path, caplog):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(VOCAB).encode("utf-8") + b"\n")
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        vocab = load_vocab(path)
    assert vocab == VOCAB
    (record,) = bom_warnings(caplog)
    assert record.getMessage() == f"{path} starts with a byte-order mark; ignoring it"
    tokenizer = BertTokenizer(vocab, lower_case=True)
    assert [w.pieces for w in tokenizer.tokenize_words(["the cat"])[0]] == [("the",), ("cat",)]


def test_a_vocab_without_a_byte_order_mark_logs_nothing(tmp_path, caplog):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert load_vocab(path) == VOCAB
    assert not bom_warnings(caplog)


def test_a_checkpoint_whose_vocab_has_a_byte_order_mark_loads(make_checkpoint, caplog):
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint()
    path = directory / "vocab.txt"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("[PAD]\n")  # the token a kept mark would hide ("[PAD] missing")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        embedder = BertEmbedder.from_checkpoint(directory)
    assert len(bom_warnings(caplog)) == 1
    assert embedder.tokenizer.vocab[0] == "[PAD]" and embedder.tokenizer.pad_id == 0


@pytest.mark.parametrize("data, line", [
    (b"[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\xe9\nthe\n", 5),  # Latin-1
    (b"\xe9t\xe9\n[PAD]\n", 1),
    (b"[PAD]\n[UNK]\nok\n\xe2\x82\n", 4),  # a truncated sequence
])
def test_a_vocab_that_is_not_utf8_names_the_file_and_line(tmp_path, data, line):
    path = tmp_path / "vocab.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError) as error:
        load_vocab(path)
    message = str(error.value)
    assert str(path) in message and f"line {line} " in message and "UTF-8" in message


def test_a_utf16_vocab_says_so(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("\n".join(VOCAB).encode("utf-16"))
    with pytest.raises(ValueError, match="UTF-16") as error:
        load_vocab(path)
    assert str(path) in str(error.value)


def test_the_cli_reports_a_vocab_that_is_not_utf8_in_one_line(make_checkpoint, capsys):
    from bert_tf.cli import main

    directory, _ = make_checkpoint()
    path = directory / "vocab.txt"
    lines = path.read_bytes().split(b"\n")
    lines[7] = b"caf\xe9"
    path.write_bytes(b"\n".join(lines))
    assert main(["embed", "--checkpoint", str(directory), "--layers=-1", "hello"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bert-tf: error: ") and "\n" not in err
    assert str(path) in err and "line 8 " in err
