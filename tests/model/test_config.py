import json

import pytest

from bert_tf.model.config import BertConfig, load_config

GOOGLE_BASE = {  # uncased_L-12_H-768_A-12/bert_config.json, verbatim
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
    "type_vocab_size": 2, "vocab_size": 30522,
}


def write(tmp_path, data):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_loads_googles_base_config(tmp_path):
    cfg = load_config(write(tmp_path, GOOGLE_BASE))
    assert cfg.hidden_size == 768 and cfg.num_hidden_layers == 12 and cfg.head_size == 64
    assert load_config(tmp_path) == cfg  # a directory works too
    cfg.to_json_file(tmp_path / "again.json")
    assert load_config(tmp_path / "again.json") == cfg


@pytest.mark.parametrize("change, field", [
    ({"hidden_size": 100}, "hidden_size"),  # 100 % 12 != 0
    ({"hidden_act": "sigmoid"}, "hidden_act"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"vocab_size": -5}, "vocab_size"),
    ({"intermediate_size": 3072.5}, "intermediate_size"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
    ({"type_vocab_size": True}, "type_vocab_size"),
])
def test_bad_values_name_the_file_and_field(tmp_path, change, field):
    path = write(tmp_path, {**GOOGLE_BASE, **change})
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_missing_key_is_named(tmp_path):
    data = dict(GOOGLE_BASE)
    del data["num_attention_heads"]
    with pytest.raises(ValueError, match="missing field.*num_attention_heads"):
        load_config(write(tmp_path, data))


def test_not_json_and_not_found(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(write(tmp_path, "{hidden_size: 768"))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.json")


def test_config_is_frozen():
    cfg = BertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2)
    with pytest.raises(Exception):
        cfg.hidden_size = 16
