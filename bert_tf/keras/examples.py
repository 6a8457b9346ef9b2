"""The library half of examples/: small generated labelled sets, training runs and what they print.

The scripts in examples/ parse arguments and call these, so the tests run the same code
(tests/keras/test_examples.py, with a tiny checkpoint and `quick=True`).

* `tagging_data`: sentences from a few templates, each word tagged DET, ADJ, NOUN, VERB, PRON,
  ADP or PUNCT. Some words are a noun in one sentence and a verb in another ("they fish near
  the bank", "the fish swims"), so a word's own identity is not enough: its context is.
* `topic_data`: sentences about money, rivers or football, labelled by topic.
* `train_tagger` / `train_classifier`: a few epochs of `model.fit`, the loss per epoch, the
  accuracy on a held-out set of the same kind, and the time of a training step.
"""

from __future__ import annotations

import random
import time

import numpy as np

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.keras.data import text_batches, untuned
from bert_tf.keras.layers import GivenWordVectors, SentenceVectors
from bert_tf.keras.models import sentence_classifier, word_tagger
from bert_tf.runtime import keras, tf

TAGS = ("DET", "ADJ", "NOUN", "VERB", "PRON", "ADP", "PUNCT")

#: Templates of tags; each slot is filled from the words of its tag below.
_TEMPLATES = (
    ("DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"),
    ("PRON", "VERB", "ADP", "DET", "NOUN", "PUNCT"),
    ("DET", "NOUN", "VERB", "ADJ", "PUNCT"),
    ("PRON", "VERB", "DET", "ADJ", "NOUN", "PUNCT"),
    ("DET", "NOUN", "ADP", "DET", "NOUN", "VERB", "PUNCT"),
)
#: Words that are a NOUN or a VERB by context.
_AMBIGUOUS = ("fish", "bank", "park", "watch", "book", "run", "rock", "plant")
_WORDS = {
    "DET": ("the", "a", "this", "every"),
    "ADJ": ("old", "green", "quiet", "small", "bright"),
    "NOUN": ("river", "money", "dog", "teacher", "city") + _AMBIGUOUS,
    "VERB": ("sees", "likes", "swims", "waits", "sings") + _AMBIGUOUS,
    "PRON": ("they", "we", "you", "i"),
    "ADP": ("near", "by", "under", "with"),
    "PUNCT": (".", "!"),
}

_TOPICS = {
    "money": ("the bank raised its interest rates", "she paid the loan back with cash",
              "investors sold their shares today", "the price of gold fell again",
              "he saved money in a savings account", "the market crashed after the report"),
    "river": ("the river flooded the green valley", "fish swim under the old bridge",
              "we walked along the muddy bank", "the stream runs into a quiet lake",
              "rain filled the river after the storm", "ducks float near the water's edge"),
    "football": ("the striker scored a late goal", "fans cheered when the team won",
                 "the keeper saved a penalty kick", "the match ended in a draw",
                 "the coach picked a new captain", "players trained on the wet pitch"),
}
TOPICS = tuple(_TOPICS)


def tagging_data(n: int, *, seed: int = 0) -> tuple[list[list[str]], list[list[int]]]:
    """`n` generated sentences as word lists, and their tag ids (indices into `TAGS`)."""
    rng = random.Random(seed)
    words, tags = [], []
    for _ in range(n):
        template = rng.choice(_TEMPLATES)
        words.append([rng.choice(_WORDS[tag]) for tag in template])
        tags.append([TAGS.index(tag) for tag in template])
    return words, tags


def topic_data(n: int, *, seed: int = 0) -> tuple[list[str], list[int]]:
    """`n` sentences, each a template sentence of a topic with a word or two changed, and the topic ids."""
    rng = random.Random(seed)
    texts, labels = [], []
    fillers = ("really", "again", "yesterday", "slowly", "suddenly", "today")
    for _ in range(n):
        label = rng.randrange(len(TOPICS))
        words = rng.choice(_TOPICS[TOPICS[label]]).split()
        words.insert(rng.randrange(len(words) + 1), rng.choice(fillers))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


