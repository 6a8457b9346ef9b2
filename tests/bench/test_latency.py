"""bench.latency: the single-sentence latency driver's inputs, its summary, and an engine process's protocol."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import latency
from bench.context import ROOT


def test_the_sentences_are_a_short_query_and_one_of_40_words():
    assert len(latency.SENTENCES["short"].split()) <= 8
    assert len(latency.SENTENCES["40_words"].split()) == 40
    assert set(latency.DEFAULT_ENGINES) <= set(latency.ENGINES)
    assert {"bert_tf", "ov_f32_latency", "ort", "torch"} <= set(latency.DEFAULT_ENGINES)


def test_summary_in_milliseconds():
    times = list(np.arange(1, 101) / 1000)  # 1..100 ms
    s = latency.summarise(times)
    assert s["calls"] == 100 and s["min_ms"] == pytest.approx(1)
    assert s["p50_ms"] == pytest.approx(50.5) and s["p99_ms"] == pytest.approx(99.01)


def test_an_unknown_engine_is_refused(capsys):
    assert latency.main(["--engines", "bert_tf,nope"]) == 2
    assert "unknown engine(s) nope" in capsys.readouterr().err


def test_an_engine_without_its_packages_is_skipped_with_the_reason(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    assert latency.main(["--engines", "ov_f32_latency"]) == 2  # nothing else asked for: nothing to measure
    err = capsys.readouterr().err
    assert "ov_f32_latency skipped: missing openvino" in err and "requirements-bench.txt" in err


@pytest.mark.slow
def test_an_engine_process_answers_with_one_time_per_call(make_checkpoint, tmp_path):
    """The driver's protocol with a real engine: "ready" after loading, then N times for "SENTENCE N", on a
    stdout that nothing else writes to (TensorFlow's and the libraries' output go to stderr)."""
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    (tmp_path / "workload.json").write_text(json.dumps({"texts": ["hello"], "lengths": [3]}))
    (tmp_path / "meta.json").write_text(json.dumps({"checkpoint": str(directory)}))
    proc = subprocess.Popen([sys.executable, "-m", "bench.latency", "--serve", "bert_tf", "--workdir", str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)
    try:
        assert json.loads(proc.stdout.readline())["ready_s"] > 0
        proc.stdin.write("40_words 3\n")
        proc.stdin.flush()
        times = json.loads(proc.stdout.readline())
        assert len(times) == 3 and all(t > 0 for t in times)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""
    finally:
        proc.kill()
