"""`VectorSpace`: what makes vectors comparable, one value with one `compatible()`."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest

from bert_tf.embed.embedder import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.embed.space import VectorSpace
from bert_tf.model.quantize import set_input_ranges
from bert_tf.testing import encoder_bound

BASE = VectorSpace("0123456789abcdef", True, "float32", (-4, -3, -2, -1), "sum", "mean", 768, "mean", -2, 512,
                   name="uncased_L-12_H-768_A-12", path="/models/uncased_L-12_H-768_A-12")

#: One other value per field that changes vectors, and the name `differences` gives it.
CHANGES = {
    "fingerprint": ("ffffffffffffffff", "checkpoint"),
    "lower_case": (False, "lower_case"),
    "precision": ("bfloat16", "precision"),
    "layers": ((-1,), "layers"),
    "combine": ("concat", "combine"),
    "subword_pooling": ("first", "subword_pooling"),
    "vector_size": (100, "vector_size"),
    "sentence_strategy": ("cls", "sentence_strategy"),
    "sentence_layer": (-1, "sentence_layer"),
    "max_seq_length": (128, "max_seq_length"),
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_each_field_that_changes_vectors_is_named(field):
    value, name = CHANGES[field]
    other = dataclasses.replace(BASE, **{field: value})
    assert not BASE.compatible(other) and not other.compatible(BASE)
    assert list(BASE.differences(other)) == [name]
    line = BASE.describe_differences(other, this="the index", that="the query")
    assert line.startswith(f"{name} is ") and " in the index, " in line and line.endswith(" in the query")
    assert "\n" not in line


def test_every_difference_is_listed_in_one_line():
    other = dataclasses.replace(BASE, precision="int8", combine="mean", layers=(-2, -1))
    assert BASE.differences(other) == {"precision": ("float32", "int8"), "layers": ((-4, -3, -2, -1), (-2, -1)),
                                       "combine": ("sum", "mean")}
    assert BASE.describe_differences(other) == ("precision is 'float32' in this, 'int8' in the other; layers is "
                                                "-4,-3,-2,-1 in this, -2,-1 in the other; combine is 'sum' in this, "
                                                "'mean' in the other")


def test_the_path_is_informational_when_fingerprints_are_known():
    moved = dataclasses.replace(BASE, path="/elsewhere/copy", name="copy")
    assert BASE.compatible(moved) and BASE == moved
    # Without a fingerprint on either side, the checkpoint is compared by its (resolved) path.
    a = dataclasses.replace(BASE, fingerprint=None)
    assert a.compatible(dataclasses.replace(a, path="/models/../models/uncased_L-12_H-768_A-12"))
    assert list(a.differences(moved)) == ["checkpoint"]
    assert "checkpoint is /models/uncased_L-12_H-768_A-12 in this, /elsewhere/copy (fingerprint 0123456789ab)" \
        in a.describe_differences(moved)


def test_a_batch_plan_recorded_by_an_earlier_int8_is_read_and_dropped():
    """Before int8's input ranges were per token, an int8 space recorded its batch plan; such a record
    still reads, as today's int8 space: the plan no longer changes vectors, so none is compared or used."""
    int8 = dataclasses.replace(BASE, precision="int8")
    for plan in ({"batch_size": 4, "batch_positions": 2048}, {"batch_size": None, "batch_positions": 2048}):
        old = VectorSpace.from_dict({**int8.to_dict(), **plan})
        assert old == int8 and old.compatible(int8) and old.options().batch_size is None
    assert not {"batch_size", "batch_positions"} & set(int8.to_dict())
    with pytest.raises(TypeError):
        dataclasses.replace(BASE, batch_size=4)  # no field for it any more


def test_json_round_trip_and_refusals():
    int8 = dataclasses.replace(BASE, precision="int8")
    for space in (BASE, int8):
        data = space.to_dict()
        assert VectorSpace.from_dict(data) == space and VectorSpace.from_dict(data).path == space.path
        assert data["layers"] == list(space.layers) and data["version"] == 1
    assert BASE.to_dict(with_path=False)["path"] is None and BASE.to_dict(with_path=False)["name"] == BASE.name
    with pytest.raises(ValueError, match="no vector space is recorded"):
        VectorSpace.from_dict(None)
    with pytest.raises(ValueError, match="is of version 2; this bert_tf reads version 1"):
        VectorSpace.from_dict({**BASE.to_dict(), "version": 2})
    with pytest.raises(ValueError, match="has unknown or missing field\\(s\\) colour"):
        VectorSpace.from_dict({**BASE.to_dict(), "colour": "red"})
    data = BASE.to_dict()
    del data["combine"]
    with pytest.raises(ValueError, match="missing field\\(s\\) combine"):
        VectorSpace.from_dict(data)


