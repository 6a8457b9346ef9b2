"""TensorBoard Embedding Projector output (`bert_tf.index.projector`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tf.files.owned import PROJECTOR, PROJECTOR_MARKER, foreign_entries, kind_of
from bert_tf.index import projector
from bert_tf.index.projector import CONFIG_FILE, METADATA_FILE, VECTORS_FILE, write_projector


def _inputs(n=5, dim=7, seed=0):
    rng = np.random.default_rng(seed)
    # magnitudes 1 to 1e-6: the text must keep every float32 digit at each of them
    vectors = (rng.standard_normal((n, dim)) * 1e-3 ** rng.integers(0, 3, (n, dim))).astype(np.float32)
    metadata = [("bank", i % 2, f"Sentence {i} about the bank.") for i in range(n)]
    metadata[1] = ("bank", 1, "A tab\there, a newline\nthere,\r a backslash \\t and ünïcödé")
    return vectors, metadata


def _config_values(text: str) -> dict:
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "embeddings {" and lines[-1] == "}"
    return {key: json.loads(value) for key, value in (line.split(": ", 1) for line in lines[1:-1])}


def test_the_folder_holds_vectors_metadata_and_a_config_that_points_at_them(tmp_path):
    vectors, metadata = _inputs()
    out = write_projector(tmp_path / "proj", vectors, metadata, name='bank "senses"')
    assert sorted(p.name for p in out.iterdir()) == sorted([VECTORS_FILE, METADATA_FILE, CONFIG_FILE,
                                                            PROJECTOR_MARKER])
    assert kind_of(out) == PROJECTOR and foreign_entries(out, PROJECTOR) == []
    config = _config_values((out / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config == {"tensor_name": 'bank "senses"', "tensor_path": VECTORS_FILE, "metadata_path": METADATA_FILE}
    # the vectors read back exactly, as TensorBoard parses them (floats split on tabs)
    back = np.array([[float(v) for v in line.split("\t")]
                     for line in (out / VECTORS_FILE).read_text(encoding="utf-8").splitlines()], np.float32)
    np.testing.assert_array_equal(back, vectors)
    lines = (out / METADATA_FILE).read_text(encoding="utf-8").split("\n")
    assert lines[0] == "word\tsense\tsentence" and lines[-1] == ""
    assert len(lines) == len(vectors) + 2  # header, one line per vector, the final newline
    assert all(len(line.split("\t")) == 3 for line in lines[:-1])
    assert lines[2] == "bank\t1\tA tab\\there, a newline\\nthere,\\r a backslash \\\\t and ünïcödé"
    assert lines[1] == "bank\t0\tSentence 0 about the bank."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no staging folder, no lock left


def test_an_existing_folder_is_refused_unless_empty_or_ours_and_forced(tmp_path):
    vectors, metadata = _inputs()
    target = tmp_path / "proj"
    target.mkdir()
    write_projector(target, vectors, metadata, name="bank")  # an empty folder is used
    first = (target / VECTORS_FILE).read_text()
    with pytest.raises(FileExistsError, match="pass force=True"):
        write_projector(target, vectors[:2], metadata[:2], name="bank")
    assert (target / VECTORS_FILE).read_text() == first
    (target / "mine.txt").write_text("the user's")  # ours, but holding the user's file: never replaced
    with pytest.raises(FileExistsError, match="also holds 'mine.txt', which bert_tf did not write"):
        write_projector(target, vectors[:2], metadata[:2], name="bank", force=True)
    assert (target / "mine.txt").read_text() == "the user's" and (target / VECTORS_FILE).read_text() == first
    (target / "mine.txt").unlink()
    write_projector(target, vectors[:2], metadata[:2], name="bank", force=True)
    assert sorted(p.name for p in target.iterdir()) == sorted([VECTORS_FILE, METADATA_FILE, CONFIG_FILE,
                                                               PROJECTOR_MARKER])
    assert len((target / VECTORS_FILE).read_text().splitlines()) == 2
    user = tmp_path / "user"  # a folder the projector did not write, however forced
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is a folder bert_tf did not write"):
        write_projector(user, vectors, metadata, name="bank", force=True)
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt", "sub"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        write_projector(a_file, vectors, metadata, name="bank", force=True)
    assert a_file.read_text() == "x"


def test_a_failed_write_leaves_nothing_and_keeps_the_old_folder(tmp_path, monkeypatch):
    vectors, metadata = _inputs()
    old = tmp_path / "old"
    write_projector(old, vectors, metadata, name="old")
    before = {p.name: p.read_bytes() for p in old.iterdir()}

    def fail(value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(projector, "escape_field", fail)  # fails after the vectors file is written
    with pytest.raises(OSError, match="No space"):
        write_projector(tmp_path / "new", vectors, metadata, name="new")
    with pytest.raises(OSError, match="No space"):
        write_projector(old, vectors, metadata, name="new", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path):
    vectors, metadata = _inputs()
    cases = [(np.zeros((0, 3)), [], "bank", "non-empty"), (vectors[0], metadata[:1], "bank", r"\[n, dim\]"),
             (np.full((1, 2), np.nan), [("a", 0, "b")], "bank", "NaN"),
             (vectors, metadata[:-1], "bank", "one metadata row per vector"),
             (vectors[:1], [("bank", 0)], "bank", "each metadata row"),
             (vectors[:1], metadata[:1], "two\nlines", "name on one line"), (vectors[:1], metadata[:1], " ", "name")]
    for x, rows, name, message in cases:
        with pytest.raises(ValueError, match=message):
            write_projector(tmp_path / "proj", x, rows, name=name)
    assert list(tmp_path.iterdir()) == []
