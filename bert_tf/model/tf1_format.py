"""Reading and writing TF1 name-based checkpoints (`NAME.index` + `NAME.data-*`).

Google's BERT checkpoints are TF1 "bundle" checkpoints: a table from a variable
name (`bert/encoder/layer_0/attention/self/query/kernel`) to a tensor. TF2 still
ships the ops that read and write that format (`SaveV2` / `RestoreV2`, which
`tf.compat.v1.train.Saver` calls), so no session or graph is needed.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np

from bert_tf.files.layout import PREFIX as CHECKPOINT_PREFIX  # noqa: F401  (re-exported: the prefix of Google's layout)
from bert_tf.runtime import tf


def save_tf1_checkpoint(prefix: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    """Writes `tensors` as a TF1 name-based checkpoint at `prefix`.

    The result is what `tf.compat.v1.train.Saver.save` writes (without the
    `checkpoint` state file and the `.meta` graph), readable by Google's own
    `modeling.py` through `tf.train.init_from_checkpoint`.

    Args:
        prefix: path prefix, e.g. `out/bert_model.ckpt`; writes `prefix.index`
            and `prefix.data-00000-of-00001`.
        tensors: variable name to array. Names are written in sorted order.
    """
    names = sorted(tensors)
    values = [tf.convert_to_tensor(np.asarray(tensors[n])) for n in names]
    tf.raw_ops.SaveV2(prefix=os.fspath(prefix), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=values)


def checkpoint_shapes(prefix: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Returns {variable name: shape} of a TF1 checkpoint without reading its data."""
    reader = tf.train.load_checkpoint(os.fspath(prefix))
    return {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}


def read_tensors(prefix: str | os.PathLike, names: Iterable[str]) -> Iterable[tuple[str, np.ndarray]]:
    """Yields (name, array) one tensor at a time, so peak memory stays at one tensor."""
    reader = tf.train.load_checkpoint(os.fspath(prefix))
    for name in names:
        yield name, reader.get_tensor(name)
