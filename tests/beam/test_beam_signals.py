"""Ctrl-C and SIGTERM during an in-process `beam-embed`: one line, the shell's exit status, nothing published."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = "the bank of the river holds water money loan stone tree house".split()


@pytest.mark.slow
@pytest.mark.parametrize("signum, status, said", [(signal.SIGINT, 130, "bert-tf: interrupted"),
                                                  (signal.SIGTERM, 143, "bert-tf: stopped by SIGTERM")])
def test_a_signal_during_an_in_process_run_is_one_line(tmp_path, beam_checkpoint, signum, status, said):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(30))
                                for i in range(100_000)) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.Popen([sys.executable, "-m", "bert_tf", "beam-embed", "--input", str(corpus), "--output",
                            str(out / "v"), "--checkpoint", str(beam_checkpoint)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not os.listdir(out) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the staging folder: the pipeline has started
        time.sleep(3)  # into the embedding
        assert run.poll() is None, "the run ended before it could be interrupted"
        run.send_signal(signum)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == status, err[-2000:]
    assert err.strip().splitlines() == [said]
    assert not [n for n in os.listdir(out) if not n.startswith(".")]  # nothing under the final names
