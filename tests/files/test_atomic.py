"""Folders appear complete or not at all, one writer at a time, and no debris."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bert_tf.files.atomic import remove_leftovers, staged_directory, target_lock


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


# --------------------------------------------------------------------------- one writer, no debris

REPO = Path(__file__).resolve().parents[2]

# A writer that stages `target`, writes a file, says where, and waits to be killed.
_WRITER = """
import sys, time
from bert_tf.files.atomic import staged_directory
with staged_directory(sys.argv[1]) as tmp:
    (tmp / "half.bin").write_bytes(b"x" * 1000)
    print(tmp, flush=True)
    time.sleep(60)
"""


def _start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    staging = Path(writer.stdout.readline().strip())
    assert staging.is_dir() and staging.parent == target.parent
    return writer, staging


def test_a_killed_writers_staging_folder_is_removed_by_the_next_run(tmp_path):
    target = tmp_path / "model"
    writer, staging = _start_writer(target)
    writer.send_signal(signal.SIGKILL)  # no Python cleanup at all
    writer.wait(timeout=10)
    assert staging.exists(), "SIGKILL leaves the staging folder"

    with staged_directory(target) as tmp:
        (tmp / "a.txt").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "a.txt").read_text() == "whole"


def test_a_live_writers_staging_folder_is_left_alone_and_waited_for(tmp_path):
    target = tmp_path / "model"
    writer, staging = _start_writer(target)
    try:
        done = threading.Event()

        def second():
            with staged_directory(target, replace=True) as tmp:
                (tmp / "b.txt").write_text("second")
            done.set()

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        time.sleep(1.0)
        assert not done.is_set(), "the second writer waits for the first"
        assert (staging / "half.bin").exists(), "a live writer's staging folder is never removed"
    finally:
        writer.send_signal(signal.SIGTERM)  # dies without cleanup: its lock goes with it
        writer.wait(timeout=10)
    thread.join(timeout=20)
    assert done.is_set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "b.txt").read_text() == "second"


def test_an_interrupted_replace_puts_the_old_target_back(tmp_path):
    target = tmp_path / "model"
    # What a writer killed between its two renames leaves: the old target moved aside, no target.
    aside = tmp_path / ".model.abcd1234.old"
    aside.mkdir()
    (aside / "keep.txt").write_text("the user's model")
    with pytest.raises(FileExistsError):
        with staged_directory(target):
            pass
    assert (target / "keep.txt").read_text() == "the user's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_leftovers_of_other_targets_are_not_touched(tmp_path):
    for name in (".model.v2.abcd1234.tmp", ".other.abcd1234.tmp", ".model.abcd1234.tmp"):
        (tmp_path / name).mkdir()
    with target_lock(tmp_path / "model"):
        assert [p.name for p in remove_leftovers(tmp_path / "model")] == [".model.abcd1234.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.v2.abcd1234.tmp", ".other.abcd1234.tmp"]


def test_the_lock_is_reentrant_in_a_thread_exclusive_between_threads_and_leaves_no_file(tmp_path):
    target = tmp_path / "model"
    order = []

    def other():
        with target_lock(target, on_wait=lambda: order.append("waiting")):
            order.append("other")

    with target_lock(target):
        with target_lock(target):  # the same thread again: no deadlock
            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.3)
            order.append("first")
    thread.join(timeout=10)
    assert order == ["waiting", "first", "other"]
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_and_a_read_only_parent_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt is a file, not a folder"):
        with staged_directory(tmp_path / "notes.txt" / "model"):
            pass
    with pytest.raises(FileExistsError, match="is a file, not a folder; force=True replaces folders only"):
        with staged_directory(tmp_path / "notes.txt", replace=True):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"
    if os.path.isdir("/sys/kernel"):  # sysfs refuses new entries even to root
        with pytest.raises(PermissionError, match=r"cannot write in /sys/kernel .*choose a folder you can write to"):
            with staged_directory("/sys/kernel/bert_tf_test"):
                pass
