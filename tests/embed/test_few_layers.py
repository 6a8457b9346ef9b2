"""Models of fewer than four layers (Google's uncased_L-2_H-128_A-2 and friends): the default "last
four layers" means all the encoder's layers, in the API and in `embed`, `similarity` and `demo`."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bert_tf import BertEmbedder, get_bert_embeddings

SENTENCES = ["A mouse is a rodent animal.", "A rat is an animal.", "A computer has a keyboard."]
BERT_TF = shutil.which("bert-tf", path=os.path.dirname(sys.executable)) or "bert-tf"


def layer_notes(caplog):
    return [r for r in caplog.records if r.name == "bert_tf" and "the default combines" in r.getMessage()]


def vectors(results):
    return [np.stack([w.vector for w in words]) for words in results]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # the same traced graph on the same batches


def assert_differ(a, b):
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))


def test_the_default_on_a_two_layer_model_combines_both_layers(make_checkpoint, caplog):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", num_hidden_layers=2)
    embedder = BertEmbedder.from_checkpoint(directory)
    assert embedder.default_layers == (-2, -1)
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        default = vectors(embedder.embed_words(SENTENCES))
        streamed = vectors(embedder.iter_words(iter(SENTENCES)))
        with_sentences = [words for words, _ in embedder.iter_embed(SENTENCES)]
    (note,) = layer_notes(caplog)  # one line, however many calls
    assert note.levelno == logging.INFO and "2 layer" in note.getMessage() and "-2,-1" in note.getMessage()
    explicit = vectors(embedder.embed_words(SENTENCES, layers=(-2, -1)))
    assert_same(default, explicit)
    assert_same(streamed, explicit)
    assert_same(vectors(with_sentences), explicit)
    # The embedding output (hidden state 0) is not one of the encoder's layers.
    assert_differ(default, vectors(embedder.embed_words(SENTENCES, layers=(0, 1, 2))))


def test_the_default_on_a_three_layer_model_leaves_out_the_embedding_output(make_checkpoint):
    directory, _ = make_checkpoint("L-3", num_hidden_layers=3)
    embedder = BertEmbedder.from_checkpoint(directory)
    default = vectors(embedder.embed_words(SENTENCES))
    assert_same(default, vectors(embedder.embed_words(SENTENCES, layers=(1, 2, 3))))
    # (-4, -3, -2, -1) would be served by this model, as hidden states 0..3: not the default.
    assert_differ(default, vectors(embedder.embed_words(SENTENCES, layers=(-4, -3, -2, -1))))


def test_the_default_on_five_layers_is_the_last_four_and_says_nothing(make_checkpoint, caplog):
    directory, _ = make_checkpoint("L-5", num_hidden_layers=5)
    embedder = BertEmbedder.from_checkpoint(directory)
    assert embedder.default_layers == (-4, -3, -2, -1)
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        default = vectors(embedder.embed_words(SENTENCES))
    assert not layer_notes(caplog)
    assert_same(default, vectors(embedder.embed_words(SENTENCES, layers=(-4, -3, -2, -1))))
    assert_differ(default, vectors(embedder.embed_words(SENTENCES, layers=(-5, -4, -3, -2, -1))))


def test_explicit_layers_the_model_does_not_have_stay_an_error(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", num_hidden_layers=2)
    embedder = BertEmbedder.from_checkpoint(directory)
    for call in (lambda: embedder.embed_words(SENTENCES, layers=(-4, -3, -2, -1)),
                 lambda: list(embedder.iter_embed(SENTENCES, layers=(-4, -3, -2, -1))),
                 lambda: get_bert_embeddings(SENTENCES, checkpoint=directory, layers=(-4, -3, -2, -1))):
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert "layers must be integers from -3 to 2" in message and "2-layer model" in message
        assert "got -4" in message


def test_get_bert_embeddings_defaults_to_all_layers_of_a_small_model(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", num_hidden_layers=2)
    default = get_bert_embeddings(SENTENCES, checkpoint=directory)
    explicit = get_bert_embeddings(SENTENCES, checkpoint=directory, layers=[-2, -1])
    assert [list(d) for d in default] == [list(d) for d in explicit]
    for d, e in zip(default, explicit):
        for word in d:
            np.testing.assert_array_equal(d[word], e[word])


def test_cli_embed_similarity_and_demo_use_the_same_default(make_checkpoint, capsys):
    from bert_tf.cli import main

    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", num_hidden_layers=2)
    common = ["--checkpoint", str(directory)]

    assert main(["embed", *common, *SENTENCES]) == 0
    default = capsys.readouterr().out
    assert main(["embed", *common, "--layers=-2,-1", *SENTENCES]) == 0
    assert capsys.readouterr().out == default
    assert [json.loads(line)["text"] for line in default.splitlines()] == SENTENCES

    assert main(["embed", *common, "--layers=-4,-3,-2,-1", "a b"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("bert-tf: error: layers must be integers from -3 to 2") and "\n" not in err

    assert main(["similarity", *common, "--words", "mouse,rat", *SENTENCES]) == 0
    table = capsys.readouterr().out
    assert main(["similarity", *common, "--words", "mouse,rat", "--layers=-2,-1", *SENTENCES]) == 0
    assert capsys.readouterr().out == table and "mouse@1" in table and "rat@2" in table

    assert main(["demo", *common]) == 0
    out = capsys.readouterr().out
    assert "word vectors: sum of all 2 layers" in out and "cosine similarity, 'lean' experiment" in out


@pytest.mark.slow
def test_bert_tf_embed_says_once_which_layers_it_uses(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", num_hidden_layers=2)
    proc = subprocess.run([BERT_TF, "--verbose", "embed", "--checkpoint", str(directory), *SENTENCES],
                          capture_output=True, timeout=600, env={**os.environ, "BERT_TF_VERBOSE_TF": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == len(SENTENCES)
    notes = [line for line in proc.stderr.decode().splitlines() if "the default combines" in line]
    assert len(notes) == 1 and notes[0].startswith("bert-tf: this model has 2 layer(s)"), notes
