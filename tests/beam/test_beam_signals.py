"""Ctrl-C and SIGTERM during an in-process `bert-tf beam-embed`: one line, 130/143, nothing published."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "bert-tf: interrupted"),
                                                (signal.SIGTERM, 143, "bert-tf: stopped by SIGTERM")],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_pipeline_is_one_line_and_leaves_nothing(tmp_path, beam_checkpoint, signum, code, line):
    corpus = tmp_path / "big.txt"
    corpus.write_text("The bank of the river was muddy after the rain.\n" * 60000)
    prefix = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "bert_tf", "beam-embed", "--input", str(corpus),
                                "--output", str(prefix), "--checkpoint", str(beam_checkpoint)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                               # As from a terminal: a shell's background job (`make test &`) starts with
                               # SIGINT ignored, which the run would rightly keep ignoring.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(str(tmp_path / ".out.bert-tf-*")) and process.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # the staging folder exists: the pipeline is starting or running
        assert process.poll() is None, "the run ended before the signal; make the corpus bigger"
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, err.decode()[-2000:]
    assert err.decode().strip().splitlines() == [line]
    assert sorted(os.listdir(tmp_path)) == ["big.txt"]  # no final name, no staging folder
