"""Features in the input pipeline: a `tf.data.Dataset` of texts mapped through a layer, and texts batched
for `model.predict`.

A downstream model trained on frozen features need not run BERT on every epoch:
map the layer over the dataset once, `.cache()` (in memory or to a file) and
train the small model on the cached features.

Both datasets here run with tf.data's autotuning off. In TensorFlow 2.21 deleting an autotuned iterator
(which `predict` does when it returns, and a `for` loop when it ends) waits for the tuner thread's next
wake-up: it wakes 10 ms after the iterator starts, then at doubling intervals up to one minute (at 1.27,
2.55, 5.11, 10.2 ... s), and cancellation does not wake it. A 2-second `predict` over 512 texts measured
2.54 s whenever it ended between those wake-ups. Nothing here has a knob worth tuning: the layer's call,
one batch at a time, is the whole cost; so the pipelines are untuned and prefetch one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from bert_tf.errors import InvalidValue
from bert_tf.runtime import tf


def map_features(dataset, layer, *, batch_size: int = 32):
    """Batches `dataset` and runs `layer` (frozen, `training=False`) over each batch, in the tf.data graph.

    Args:
        dataset: a `tf.data.Dataset` whose elements are a text (a string scalar; a list of words,
            string `[words]`, for `GivenWordVectors`), or a tuple whose first item is that and whose
            other items (labels, weights, ids) are passed through batched.
        layer: a `WordVectors`, `SentenceVectors` or `GivenWordVectors` (or any layer taking that batch).
        batch_size: texts per batch (the layer's call).

    Returns:
        A dataset of the layer's outputs per batch (a tuple `(features, *rest)` when the elements were
        tuples). Variable-length items (word lists, tag sequences) are batched as ragged tensors, as the
        layers take them.

    Example:
        >>> texts = tf.data.Dataset.from_tensor_slices(["The bank of the river.", "A loan."])
        >>> features = map_features(texts, SentenceVectors.from_checkpoint(path)).cache()  # doctest: +SKIP
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidValue(f"batch_size must be a positive integer; got {batch_size!r}")
    paired = isinstance(dataset.element_spec, tuple)
    first = dataset.element_spec[0] if paired else dataset.element_spec
    if first.dtype != tf.string:
        where = "first item" if paired else "elements"
        raise InvalidValue(f"map_features needs texts (strings) as the dataset's {where}; got {first.dtype.name}")
    batched = dataset.ragged_batch(batch_size)

    def run(text, *rest):
        features = layer(text, training=False)
        return (features, *rest) if paired else features

    return untuned(batched.map(run).prefetch(1))


def text_batches(texts: Sequence, *, batch_size: int = 256):
    """Texts (or word lists) as a dataset of batches for `model.predict`, in their order.

    `model.predict(texts_array)` builds Keras's own autotuned pipeline, whose end can wait up to the
    tuner's next wake-up (see the module's docstring); `model.predict(text_batches(texts))` does not.
    Batches of a few hundred let the layer group texts of like length into its model calls.

    Args:
        texts: a sequence of strings (for `WordVectors`, `SentenceVectors`), or of word lists, each a
            sequence of strings (for `GivenWordVectors`; batched as a ragged `[batch, (words)]` tensor).
        batch_size: texts per batch.

    Returns:
        A `tf.data.Dataset` of string batches, autotuning off.

    Raises:
        InvalidValue: no texts, a bad batch size, or items that are neither all strings nor all word lists.

    Example:
        >>> vectors = model.predict(text_batches(texts))  # doctest: +SKIP
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidValue(f"batch_size must be a positive integer; got {batch_size!r}")
    if isinstance(texts, (str, bytes)):
        raise InvalidValue("text_batches takes a sequence of texts, not one string: wrap it in a list")
    texts = list(texts)
    if not texts:
        raise InvalidValue("text_batches got no texts: give at least one")
    # The first item says which kind the rest must be; the first that is not names the error.
    strings = isinstance(texts[0], str)
    fits = (lambda t: isinstance(t, str)) if strings else _is_word_list
    bad = next((i for i, t in enumerate(texts) if not fits(t)), None)
    if bad is not None:
        item = texts[bad]
        what = type(item).__name__
        if not strings and isinstance(item, (list, tuple)):
            what = f"a {what} holding a word that is not a string"
        raise InvalidValue(f"text_batches needs all texts as strings or all as word lists (sequences of "
                           f"strings); item {bad} is {what}")
    if strings:
        batched = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(batch_size)
    else:
        words = tf.ragged.constant([list(t) for t in texts], dtype=tf.string, ragged_rank=1)
        batched = tf.data.Dataset.from_tensor_slices(words).ragged_batch(batch_size)
    return untuned(batched.prefetch(1))


def untuned(dataset):
    """`dataset` with tf.data's autotuning off, so that its iterators end when their data does."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _is_word_list(item) -> bool:
    return isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item)
