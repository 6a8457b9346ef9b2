"""Hugging Face safetensors to Google's layout."""

import json
import shutil

import numpy as np
import pytest

from bert_tf.model.checkpoint import load_encoder
from bert_tf.model.convert import ConversionError, convert_hf_checkpoint
from bert_tf.model.tf1_format import checkpoint_shapes


def test_converted_minilm_is_a_google_layout_checkpoint(minilm_checkpoint, minilm_hf_dir):
    from safetensors.numpy import load_file

    shapes = checkpoint_shapes(minilm_checkpoint / "bert_model.ckpt")
    assert len(shapes) == 5 + 16 * 6 + 2
    assert shapes["bert/encoder/layer_5/intermediate/dense/kernel"] == (384, 1536)  # [in, out]
    original = load_file(str(minilm_hf_dir / "model.safetensors"))
    _, encoder = load_encoder(minilm_checkpoint)
    np.testing.assert_array_equal(encoder.blocks[2].query.kernel.numpy(),
                                  original["encoder.layer.2.attention.self.query.weight"].T)
    assert (minilm_checkpoint / "vocab.txt").read_bytes() == (minilm_hf_dir / "vocab.txt").read_bytes()
    config = json.loads((minilm_checkpoint / "bert_config.json").read_text())
    assert sorted(config) == sorted(["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "intermediate_size", "hidden_act", "hidden_dropout_prob",
                                     "attention_probs_dropout_prob", "max_position_embeddings",
                                     "type_vocab_size", "initializer_range"])


def fake_hf_dir(tmp_path, minilm_hf_dir, *, config_changes=None, drop=None):
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "hf"
    src.mkdir()
    shutil.copyfile(minilm_hf_dir / "vocab.txt", src / "vocab.txt")
    config = json.loads((minilm_hf_dir / "config.json").read_text())
    config.update(config_changes or {})
    (src / "config.json").write_text(json.dumps(config))
    tensors = load_file(str(minilm_hf_dir / "model.safetensors"))
    for name in drop or []:
        del tensors[name]
    save_file(tensors, str(src / "model.safetensors"))
    return src


def test_bad_sources_fail_cleanly_and_leave_nothing(tmp_path, minilm_hf_dir):
    out = tmp_path / "out" / "model"
    with pytest.raises(ConversionError, match="missing config.json, model.safetensors"):
        convert_hf_checkpoint(tmp_path, out)
    src = fake_hf_dir(tmp_path, minilm_hf_dir, drop=["encoder.layer.3.output.dense.weight", "pooler.dense.bias"])
    with pytest.raises(ConversionError) as err:
        convert_hf_checkpoint(src, out)
    assert "encoder.layer.3.output.dense.weight" in str(err.value) and "pooler.dense.bias" in str(err.value)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("changes, message", [
    ({"position_embedding_type": "relative_key"}, "absolute"),
    ({"layer_norm_eps": 1e-5}, "1e-12"),
    ({"model_type": "roberta"}, "not 'bert'"),
    ({"hidden_size": 768}, "expected"),
])
def test_configs_google_bert_cannot_express_are_refused(tmp_path, minilm_hf_dir, changes, message):
    src = tmp_path / "hf"
    src.mkdir()
    for name in ("vocab.txt", "model.safetensors"):
        (src / name).symlink_to(minilm_hf_dir / name)
    config = json.loads((minilm_hf_dir / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, **changes}))
    with pytest.raises(ConversionError, match=message):
        convert_hf_checkpoint(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force_and_only_ours_is_replaced(tmp_path, minilm_hf_dir):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for force in (False, True):  # a folder bert_tf did not write is never replaced
        with pytest.raises(FileExistsError, match="is a folder bert_tf did not write"):
            convert_hf_checkpoint(minilm_hf_dir, out, force=force)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (out / "keep.txt").unlink()
    convert_hf_checkpoint(minilm_hf_dir, out)  # an empty folder is used
    with pytest.raises(FileExistsError, match="already exists .*pass force=True"):
        convert_hf_checkpoint(minilm_hf_dir, out)
    first = (out / "MANIFEST.json").read_text()
    convert_hf_checkpoint(minilm_hf_dir, out, force=True)  # ours: replaced
    assert (out / "bert_model.ckpt.index").exists() and json.loads(first)["files"].keys() == \
        json.loads((out / "MANIFEST.json").read_text())["files"].keys()
    assert (out.stat().st_mode & 0o777) != 0o700
