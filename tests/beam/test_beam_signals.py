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


#: A Beam worker process after the terminal's Ctrl-C: its main thread has ended and Python's exit has shut the
#: thread pools down, while a worker thread still runs a batch (the embedder runs its calls on a pool).
DYING_WORKER = """
import sys, threading, time
from bert_tf.beam.handler import BertModelHandler, EmbedSpec
handler = BertModelHandler(EmbedSpec(sys.argv[1]))
model = handler.load_model()
model.streams = 2  # its calls on a thread pool, as on any machine of two cores or more
batch = [(str(i), "the bank of the river was muddy after the rain " * (1 + i % 9)) for i in range(120)]
assert len(list(handler.run_inference(batch, model))) == len(batch)  # while the process runs
def late():
    threading.main_thread().join()
    time.sleep(0.5)  # Python's exit has now shut the thread pools down
    try:
        out = list(handler.run_inference(batch, model))
        print("RESULT returned", len(out), flush=True)
    except BaseException as e:
        print("RESULT raised", type(e).__name__, flush=True)
threading.Thread(target=late).start()
"""


@pytest.mark.slow
def test_a_batch_in_an_ending_worker_process_fails_the_bundle_and_is_not_retried_text_by_text(beam_checkpoint):
    """A Ctrl-C during `beam-embed --direct_running_mode multi_processing` reaches the worker processes too.
    Before, a worker's batch failed there ("cannot schedule new futures after shutdown"), was logged as a bad
    batch above "bert-tf: interrupted" and its texts retried one at a time in a process that was going away;
    now the calls' pool raises `interrupts.Exiting`, which unwinds like Ctrl-C."""
    proc = subprocess.run([sys.executable, "-c", DYING_WORKER, str(beam_checkpoint)], capture_output=True,
                          text=True, timeout=300)
    assert "RESULT raised Exiting" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "one at a time" not in proc.stderr, proc.stderr[-3000:]
