"""The `precision` option: which compute dtype `"auto"` picks from the CPU flags, and the warnings."""

import logging

import numpy as np
import pytest

from bert_tf import logs
from bert_tf.model import hardware as hw
from bert_tf.model import precision as prec
from bert_tf.model.hardware import Hardware, detect_hardware
from bert_tf.model.precision import resolve_precision

ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})


@pytest.fixture(autouse=True)
def no_gpu_and_fresh_warnings(monkeypatch):
    monkeypatch.setattr(hw, "gpu_capability", lambda: None)
    monkeypatch.setattr(logs, "_said", set())


@pytest.mark.parametrize("flags, environ, native", [
    (ZEN4, {}, True),
    (SAPPHIRE_RAPIDS, {}, True),
    (AVX2_ONLY, {}, False),
    (frozenset(), {}, False),
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # oneDNN held below its bfloat16 kernels
    (ZEN4, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, True),
    (ZEN4, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False),  # Eigen's kernels: no native bfloat16
])
def test_auto_follows_the_cpu_flags_and_onednn(flags, environ, native):
    hardware = detect_hardware(flags, environ)
    assert hardware.native_bf16 is native
    assert resolve_precision("auto", hardware) == ("bfloat16" if native else "float32")


def test_the_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
                       "processor\t: 1\nflags\t\t: fpu\n", encoding="utf-8")
    assert hw.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert hw.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_auto_says_once_what_it_chose_and_why(caplog):
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        for _ in range(3):
            assert resolve_precision("auto", detect_hardware(AVX2_ONLY, {})) == "float32"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "float32" in lines[0] and "AVX512_BF16" in lines[0]


def test_bfloat16_without_native_support_warns_once_naming_the_missing_feature(caplog):
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        for _ in range(3):
            assert resolve_precision("bfloat16", detect_hardware(AVX2_ONLY, {})) == "bfloat16"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "slower than float32" in warnings[0] and "AVX512_BF16" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert resolve_precision("bfloat16", detect_hardware(ZEN4, {})) == "bfloat16"
    assert not caplog.records  # native: nothing to say


@pytest.mark.parametrize("speedup, chosen", [(0.55, "float32"), (1.05, "float32"), (1.8, "bfloat16")])
def test_auto_keeps_float32_where_native_bfloat16_measures_slower(caplog, speedup, chosen):
    # An Intel Xeon with AMX hidden lists AVX512_BF16 and runs bfloat16 matmuls at about half its float32
    # speed; Zen 4 at about 1.8x. bfloat16 costs fidelity, so it must be faster by AUTO_BFLOAT16_MIN_SPEEDUP.
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert resolve_precision("auto", detect_hardware(ZEN4, {}), bfloat16_speedup=speedup) == chosen
    [line] = [r.getMessage() for r in caplog.records]
    assert f"chose {chosen}" in line and f"{speedup:.2f}x the float32 speed" in line


def test_bfloat16_that_measures_slower_warns_once_and_still_runs(caplog):
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        for _ in range(3):
            assert resolve_precision("bfloat16", detect_hardware(ZEN4, {}), bfloat16_speedup=0.55) == "bfloat16"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "slower than float32" in warning and "0.55x" in warning and "precision='auto'" in warning
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert resolve_precision("bfloat16", detect_hardware(ZEN4, {}), bfloat16_speedup=1.8) == "bfloat16"
    assert not caplog.records


