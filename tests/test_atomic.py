"""Folders appear complete or not at all."""

import pytest

from bert_tf.atomic import staged_directory


def test_a_failure_inside_leaves_nothing(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with staged_directory(target) as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_success_renames_into_place_and_replace_swaps(tmp_path):
    target = tmp_path / "model"
    with staged_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.") and tmp.name.endswith(".tmp")
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one" and (target.stat().st_mode & 0o777) != 0o700
    with pytest.raises(FileExistsError, match="force"):
        with staged_directory(target):
            pass
    with staged_directory(target, replace=True) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no leftovers beside it
