"""`VectorSpace`: what makes vectors comparable, one value with one `compatible()`."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest

from bert_tf.embed.batching import MAX_BATCH_POSITIONS
from bert_tf.embed.embedder import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.embed.space import VectorSpace
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


def test_the_batch_plan_counts_only_where_it_changes_vectors():
    plain = dataclasses.replace(BASE, batch_size=4, batch_positions=2048)
    assert not plain.batch_plan_changes_vectors
    assert (plain.batch_size, plain.batch_positions) == (None, None) and plain.compatible(BASE)
    int8 = dataclasses.replace(BASE, precision="int8", batch_size=None, batch_positions=2048)
    assert int8.batch_plan_changes_vectors
    assert int8.differences(dataclasses.replace(int8, batch_size=4)) == {"batch_size": (None, 4)}
    assert int8.differences(dataclasses.replace(int8, batch_positions=4096)) == {"batch_positions": (2048, 4096)}
    assert int8.options().batch_size is None and dataclasses.replace(int8, batch_size=4).options().batch_size == 4
    # Against another precision, the precision is the difference (not a plan only one side has).
    assert int8.differences(BASE) == {"precision": ("int8", "float32")}


def test_json_round_trip_and_refusals():
    int8 = dataclasses.replace(BASE, precision="int8", batch_size=8, batch_positions=2048)
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


def test_under_int8_the_batch_plan_changes_vectors_and_the_space(make_checkpoint):
    """Why int8 records its batch plan: each call's input range is shared by the texts of the call."""
    directory, _ = make_checkpoint("int8")
    texts = ["a short one", "and a much longer text with many more words in it than the first one had"]

    def batching_changes(embedder):
        together, alone = embedder.embed_words(texts), embedder.embed_words(texts, batch_size=1)
        vectors = np.stack([w.vector for words in together for w in words])
        change = max(np.abs(a.vector - b.vector).max() for x, y in zip(together, alone) for a, b in zip(x, y))
        return change, encoder_bound(embedder.config, vectors)

    change, bound = batching_changes(BertEmbedder.from_checkpoint(directory))
    assert change <= bound  # float32: other calls round differently, nothing more
    int8 = BertEmbedder.from_checkpoint(directory, precision="int8")
    change, bound = batching_changes(int8)
    assert change > 100 * bound  # int8: the range of the call's input is another
    assert int8.space(EmbeddingOptions(batch_size=1)).differences(int8.space()) == {"batch_size": (1, None)}
    assert int8.space().batch_positions == MAX_BATCH_POSITIONS
    shutil.rmtree(directory)  # the space is a value: it outlives the checkpoint folder
    assert int8.space().precision == "int8"


def test_the_space_and_the_corpus_format_import_without_tensorflow_beam_or_faiss():
    import subprocess
    import sys

    code = ("import sys, bert_tf.embed.space, bert_tf.embed.corpus_format; "
            "print(sorted(m for m in ('apache_beam', 'faiss', 'tensorflow', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
