"""Restoring Google TF1 checkpoints: the table, strictness, and the clear errors."""

import os
import time

import numpy as np
import pytest

from bert_tf.model.checkpoint import (CheckpointError, checkpoint_table, google_variable_shapes,
                                load_encoder)
from bert_tf.model.config import BertConfig
from bert_tf.model.tf1_format import checkpoint_shapes, read_tensors, save_tf1_checkpoint
from tests.conftest import tiny_config

BERT_BASE = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def test_table_maps_every_google_name_to_one_distinct_keras_variable():
    from bert_tf.model.encoder import BertEncoder

    config = tiny_config(num_hidden_layers=3)
    table = checkpoint_table(config)
    encoder = BertEncoder(config)
    paths = {v.path: tuple(v.shape) for v in encoder.weights}
    assert len(table) == len(paths) == 5 + 16 * 3 + 2
    assert sorted(row.keras_path for row in table) == sorted(paths)
    for row in table:
        assert paths[row.keras_path] == row.shape, row


def test_restored_weights_equal_the_file(make_checkpoint):
    directory, weights = make_checkpoint()
    config, encoder, report = load_encoder(directory, return_report=True)
    values = {v.path: v.numpy() for v in encoder.weights}
    for row in checkpoint_table(config):
        np.testing.assert_array_equal(values[row.keras_path], weights[row.tf1_name])
    assert report.restored == len(weights)
    assert sorted(report.ignored)[0].startswith("cls/") and "global_step" in report.ignored
    # The prefix and a file name are accepted as well as the directory.
    load_encoder(directory / "bert_model.ckpt")
    load_encoder(directory / "bert_model.ckpt.index")


@pytest.mark.slow
def test_bert_base_shaped_checkpoint_has_199_tensors_and_restores_in_seconds(tmp_path):
    from bert_tf.testing import write_random_checkpoint

    weights = write_random_checkpoint(tmp_path, BERT_BASE, seed=1, vocab=[f"t{i}" for i in range(30522)])
    assert len(weights) == len(google_variable_shapes(BERT_BASE)) == 199
    start = time.perf_counter()
    config, encoder, report = load_encoder(tmp_path, return_report=True)
    seconds = time.perf_counter() - start
    assert report.restored == 199 and report.parameters == sum(w.size for w in weights.values())
    assert report.parameters > 108_000_000
    assert seconds < 20, f"restoring BERT-Base took {seconds:.1f} s"
    kernel = encoder.blocks[11].output_dense.kernel.numpy()
    np.testing.assert_array_equal(kernel, weights["bert/encoder/layer_11/output/dense/kernel"])


def _rewrite(directory, mutate):
    prefix = os.path.join(directory, "bert_model.ckpt")
    tensors = dict(read_tensors(prefix, checkpoint_shapes(prefix)))
    mutate(tensors)
    for f in os.listdir(directory):
        if f.startswith("bert_model.ckpt"):
            os.remove(os.path.join(directory, f))
    save_tf1_checkpoint(prefix, tensors)


def test_every_problem_is_listed_at_once(make_checkpoint):
    directory, _ = make_checkpoint()

    def mutate(t):
        del t["bert/encoder/layer_1/attention/self/key/bias"]
        del t["bert/pooler/dense/kernel"]
        t["bert/encoder/layer_0/output/dense/kernel"] = np.zeros((5, 5), np.float32)
        t["bert/encoder/layer_7/mystery"] = np.zeros(3, np.float32)
        t["bert/encoder/layer_0/output/dense/kernel/adam_m"] = np.zeros(3, np.float32)  # ignored

    _rewrite(directory, mutate)
    with pytest.raises(CheckpointError) as err:
        load_encoder(directory)
    message = str(err.value)
    for expected in ["2 missing", "layer_1/attention/self/key/bias", "bert/pooler/dense/kernel",
                     "layer_0/output/dense/kernel: expected [64, 32], found [5, 5]",
                     "1 unexpected", "layer_7/mystery", str(directory)]:
        assert expected in message
    assert "adam_m" not in message


def test_config_that_does_not_match_the_weights(make_checkpoint):
    directory, _ = make_checkpoint()
    tiny_config(hidden_size=64, num_attention_heads=4).to_json_file(directory / "bert_config.json")
    with pytest.raises(CheckpointError, match="wrong shape.*does bert_config.json belong"):
        load_encoder(directory)


def test_truncated_data_file_is_a_clear_error(make_checkpoint):
    directory, _ = make_checkpoint()
    data = directory / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_encoder(directory)


def test_corrupt_index_is_a_clear_error(make_checkpoint):
    directory, _ = make_checkpoint()
    (directory / "bert_model.ckpt.index").write_bytes(b"not a checkpoint index")
    with pytest.raises(CheckpointError, match="cannot read checkpoint index"):
        load_encoder(directory)


def test_empty_directory_says_what_is_missing_and_how_to_download(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_encoder(tmp_path)
    message = str(err.value)
    assert "bert_config.json" in message and "bert_model.ckpt.index" in message
    assert "bert-tf download uncased_L-12_H-768_A-12" in message  and "scripts/" not in message  # a pip user has no scripts/
    with pytest.raises(CheckpointError, match="does not exist"):
        load_encoder(tmp_path / "missing" / "bert_model.ckpt")


def test_nan_weights_are_refused(make_checkpoint):
    directory, _ = make_checkpoint()

    def mutate(t):
        t["bert/encoder/layer_0/intermediate/dense/bias"][3] = np.nan

    _rewrite(directory, mutate)
    with pytest.raises(CheckpointError, match="NaN"):
        load_encoder(directory)


def test_non_strict_logs_unexpected_tensors(make_checkpoint, caplog):
    directory, _ = make_checkpoint()
    _rewrite(directory, lambda t: t.__setitem__("output_weights", np.zeros((2, 32), np.float32)))
    with pytest.raises(CheckpointError, match="output_weights"):
        load_encoder(directory)
    load_encoder(directory, strict=False)
    assert "output_weights" in caplog.text
