"""Google's released multilingual and Chinese `bert_config.json` files load, and save back unchanged."""

import json
import logging

import pytest

from bert_tf.model.config import BertConfig, load_config

# The files as released by Google (python2 `json.dumps(indent=2)`: sorted keys, a space before each
# line break), verbatim: multi_cased_L-12_H-768_A-12, multilingual_L-12_H-768_A-12 (uncased),
# chinese_L-12_H-768_A-12. They differ only in vocab_size.
_RELEASED = """{{
  "attention_probs_dropout_prob": 0.1, 
  "directionality": "bidi", 
  "hidden_act": "gelu", 
  "hidden_dropout_prob": 0.1, 
  "hidden_size": 768, 
  "initializer_range": 0.02, 
  "intermediate_size": 3072, 
  "max_position_embeddings": 512, 
  "num_attention_heads": 12, 
  "num_hidden_layers": 12, 
  "pooler_fc_size": 768, 
  "pooler_num_attention_heads": 12, 
  "pooler_num_fc_layers": 3, 
  "pooler_size_per_head": 128, 
  "pooler_type": "first_token_transform", 
  "type_vocab_size": 2, 
  "vocab_size": {vocab_size}
}}
"""
RELEASED = {
    "multi_cased_L-12_H-768_A-12": _RELEASED.format(vocab_size=119547),
    "multilingual_L-12_H-768_A-12": _RELEASED.format(vocab_size=105879),
    "chinese_L-12_H-768_A-12": _RELEASED.format(vocab_size=21128),
}
EXTRA_KEYS = {"directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
              "pooler_size_per_head", "pooler_type"}
BERT_KEYS = {"attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
             "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
             "num_hidden_layers", "type_vocab_size", "vocab_size"}


def write(tmp_path, name, text):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "bert_config.json").write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_googles_released_config_loads_and_round_trips(tmp_path, caplog, name):
    text = RELEASED[name]
    assert set(json.loads(text)) == BERT_KEYS | EXTRA_KEYS  # the test holds the released key set
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        cfg = load_config(write(tmp_path, name, text))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing unknown in them
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.type_vocab_size) == (
        json.loads(text)["vocab_size"], 768, 12, 2)
    assert cfg.pooler_type == "first_token_transform" and cfg.directionality == "bidi"
    assert cfg.to_dict() == json.loads(text)
    cfg.to_json_file(tmp_path / "saved.json")
    assert json.loads((tmp_path / "saved.json").read_text(encoding="utf-8")) == json.loads(text)
    assert load_config(tmp_path / "saved.json") == cfg


def test_a_config_without_the_extras_saves_only_the_eleven_bert_keys(tmp_path):
    cfg = BertConfig(vocab_size=30522)
    assert set(cfg.to_dict()) == BERT_KEYS
    cfg.to_json_file(tmp_path / "c.json")
    assert load_config(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("pooler_type", ["mean", "", "first_token"])
def test_a_pooler_this_package_does_not_build_is_an_error(tmp_path, pooler_type):
    data = json.loads(RELEASED["multi_cased_L-12_H-768_A-12"])
    data["pooler_type"] = pooler_type
    directory = write(tmp_path, "m", json.dumps(data))
    with pytest.raises(ValueError) as error:
        load_config(directory)
    message = str(error.value)
    assert str(directory) in message and "pooler_type" in message and "first_token_transform" in message
    with pytest.raises(ValueError, match="pooler_type"):
        BertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2, pooler_type=pooler_type)


@pytest.mark.parametrize("change, field", [
    ({"pooler_fc_size": "768"}, "pooler_fc_size"),
    ({"pooler_num_fc_layers": 0}, "pooler_num_fc_layers"),
    ({"directionality": 1}, "directionality"),
])
def test_extras_of_the_wrong_type_are_named(tmp_path, change, field):
    data = {**json.loads(RELEASED["chinese_L-12_H-768_A-12"]), **change}
    with pytest.raises(ValueError, match=field):
        load_config(write(tmp_path, "c", json.dumps(data)))


def test_other_unknown_keys_are_a_warning_that_names_them(tmp_path, caplog):
    data = {**json.loads(RELEASED["chinese_L-12_H-768_A-12"]), "zz_custom": 1, "layer_norm_eps": 1e-12}
    with caplog.at_level(logging.WARNING, logger="bert_tf"):
        cfg = load_config(write(tmp_path, "c", json.dumps(data)))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "bert_tf"]
    assert len(warnings) == 1
    assert "layer_norm_eps" in warnings[0].getMessage() and "zz_custom" in warnings[0].getMessage()
    assert str(tmp_path / "c") in warnings[0].getMessage()
    assert cfg.vocab_size == 21128 and "zz_custom" not in cfg.to_dict()


def test_a_missing_bert_key_is_still_an_error_with_extras_present(tmp_path):
    data = json.loads(RELEASED["multilingual_L-12_H-768_A-12"])
    del data["num_hidden_layers"]
    data["num_hidden_layer"] = 12  # a typo: the warning names it, the error names what is missing
    with pytest.raises(ValueError, match="missing field.*num_hidden_layers"):
        load_config(write(tmp_path, "m", json.dumps(data)))


def test_a_checkpoint_with_googles_multilingual_config_keys_embeds(make_checkpoint):
    from bert_tf import BertEmbedder

    directory, _ = make_checkpoint("multi_cased_L-2_H-32_A-4")
    path = directory / "bert_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    extras = {k: v for k, v in json.loads(RELEASED["multi_cased_L-12_H-768_A-12"]).items() if k in EXTRA_KEYS}
    path.write_text(json.dumps({**data, **extras}), encoding="utf-8")
    embedder = BertEmbedder.from_checkpoint(directory)
    assert embedder.config.pooler_type == "first_token_transform" and not embedder.lower_case
    words = embedder.embed_words(["a b"], layers=(-1,))[0]
    assert [w.text for w in words] == ["a", "b"] and words[0].vector.shape == (32,)