def test_bfloat16_not_faster_by_enough_for_auto_is_not_called_slower(caplog):
    """From 1.0x to AUTO_BFLOAT16_MIN_SPEEDUP "auto" keeps float32, but bfloat16 asked for by name is
    not slower there: no warning says it is."""
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert resolve_precision("bfloat16", detect_hardware(ZEN4, {}), bfloat16_speedup=1.05) == "bfloat16"
        assert resolve_precision("auto", detect_hardware(ZEN4, {}), bfloat16_speedup=1.05) == "float32"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_this_machine_is_timed_only_when_its_cpu_has_native_bfloat16(monkeypatch):
    timed = []
    monkeypatch.setattr(prec, "bfloat16_matmul_speedup", lambda: timed.append(1) or 0.5)
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": ZEN4)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert resolve_precision("auto") == "float32" and timed == [1]
    assert resolve_precision("float32") == "float32" and timed == [1]
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": AVX2_ONLY)
    assert resolve_precision("auto") == "float32" and timed == [1]  # no native bfloat16: nothing to time


def test_the_speed_probe_times_both_dtypes_once_per_process():
    hw.bfloat16_matmul_speedup.cache_clear()
    speedup = hw.bfloat16_matmul_speedup()
    if hw.bfloat16_has_no_kernel() is not None:  # ONEDNN_MAX_CPU_ISA=AVX2 on AVX-512: bfloat16 would abort
        assert speedup == 0.0
    else:
        assert np.isfinite(speedup) and 0.05 < speedup < 20  # bfloat16 emulated or native, never absurd
    assert hw.bfloat16_matmul_speedup() is speedup  # cached: one measurement per process


def test_on_a_gpu_auto_picks_bfloat16_or_float16_by_compute_capability():
    assert resolve_precision("auto", Hardware(True, (8, 0), "a GPU")) == "bfloat16"
    assert resolve_precision("auto", Hardware(False, (7, 5), "a GPU")) == "float16"


@pytest.mark.parametrize("bad", ["bf16", "BFLOAT16", None, 16])
def test_an_unknown_precision_names_the_choices(bad):
    with pytest.raises(ValueError, match="precision must be one of 'float32', 'bfloat16', 'float16', 'int8', 'int8-litert', 'auto'"):
        resolve_precision(bad)


def test_auto_reaches_the_embedder(make_checkpoint, monkeypatch):
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # what detection reads (CI also runs this file with 0)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": AVX2_ONLY)
    assert BertEmbedder.from_checkpoint(directory, precision="auto").precision == "float32"
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": ZEN4)
    monkeypatch.setattr(prec, "bfloat16_matmul_speedup", lambda: 1.8)  # Zen 4's, whatever this CPU's is
    embedder = BertEmbedder.from_checkpoint(directory, precision="auto")
    assert embedder.precision == "bfloat16" and embedder.space().precision == "bfloat16"
    # The mixed encoder keeps its dense kernels in bfloat16 and nothing else.
    block = embedder.encoder.blocks[0]
    assert str(block.query.kernel.dtype) == "bfloat16" and str(block.output_dense.bias.dtype) == "bfloat16"
    assert str(block.attention_layer_norm.gamma.dtype) == "float32"
    assert str(embedder.encoder.embeddings.word_embeddings.dtype) == "float32"


def test_an_unknown_precision_is_refused_before_the_model_loads(tmp_path):
    from bert_tf import BertEmbedder

    with pytest.raises(ValueError, match="precision must be one of"):
        BertEmbedder.from_checkpoint(tmp_path / "nothing-here", precision="half")


def test_the_mixed_encoder_returns_float32_close_to_float32(make_checkpoint):
    """On a tiny random model: every output float32, within bfloat16 rounding (relative 2^-8 per
    rounding, a few roundings deep) of the float32 encoder; and the float32 graph is untouched."""
    from bert_tf.model.checkpoint import load_encoder

    directory, _ = make_checkpoint()
    _, e32 = load_encoder(directory)
    _, e16 = load_encoder(directory, compute_dtype="bfloat16")
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 90, (3, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}
    a, b = e32(inputs), e16(inputs)
    for key in ("sequence_output", "pooled_output", "embedding_output"):
        assert b[key].dtype == np.float32, key
    x, y = a["sequence_output"].numpy()[mask == 1], b["sequence_output"].numpy()[mask == 1]
    cos = (x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1)
    assert cos.min() > 0.99
    assert not np.array_equal(x, y)  # it really computed in bfloat16
    np.testing.assert_array_equal(a["embedding_output"].numpy(), b["embedding_output"].numpy())  # float32 there


