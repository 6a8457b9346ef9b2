"""`beam-embed`'s progress: counted in this process and from worker processes, drawn on a terminal only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bert_tf.beam import progress


def test_format_progress_gives_counts_and_the_rate_of_texts_done():
    line = progress.format_progress({"read": 1234, "embedded": 1200, "dead_letters": 3}, 10.0)
    assert line == "1,234 lines read, 1,200 embedded, 3 dead letters, 120.3 texts/s"
    assert progress.format_progress(dict.fromkeys(progress.KINDS, 0), 0.0).endswith("0.0 texts/s")


def test_notes_count_only_while_counting_and_a_worker_line_adds_to_the_tally():
    progress.note("read", 5)  # not counting: nothing happens
    with progress.counting():
        assert progress.snapshot() == dict.fromkeys(progress.KINDS, 0)
        progress.note("read", 3)
        progress.note("embedded")
        assert progress.read_line(b"bert-tf-progress: dead_letters 2\n")
        assert not progress.read_line(b"bert-tf: wrote 2 text(s)\n")
        assert progress.snapshot() == {"read": 3, "embedded": 1, "dead_letters": 2}
    assert progress.ENV not in os.environ


def test_a_worker_process_writes_its_notes_to_stderr():
    code = "from bert_tf.beam import progress\nprogress.note('read', 4)\nprogress.note('embedded')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          env={**os.environ, progress.ENV: "1"})  # another process's id: a worker's view
    assert done.returncode == 0
    assert done.stderr.splitlines() == [b"bert-tf-progress: read 4", b"bert-tf-progress: embedded 1"]


def _corpus(tmp_path):
    (tmp_path / "in.txt").write_text("A mouse.\nThe bank.\n")
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "A cat."}\n{"id": 7, "text": "A dog."}\n')


@pytest.mark.slow
def test_nothing_but_the_summary_when_stderr_is_not_a_terminal(tmp_path, beam_checkpoint):
    _corpus(tmp_path)
    done = subprocess.run([sys.executable, "-m", "bert_tf", "beam-embed", "--input", "in.*", "--output", "corpus",
                           "--checkpoint", str(beam_checkpoint)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if "wrote 3 text(s)" in line]
    assert len(done.stderr.splitlines()) == 1 and "lines read" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]],
                         ids=["in_process", "two_workers"])
def test_progress_is_drawn_on_a_terminal(tmp_path, beam_checkpoint, workers):
    import pty

    _corpus(tmp_path)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "bert_tf", "beam-embed", "--input", "in.*", "--output",
                                    "corpus", "--checkpoint", str(beam_checkpoint), *workers],
                                   cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: every process holding it has ended
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=300) == 0, shown.decode(errors="replace")
    finally:
        os.close(leader)
    text = shown.decode()
    # The last drawing has the final counts (4 lines: 3 embedded, the numeric id a dead letter), then is cleared.
    assert "bert-tf: 4 lines read, 3 embedded, 1 dead letters" in text, text
    last = text.rstrip().split("\n")[-1]  # a terminal line: progress drawings, then the cleared summary
    assert "\r\x1b[Kbert-tf: wrote 3 text(s)" in last and last.rsplit("\r\x1b[K", 1)[1].startswith("bert-tf: wrote"), \
        repr(text[-300:])
