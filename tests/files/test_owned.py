"""`--force` replaces only what bert_tf wrote: its folders are recognised, everything else is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bert_tf.files import owned
from bert_tf.files.atomic import staged_directory
from bert_tf.files.owned import CHECKPOINT, EXPORT, INDEX, PROJECTOR, check_replaceable, foreign_entries, holds, kind_of
from bert_tf.files.targets import command_line_spelling, force_hint


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder below `folder` with its bytes (None for a folder)."""
    return {p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def user_folder(path: Path) -> Path:
    """A folder of the user's: a file, and a subfolder with a file."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("the user's notes")
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path


def make_own(path: Path, kind: str) -> Path:
    """A folder as bert_tf's writer of `kind` leaves it (its record, and the files the record names)."""
    path.mkdir(parents=True)
    if kind == INDEX:
        (path / "words.npy").write_bytes(b"w")
        (path / owned.INDEX_MANIFEST).write_text(json.dumps(
            {"format": owned.INDEX_FORMAT, "version": 1, "files": {"words.npy": {"bytes": 1, "sha256": "x"}}}))
    elif kind == PROJECTOR:
        (path / "vectors.tsv").write_text("1\t2\n")
        (path / owned.PROJECTOR_MARKER).write_text(json.dumps({"format": owned.PROJECTOR_FORMAT,
                                                               "files": ["vectors.tsv"]}))
    elif kind == CHECKPOINT:
        (path / "vocab.txt").write_text("[PAD]\n")
        (path / owned.CHECKPOINT_MANIFEST).write_text(json.dumps({"files": {"vocab.txt": 6},
                                                                  "bert_tf_version": "0.1.0"}))
    else:
        (path / "assets").mkdir()
        (path / "variables").mkdir()
        (path / "saved_model.pb").write_bytes(b"pb")
        (path / owned.EXPORT_METADATA).write_text("{}")
    return path


@pytest.mark.parametrize("kind", [INDEX, PROJECTOR, CHECKPOINT, EXPORT])
def test_each_kind_is_recognised_by_its_record_and_nothing_else(tmp_path, kind):
    own = make_own(tmp_path / "own", kind)
    assert kind_of(own) == kind and foreign_entries(own, kind) == []
    check_replaceable(own, kind, force=True)  # ours, nothing else in it: replaceable

    assert kind_of(user_folder(tmp_path / "user")) is None
    assert kind_of(tmp_path / "missing") is None
    (own / "notes.txt").write_text("the user's")
    assert foreign_entries(own, kind) == ["notes.txt"]


def test_a_record_that_is_not_ours_is_not_recognised(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": "someone else's", "files": {}}))
    (folder / "MANIFEST.json").write_text("{not json")
    (folder / owned.PROJECTOR_MARKER).write_text(json.dumps({"format": owned.PROJECTOR_FORMAT}))  # no file list
    assert kind_of(folder) is None


@pytest.mark.parametrize("kind", [INDEX, PROJECTOR, CHECKPOINT, EXPORT])
def test_a_users_folder_is_refused_even_with_force(tmp_path, kind):
    folder = user_folder(tmp_path / "mine")
    before = snapshot(folder)
    with pytest.raises(FileExistsError, match=r"is a folder bert_tf did not write .*never replaced, even with "
                                              r"force=True"):
        check_replaceable(folder, kind, force=True)
    with pytest.raises(FileExistsError, match="is a folder bert_tf did not write"):
        with staged_directory(folder, replace=True, owner=kind) as staging:
            (staging / "new").write_text("x")
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging folder, no lock


def test_ours_holding_a_users_file_is_refused_and_another_kind_of_ours_too(tmp_path):
    index = make_own(tmp_path / "ix", INDEX)
    (index / "notes.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match=r"ix is an index written by bert_tf, but it also holds 'notes.txt', "
                                              "which bert_tf did not write; move that out first"):
        check_replaceable(index, INDEX, force=True)
    projector = make_own(tmp_path / "proj", PROJECTOR)
    with pytest.raises(FileExistsError, match="is an Embedding Projector folder written by bert_tf, not an index"):
        check_replaceable(projector, INDEX, force=True)


def test_ours_needs_force_and_the_message_names_the_users_spelling(tmp_path):
    index = make_own(tmp_path / "ix", INDEX)
    with pytest.raises(FileExistsError, match=r"ix already exists \(an index written by bert_tf\); pass force=True "
                                              "to replace it"):
        check_replaceable(index, INDEX, force=False)
    assert force_hint() == "force=True"
    with command_line_spelling():
        assert force_hint() == "--force"
        with pytest.raises(FileExistsError, match="pass --force to replace it"):
            check_replaceable(index, INDEX, force=False)
    assert force_hint() == "force=True"


def test_new_and_empty_folders_are_written_without_force(tmp_path):
    check_replaceable(tmp_path / "new", INDEX, force=False)
    (tmp_path / "empty").mkdir()
    with staged_directory(tmp_path / "empty", owner=PROJECTOR) as staging:
        (staging / "a.tsv").write_text("x")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["a.tsv"]


def test_a_file_is_never_replaced_by_a_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt is a file, not a folder"):
        check_replaceable(tmp_path / "notes.txt", INDEX, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["cwd", "dot", "parent", "root"])
def test_the_current_folder_its_parents_and_root_are_refused(tmp_path, monkeypatch, where):
    work = make_own(tmp_path / "ix", INDEX)  # even one of ours: it is where the user stands
    (work / "sub").mkdir()
    monkeypatch.chdir(work / "sub" if where == "parent" else work)
    target = {"cwd": work, "dot": Path("."), "parent": Path(".."), "root": Path("/")}[where]
    said = {"cwd": "the current folder", "dot": "the current folder", "parent": "a parent of the current folder",
            "root": "the root folder"}[where]
    with pytest.raises(ValueError, match=f"refusing to write an index to {target}: it is {said}"):
        check_replaceable(target, INDEX, force=True)
    assert (work / owned.INDEX_MANIFEST).is_file()


def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path):
    inner = make_own(tmp_path / "inner", INDEX)
    corpus = inner / "corpus.txt"
    corpus.write_text("a text\n")
    for target, how in ((inner, "contains"), (corpus, "is"), (tmp_path, "contains")):
        with pytest.raises(ValueError, match=f"refusing to write {target}: it {how} the input file"):
            check_replaceable(target, INDEX, force=True, inputs=[("the input file", corpus)])
    # An output inside the input's folder holds nothing of it.
    check_replaceable(tmp_path / "inner2", INDEX, force=True, inputs=[("the input file", corpus)])


def test_holds_sees_through_links(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert holds(tmp_path / "link", tmp_path / "a" / "b")
    assert holds(tmp_path / "a", tmp_path / "a" / "b" / "missing.txt")
    assert not holds(tmp_path / "a" / "b", tmp_path / "a")
    assert not holds(tmp_path / "missing", tmp_path / "missing" / "x")


def test_a_beam_run_manifest_is_recognised_by_its_fields():
    assert owned.is_run_manifest({"format_version": 1, "identity": {}, "files": ["x-00000-of-00001.parquet"]})
    assert not owned.is_run_manifest({"files": []})
    assert not owned.is_run_manifest(None)