def test_options_give_back_the_same_space(make_checkpoint):
    directory, _ = make_checkpoint("space", num_hidden_layers=3)
    embedder = BertEmbedder.from_checkpoint(directory)
    for options in (EmbeddingOptions(), EmbeddingOptions(layers=(1, 3), combine="concat", dim=50,
                                                         sentence_strategy="max", sentence_layer=0,
                                                         max_seq_length=16)):
        space = embedder.space(options)
        assert embedder.space(space.options()) == space
    # layers=None is the model's default written out: the same vectors.
    assert embedder.space() == embedder.space(EmbeddingOptions(layers=(-3, -2, -1), dim=32, max_seq_length=64))
    assert embedder.space().layers == embedder.default_layers == (-3, -2, -1)
    assert embedder.space(EmbeddingOptions(batch_size=3)) == embedder.space()  # float32: batching changes nothing


def test_a_relative_checkpoint_is_recorded_absolute(make_checkpoint, tmp_path, monkeypatch):
    directory, _ = make_checkpoint("rel")
    monkeypatch.chdir(directory.parent)
    embedder = BertEmbedder.from_checkpoint("rel")
    assert embedder.checkpoint == str(directory) and os.path.isabs(embedder.space().path)
    assert embedder.space().name == "rel" and embedder.space().fingerprint


#: Mixed lengths (3 to 60 pieces) and, at `max_seq_length=16`, texts of several overlapping windows.
BATCHING_TEXTS = ["a short one", "the bank of the river", "and a much longer text with many more words in it",
                  "computer mouse keyboard device " * 6, "x", "the cat is a small animal that eats the rat " * 4]


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_texts_vectors_are_the_same_alone_and_in_any_batch(make_checkpoint, precision):
    """In every precision the batch plan changes no vector (so no artefact records it): int8 rounds
    each token's input over its own range. Alone, one per call, two per call, among other
    neighbours in another order, whole and in windows: within the float32 bound. With one range
    per call (`ranges="call"`, what int8 did before) the same comparison is far past it."""
    directory, _ = make_checkpoint(f"batching_{precision}")
    embedder = BertEmbedder.from_checkpoint(directory, precision=precision)
    per_call = BertEmbedder.from_checkpoint(directory, precision=precision)
    if precision == "int8":
        assert set_input_ranges(per_call.encoder, "call") == 6 * embedder.config.num_hidden_layers
    for length in (None, 16):
        def largest_change(e):
            alone = [e.embed_words([t], max_seq_length=length)[0] for t in BATCHING_TEXTS]
            reference = np.concatenate([np.stack([w.vector for w in ws]) for ws in alone])
            bound = encoder_bound(e.config, reference)
            runs = [e.embed_words(BATCHING_TEXTS, max_seq_length=length),
                    e.embed_words(BATCHING_TEXTS, max_seq_length=length, batch_size=2),
                    e.embed_words(BATCHING_TEXTS[::-1] + ["more neighbours here"] * 3, max_seq_length=length)[5::-1]]
            assert all(len(x) == len(y) for run in runs for x, y in zip(alone, run))
            change = max(float(np.abs(a.vector - b.vector).max())
                         for run in runs for x, y in zip(alone, run) for a, b in zip(x, y))
            return change, bound

        change, bound = largest_change(embedder)
        assert change <= bound, (change, bound)
        if precision == "int8":
            change, bound = largest_change(per_call)
            assert change > 10 * bound  # one range per call: the neighbours' range is another
        options = EmbeddingOptions(max_seq_length=length)
        assert embedder.space(options.replace(batch_size=1)) == embedder.space(options)
    shutil.rmtree(directory)  # the space is a value: it outlives the checkpoint folder
    assert embedder.space().precision == precision


def test_the_space_and_the_corpus_format_import_without_tensorflow_beam_or_faiss():
    import subprocess
    import sys

    code = ("import sys, bert_tf.embed.space, bert_tf.embed.corpus_format; "
            "print(sorted(m for m in ('apache_beam', 'faiss', 'tensorflow', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
