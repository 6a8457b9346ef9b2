"""The SavedModel's encoder signatures refuse inputs they would get wrong; export targets fail in one line.

One tiny export for the whole module (max_position_embeddings 64, vocab 200, 2 type ids),
loaded in this process as a serving client would load it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf.model.config import BertConfig
from bert_tf.serve.export import export_saved_model
from bert_tf.testing import tiny_vocab, write_random_checkpoint

CONFIG = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)
# A folder nobody can create anything in, even root: sysfs refuses new entries.
READ_ONLY = Path("/sys/kernel")


def _unique_vocab(size):
    # FastWordpieceTokenizer rejects the duplicates tiny_vocab has ("a" as character and word).
    vocab = list(dict.fromkeys(tiny_vocab(size)))
    return vocab + [f"[extra{i}]" for i in range(size - len(vocab))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    write_random_checkpoint(directory, CONFIG, vocab=_unique_vocab(CONFIG.vocab_size))
    return directory


@pytest.fixture(scope="module")
def model(checkpoint, tmp_path_factory):
    import tensorflow_text  # noqa: F401 - registers the tokenizer ops the SavedModel uses

    path = export_saved_model(checkpoint, tmp_path_factory.mktemp("export") / "bert")
    return tf.saved_model.load(str(path))


def _inputs(batch, seq, *, mask_shape=None, types_shape=None):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, CONFIG.vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones(mask_shape or (batch, seq), np.int32)
    types = np.zeros(types_shape or (batch, seq), np.int32)
    return {"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask), "input_type_ids": tf.constant(types)}


def test_well_formed_inputs_still_encode_up_to_the_position_limit(model):
    inputs = _inputs(2, CONFIG.max_position_embeddings)
    out = model.signatures["encode"](**inputs)
    assert out["sequence_output"].shape == (2, 64, 32) and out["pooled_output"].shape == (2, 32)
    # The TF Hub-style call runs the same checked encoder: identical numbers.
    hub = model(inputs, training=False)
    np.testing.assert_array_equal(hub["sequence_output"].numpy(), out["sequence_output"].numpy())


@pytest.mark.parametrize("name, shape", [("input_mask", (2, 1)), ("input_mask", (2, 5)),
                                         ("input_mask", (1, 7)), ("input_type_ids", (2, 6))])
def test_an_input_of_another_shape_is_refused_with_both_shapes(model, name, shape):
    # A [2, 1] mask used to broadcast: the result equalled "no padding" whatever the mask said.
    inputs = _inputs(2, 7, **{("mask_shape" if name == "input_mask" else "types_shape"): shape})
    message = rf"{name} has shape \[{shape[0]} {shape[1]}\] but input_word_ids has shape \[2 7\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures["encode"](**inputs)


@pytest.mark.parametrize("shape", [(2, 1), (1, 7)])
def test_the_tf_hub_call_refuses_a_mask_that_would_broadcast(model, shape):
    # Shapes that cannot broadcast already fail in the call's own shape inference;
    # these two broadcast, and the mask was silently ignored.
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"input_mask has shape \[{shape[0]} {shape[1]}\]"):
        model(_inputs(2, 7, mask_shape=shape), training=False)


def test_a_sequence_longer_than_the_position_table_names_both_lengths(model):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="input_word_ids has 65 positions; this model takes at most 64") as error:
        model.signatures["encode"](**_inputs(1, 65))
    assert "strided_slice" not in str(error.value).split("assertion failed")[1].split("\n")[0]


@pytest.mark.parametrize("name, value, message", [
    ("input_word_ids", 200, r"input_word_ids holds values from \d+ to 200; this model takes 0 to 199"),
    ("input_word_ids", -1, "input_word_ids holds values from -1 to"),
    ("input_type_ids", 2, "input_type_ids holds values from 0 to 2; this model takes 0 to 1"),
    ("input_mask", 2, "input_mask holds values from 1 to 2; it takes 1 for a real token and 0 for padding"),
])
def test_values_outside_the_tables_are_refused(model, name, value, message):
    # On a GPU tf.gather returns zeros for an id past the table instead of failing.
    inputs = _inputs(2, 7)
    changed = inputs[name].numpy()
    changed[1, 3] = value
    inputs[name] = tf.constant(changed)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures["encode"](**inputs)


# ---------------------------------------------------------------------- export targets


def test_out_pointing_at_a_file_is_one_clear_error_before_any_work(checkpoint, tmp_path, capsys):
    from bert_tf.cli import main

    out = tmp_path / "notes.txt"
    out.write_text("mine")
    with pytest.raises(FileExistsError, match=f"cannot create {out}/1: {out} is a file, not a folder"):
        export_saved_model(checkpoint, out)
    assert out.read_text() == "mine"

    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bert-tf: error: cannot create") and err.count("\n") == 1 and "Errno" not in err


@pytest.mark.skipif(not os.access("/sys/kernel", os.F_OK), reason="needs sysfs as a read-only place")
def test_read_only_export_target_is_one_clear_error(checkpoint, tmp_path, capsys):
    from bert_tf.cli import main

    out = READ_ONLY / "bert_tf_test_export"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--max-seq-length", "12"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bert-tf: error: cannot create {out}") and err.count("\n") == 1
    assert "choose a folder you can write to" in err
    assert not out.exists()
