"""examples/ run (tiny checkpoint, --quick) and the library code they stand on: data, tagger, classifier."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bert_tf.keras import GivenWordVectors, examples
from bert_tf.keras.models import PaddedWords, word_tagger
from bert_tf.runtime import keras, tf

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_tagging_data_is_aligned_and_ambiguous():
    words, tags = examples.tagging_data(300, seed=3)
    assert (words, tags) == examples.tagging_data(300, seed=3)
    assert all(len(w) == len(t) for w, t in zip(words, tags))
    seen = {}
    for ws, ts in zip(words, tags):
        for w, t in zip(ws, ts):
            seen.setdefault(w, set()).add(examples.TAGS[t])
    # Context decides: some words are tagged both NOUN and VERB.
    assert any({"NOUN", "VERB"} <= found for found in seen.values())


def test_tagger_loss_ignores_padding(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    model = word_tagger(GivenWordVectors.from_checkpoint(directory), 3, units=4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss=loss)
    words = tf.ragged.constant([["the", "bank", "."], ["river"]])
    tags = np.array([[1, 2, 0], [2, 0, 0]])
    logits = model(words).numpy()
    assert logits.shape == (2, 3, 3)
    expected = float(loss(tags[[0, 0, 0, 1], [0, 1, 2, 0]], logits[[0, 0, 0, 1], [0, 1, 2, 0]]))
    assert model.evaluate(words, tags, verbose=0) == pytest.approx(expected, rel=1e-5)
    other = tags.copy()
    other[1, 1:] = 2  # different labels where there is no word: the same loss
    assert model.evaluate(words, other, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_tagger_saves_and_reloads(make_checkpoint, tmp_path):
    directory, _ = make_checkpoint("tiny")
    model = word_tagger(GivenWordVectors.from_checkpoint(directory), 3, units=4)
    words = tf.ragged.constant([["the", "bank", "."], ["river"]])
    model.save(tmp_path / "tagger.keras")
    loaded = keras.models.load_model(tmp_path / "tagger.keras")
    np.testing.assert_array_equal(loaded(words).numpy(), model(words).numpy())
    assert isinstance(loaded.get_layer("padded_words"), PaddedWords)


def _run(script, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def _losses(line):
    return [float(x) for x in re.findall(r"\d+\.\d+", line.split("loss", 1)[1].split(";")[0])]


@pytest.mark.slow
def test_frozen_tagger_example(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    proc = _run("tagger_frozen.py", "--checkpoint", directory, "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("loss per epoch"))
    losses = _losses(line)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "held-out tag accuracy" in proc.stdout


@pytest.mark.slow
def test_sentence_classifier_example(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    proc = _run("sentence_classifier.py", "--checkpoint", directory, "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = _losses(next(line for line in proc.stdout.splitlines() if line.startswith("loss per epoch")))
    assert len(losses) == 3 and losses[-1] < losses[0]


@pytest.mark.slow
def test_fine_tuned_tagger_example(make_checkpoint):
    directory, _ = make_checkpoint("tiny")
    proc = _run("tagger_fine_tuned.py", "--checkpoint", directory, "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    frozen = _losses(next(line for line in lines if "frozen:" in line))
    tuned = _losses(next(line for line in lines if "fine-tuned:" in line))
    assert len(frozen) == len(tuned) == 3 and frozen[-1] < frozen[0] and tuned[-1] < tuned[0]
    ratio = re.search(r"a fine-tuned step takes (\d+\.\d+)x a frozen one", proc.stdout)
    assert ratio and float(ratio.group(1)) > 0


def test_example_without_a_checkpoint_is_one_line(tmp_path):
    proc = _run("tagger_frozen.py", "--checkpoint", tmp_path / "missing", "--quick")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