def test_the_cli_shows_what_auto_chose_without_verbose_but_not_other_info_lines(make_checkpoint, monkeypatch,
                                                                                 capsys):
    from bert_tf.cli import main

    directory, _ = make_checkpoint()
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": AVX2_ONLY)
    assert main(["embed", "--checkpoint", str(directory), "--precision", "auto", "a b c"]) == 0
    err = capsys.readouterr().err
    assert "bert-tf: precision='auto' chose float32: this CPU has no native bfloat16" in err
    assert "restored" not in err  # the load report is an info line for --verbose


@pytest.mark.parametrize("environ, refused", [
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),  # oneDNN has no bfloat16 kernel below AVX512_CORE: it would abort
    ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, False),  # emulated by oneDNN, slower, correct
    ({"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}, False),  # TensorFlow's own kernels
    ({}, False),
])
def test_bfloat16_is_refused_where_onednn_would_abort(environ, refused):
    if refused:
        with pytest.raises(ValueError, match="ONEDNN_MAX_CPU_ISA=AVX2 .* unset ONEDNN_MAX_CPU_ISA"):
            prec.check_bfloat16_runs(ZEN4, environ)
    else:
        prec.check_bfloat16_runs(ZEN4, environ)
    prec.check_bfloat16_runs(AVX2_ONLY, environ)  # a real AVX2 CPU: TensorFlow's emulated kernels run


SAPPHIRE_RAPIDS_FP16 = SAPPHIRE_RAPIDS | {"avx512bw", "avx512_fp16", "amx_fp16"}
ZEN5 = ZEN4 | {"avx512bw"}  # AVX-512 and AVX512_BF16, no AVX512_FP16


def test_float16_on_a_cpu_without_avx512_fp16_warns_once_naming_it(monkeypatch, caplog):
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": ZEN5)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        for _ in range(3):
            assert resolve_precision("float16", detect_hardware(ZEN5, {})) == "float16"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "AVX512_FP16" in warnings[0] and "slower than float32" in warnings[0]


def test_float16_where_onednn_computes_it_says_nothing(monkeypatch, caplog):
    monkeypatch.setattr(hw, "cpu_flags", lambda path="/proc/cpuinfo": SAPPHIRE_RAPIDS_FP16)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    with caplog.at_level(logging.INFO, logger="bert_tf"):
        assert resolve_precision("float16", detect_hardware(SAPPHIRE_RAPIDS_FP16, {})) == "float16"
    assert not caplog.records


@pytest.mark.parametrize("flags, environ, refused", [
    # TensorFlow hands float16 to oneDNN on an AVX512_FP16 CPU; held below its float16 ISA, oneDNN crashes
    # (a segmentation fault with TensorFlow 2.21 under AVX2, AVX512_CORE and AVX512_CORE_BF16).
    (SAPPHIRE_RAPIDS_FP16, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
    (SAPPHIRE_RAPIDS_FP16, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, True),
    (SAPPHIRE_RAPIDS_FP16, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16"}, False),
    (SAPPHIRE_RAPIDS_FP16, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, False),
    (SAPPHIRE_RAPIDS_FP16, {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}, False),
    (SAPPHIRE_RAPIDS_FP16, {}, False),
    (ZEN5, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # TensorFlow's own float16 kernels: oneDNN is not asked
])
def test_float16_is_refused_where_onednn_would_crash(flags, environ, refused):
    if refused:
        with pytest.raises(ValueError, match="precision='float16' cannot run with ONEDNN_MAX_CPU_ISA=.* unset"):
            prec.check_float16_runs(flags, environ)
    else:
        prec.check_float16_runs(flags, environ)
