"""The layers serialize: get_config/from_config, model.save(".keras") with the weights inside, model.export.

The reload tests run in a fresh process, after the checkpoint folder is gone, so the weights can only
have come from the .keras file; the export is served by a process in which bert_tf cannot be imported.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.keras import GivenWordVectors, SentenceVectors, WordVectors
from bert_tf.runtime import keras, tf

TEXTS = ["The bank of the river.", "Héllo, wörld! 日本語 text", "",
         " ".join(["word"] * 20 + ["unbelievable"] * 10)]  # several windows at max_seq_length 16
OPTIONS = EmbeddingOptions(max_seq_length=16, combine="mean", layers=(-1, -2), subword_pooling="first")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("BERT_TF_VERBOSE_TF", None)
    return env


def _layer_and_input(kind, directory, **kwargs):
    if kind == "given":
        return (GivenWordVectors.from_checkpoint(directory, OPTIONS, **kwargs),
                tf.ragged.constant([["The", "bank", "."], ["U.S.", "日本"], []]))
    cls = {"words": WordVectors, "sentence": SentenceVectors}[kind]
    return cls.from_checkpoint(directory, OPTIONS, **kwargs), tf.constant(TEXTS)


def _dense(out):
    if isinstance(out, dict):
        return {k: _dense(v) for k, v in out.items()}
    if isinstance(out, tf.RaggedTensor):
        return out.to_tensor().numpy()
    return out.numpy()


@pytest.mark.parametrize("kind", ["words", "sentence", "given"])
def test_from_config_rebuilds_the_layer_without_a_path(make_checkpoint, kind):
    directory, _ = make_checkpoint("tiny")
    layer, x = _layer_and_input(kind, directory, fine_tune_layers=1)
    config = layer.get_config()
    assert str(directory) not in json.dumps(config)  # the checkpoint travels as weights, not as a path
    again = type(layer).from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    assert again.fine_tune_layers == 1 and again.options == layer.options
    assert [v.path for v in again.trainable_weights] == [v.path for v in layer.trainable_weights]
    for target, source in zip(again.weights, layer.weights):
        target.assign(source)
    expected, actual = _dense(layer(x)), _dense(again(x))
    for key in (expected if isinstance(expected, dict) else {None: None}):
        e, a = (expected, actual) if key is None else (expected[key], actual[key])
        np.testing.assert_array_equal(a, e, err_msg=str(key))


@pytest.mark.parametrize("kind", ["words", "sentence", "given"])
def test_model_saves_and_loads_in_process(make_checkpoint, tmp_path, kind):
    directory, _ = make_checkpoint("tiny")
    layer, x = _layer_and_input(kind, directory)
    inputs = keras.Input(shape=(None,) if kind == "given" else (), dtype="string", ragged=kind == "given")
    model = keras.Model(inputs, layer(inputs))
    expected = _dense(model(x))
    model.save(tmp_path / "m.keras")
    shutil.rmtree(directory)
    loaded = keras.models.load_model(tmp_path / "m.keras")
    actual = _dense(loaded(x))
    for key in (expected if isinstance(expected, dict) else {None: None}):
        e, a = (expected, actual) if key is None else (expected[key], actual[key])
        np.testing.assert_array_equal(a, e, err_msg=str(key))


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import bert_tf.keras  # registers the layers: no custom_objects
    from bert_tf.runtime import keras, tf

    spec = json.load(open(sys.argv[1]))
    model = keras.models.load_model(spec["model"])
    x, y = tf.constant(spec["texts"]), np.array(spec["labels"])
    print(json.dumps({"outputs": model(x).numpy().tolist(), "loss": model.evaluate(x, y, verbose=0)}))
""")


def _fine_tuned_classifier(directory):
    features = SentenceVectors.from_checkpoint(directory, OPTIONS.replace(sentence_layer=-1), fine_tune_layers=1)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(3)(features(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = tf.constant(TEXTS), np.array([0, 1, 2, 1])
    before = features.encoder.blocks[-1].query.kernel.numpy().copy()
    for _ in range(2):
        model.train_on_batch(x, y)
    assert not np.array_equal(before, features.encoder.blocks[-1].query.kernel.numpy())  # tuned: not the checkpoint
    return model, x, y


@pytest.mark.slow
def test_saved_model_reloads_in_a_fresh_process_with_the_weights_inside(make_checkpoint, tmp_path):
    directory, _ = make_checkpoint("tiny")
    model, x, y = _fine_tuned_classifier(directory)
    outputs, loss = model(x).numpy(), model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    shutil.rmtree(directory)  # the weights can only come from m.keras now
    (tmp_path / "spec.json").write_text(json.dumps(
        {"model": str(tmp_path / "m.keras"), "texts": TEXTS, "labels": y.tolist()}), encoding="utf-8")
    (tmp_path / "reload.py").write_text(RELOAD, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(tmp_path / "reload.py"), str(tmp_path / "spec.json")],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(got["outputs"]), outputs, rtol=0, atol=1e-6)
    assert got["loss"] == pytest.approx(loss, abs=1e-6)


SERVE = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoBertTf(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "bert_tf":
                raise ModuleNotFoundError("bert_tf is blocked in this process", name=name)

    sys.meta_path.insert(0, NoBertTf())  # the editable install would find it otherwise
    try:
        import bert_tf  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("bert_tf is importable")
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer's op

    spec = json.load(open(sys.argv[1]))
    loaded = tf.saved_model.load(spec["model"])  # kept: its variables die with it
    served = loaded.serve(tf.constant(spec["texts"]))
    assert not [m for m in sys.modules if m.startswith("bert_tf")]
    print(json.dumps(served.numpy().tolist()))
""")


def _serve_without_bert_tf(tmp_path, texts):
    """The export at tmp_path/served called on `texts` in a process where importing bert_tf fails."""
    (tmp_path / "spec.json").write_text(json.dumps({"model": str(tmp_path / "served"), "texts": texts}),
                                        encoding="utf-8")
    (tmp_path / "serve.py").write_text(SERVE, encoding="utf-8")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and not os.path.isdir(os.path.join(p, "bert_tf")))
    proc = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(tmp_path / "spec.json")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.array(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_export_serves_strings_without_bert_tf(make_checkpoint, tmp_path):
    directory, _ = make_checkpoint("tiny")
    model, x, _ = _fine_tuned_classifier(directory)
    expected = model(x).numpy()
    model.export(str(tmp_path / "served"), verbose=False)
    shutil.rmtree(directory)
    np.testing.assert_allclose(_serve_without_bert_tf(tmp_path, TEXTS), expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_exported_tagger_serves_padded_word_lists(make_checkpoint, tmp_path):
    from bert_tf.keras.models import word_tagger

    directory, _ = make_checkpoint("tiny")
    model = word_tagger(GivenWordVectors.from_checkpoint(directory, OPTIONS), 3, units=4)
    words = [["The", "bank", "."], ["U.S.", "日本"], ["river"]]
    expected = model(tf.ragged.constant(words)).numpy()  # [3, 3, tags]
    model.export(str(tmp_path / "served"), verbose=False)  # its signature takes dense [batch, max_words]
    shutil.rmtree(directory)
    padded = [w + [""] * (3 - len(w)) for w in words]  # a serving client pads with ""
    served = _serve_without_bert_tf(tmp_path, padded)
    assert served.shape == expected.shape
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