class StepTimer(keras.callbacks.Callback):
    """The wall time of every training step after the first epoch (whose steps include tracing)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._epoch = 0
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch > 0:
            self.seconds.append(time.perf_counter() - self._start)

    @property
    def median(self) -> float:
        return float(np.median(self.seconds)) if self.seconds else float("nan")


def _tagging_dataset(words, tags, batch_size):
    ds = tf.data.Dataset.from_tensor_slices((tf.ragged.constant(words), tf.ragged.constant(tags)))
    return untuned(ds.ragged_batch(batch_size).map(lambda w, t: (w, t.to_tensor())))


def train_tagger(checkpoint=None, *, fine_tune_layers: int = 0, epochs: int = 5, sentences: int = 200,
                 batch_size: int = 16, learning_rate: float = 1e-3, units: int = 64, seed: int = 0) -> dict:
    """Trains `word_tagger` on `tagging_data` and measures it.

    Args:
        checkpoint: the BERT checkpoint (None: the one the Python API resolves).
        fine_tune_layers: 0 trains the BiLSTM on frozen vectors; N also trains the top N encoder layers.
        epochs, sentences, batch_size, learning_rate (Adam), units (LSTM per direction), seed: the run.

    Returns:
        A dict: "losses" (training loss per epoch), "accuracy" (of the tags of `sentences // 4` held-out
        sentences), "step_seconds" (median training step after the first epoch), "model".
    """
    keras.utils.set_random_seed(seed)
    features = GivenWordVectors.from_checkpoint(checkpoint, fine_tune_layers=fine_tune_layers)
    model = word_tagger(features, len(TAGS), units=units)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    words, tags = tagging_data(sentences, seed=seed)
    timer = StepTimer()
    train = _tagging_dataset(words, tags, batch_size)
    history = model.fit(train, epochs=epochs, verbose=0, callbacks=[timer], shuffle=False)
    test_words, test_tags = tagging_data(max(sentences // 4, 1), seed=seed + 1)
    predicted = model.predict(_tagging_dataset(test_words, test_tags, batch_size).map(lambda w, t: w), verbose=0)
    right = sum(int(np.sum(np.argmax(p[:len(t)], -1) == t)) for p, t in zip(predicted, test_tags))
    return {"losses": [float(x) for x in history.history["loss"]],
            "accuracy": right / sum(map(len, test_tags)), "step_seconds": timer.median, "model": model}


def train_classifier(checkpoint=None, *, epochs: int = 10, sentences: int = 120, batch_size: int = 16,
                     learning_rate: float = 1e-2, seed: int = 0, sentence_strategy: str = "mean") -> dict:
    """Trains `sentence_classifier` on frozen sentence vectors of `topic_data`.

    Returns:
        A dict: "losses" per epoch, "accuracy" on `sentences // 4` held-out sentences, "model".
    """
    keras.utils.set_random_seed(seed)
    features = SentenceVectors.from_checkpoint(
        checkpoint, EmbeddingOptions(sentence_strategy=sentence_strategy))
    model = sentence_classifier(features, len(TOPICS))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    texts, labels = topic_data(sentences, seed=seed)
    ds = untuned(tf.data.Dataset.from_tensor_slices((texts, labels)).shuffle(len(texts), seed=seed).batch(batch_size))
    history = model.fit(ds, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles
    test_texts, test_labels = topic_data(max(sentences // 4, 1), seed=seed + 1)
    predicted = np.argmax(model.predict(text_batches(test_texts, batch_size=batch_size), verbose=0), -1)
    return {"losses": [float(x) for x in history.history["loss"]],
            "accuracy": float(np.mean(predicted == np.array(test_labels))), "model": model}


def run(main, argv=None) -> int:
    """Runs an example's `main(argv)`: a user's mistake (no checkpoint, a bad option) is one line on
    stderr and exit status 2, not a traceback."""
    import sys

    from bert_tf.model.checkpoint import CheckpointError
    from bert_tf.store.resolve import CheckpointNotFoundError

    try:
        main(argv)
    except (CheckpointNotFoundError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def format_losses(losses) -> str:
    """"1.93 -> 1.41 -> 0.87": a run's loss per epoch on one line."""
    return " -> ".join(f"{x:.3f}" for x in losses)
