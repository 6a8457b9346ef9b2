"""Features in the input pipeline: a `tf.data.Dataset` of texts mapped through a layer.

A downstream model trained on frozen features need not run BERT on every epoch:
map the layer over the dataset once, `.cache()` (in memory or to a file) and
train the small model on the cached features.
"""

from __future__ import annotations

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

    return batched.map(run).prefetch(tf.data.AUTOTUNE)
