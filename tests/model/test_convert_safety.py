"""`convert` never destroys its input or a user's file, and a damaged safetensors file is one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bert_tf.model.config import BertConfig
from bert_tf.model.convert import ConversionError, convert_hf_checkpoint
from bert_tf.testing import google_to_hf_weights, random_weights, tiny_vocab

CONFIG = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=64, type_vocab_size=2)
READ_ONLY = Path("/sys/kernel")  # sysfs refuses new entries even to root


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def hf_dir(tmp_path) -> Path:
    """A tiny Hugging Face BERT folder: config.json, model.safetensors, vocab.txt."""
    from safetensors.numpy import save_file

    directory = tmp_path / "hf"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({**CONFIG.to_dict(), "model_type": "bert",
                                                       "layer_norm_eps": 1e-12}))
    save_file(google_to_hf_weights(random_weights(CONFIG), CONFIG.num_hidden_layers),
              str(directory / "model.safetensors"))
    (directory / "vocab.txt").write_text("\n".join(tiny_vocab(CONFIG.vocab_size)) + "\n")
    return directory


@pytest.mark.parametrize("out", ["same", "link", "parent", "trailing-slash"])
def test_an_output_that_is_or_holds_the_input_is_refused_even_with_force(hf_dir, tmp_path, out):
    before = _snapshot(hf_dir)
    if out == "same":
        out_dir = hf_dir
    elif out == "link":
        out_dir = tmp_path / "link"
        out_dir.symlink_to(hf_dir)
    elif out == "parent":
        out_dir = tmp_path
    else:
        out_dir = Path(str(hf_dir) + "/")
    with pytest.raises(ValueError, match=r"refusing to write .*: it (is|contains) the Hugging Face folder "
                                         r"being converted .*which replacing it would delete"):
        convert_hf_checkpoint(hf_dir, out_dir, force=True)
    assert _snapshot(hf_dir) == before


def test_the_cli_refuses_convert_h_h_force_in_one_line(hf_dir, capsys, monkeypatch):
    from bert_tf.cli import main

    before = _snapshot(hf_dir)
    monkeypatch.chdir(hf_dir.parent)
    assert main(["convert", "hf", "hf", "--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bert-tf: error: refusing to write hf: it is the Hugging Face folder")
    assert err.count("\n") == 1
    assert _snapshot(hf_dir) == before


def test_an_output_inside_the_input_is_written_and_the_input_kept(hf_dir):
    before = _snapshot(hf_dir)
    out = convert_hf_checkpoint(hf_dir, hf_dir / "google")
    assert (out / "bert_model.ckpt.index").is_file()
    after = _snapshot(hf_dir)
    assert {k: v for k, v in after.items() if not k.startswith("google/")} == before
    assert sorted(p.name for p in hf_dir.iterdir() if p.name.startswith(".")) == []


def test_force_does_not_replace_a_file(hf_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt is a file, not a folder"):
        convert_hf_checkpoint(hf_dir, notes, force=True)
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_safetensors_file_is_one_clear_error(hf_dir, tmp_path, capsys, damage):
    from bert_tf.cli import main

    weights = hf_dir / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"not safetensors " * 64, "empty": b""}[damage])
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=rf"{weights} is damaged or not a safetensors file .*download it again"):
        convert_hf_checkpoint(hf_dir, out)
    assert not out.exists()

    assert main(["convert", str(hf_dir), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bert-tf: error: {weights} is damaged") and err.count("\n") == 1


@pytest.mark.skipif(not READ_ONLY.is_dir(), reason="needs sysfs as a folder nobody can write in")
def test_a_read_only_output_folder_is_one_line(hf_dir, capsys):
    from bert_tf.cli import main

    out = READ_ONLY / "bert_tf_test_convert"
    with pytest.raises(PermissionError, match=f"cannot .*{READ_ONLY}.*choose a folder you can write to"):
        convert_hf_checkpoint(hf_dir, out)
    assert main(["convert", str(hf_dir), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bert-tf: error: cannot") and err.count("\n") == 1 and "Errno" not in err
    assert not os.path.exists(out)
