"""tensorflow-text's FastWordpiece op, without the rest of tensorflow-text.

`import tensorflow_text` loads all 23 of its op libraries, each a large copy of mostly
the same statically linked code (the memory and time it costs are in the README), of which
bert_tf uses one op, `FastWordpieceTokenizeWithOffsets`. We load that op's library and
its model builder straight from the installed tensorflow-text package. They are the
same files `import tensorflow_text` loads, so the op has the same name in a saved graph,
and importing tensorflow_text before or after this module works: the library is
already loaded and its op already registered.

Should the package's layout ever differ from what we expect, we fall back to importing
tensorflow_text whole, which costs memory but nothing else.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import os
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from bert_tf.runtime import quiet_stderr, tf

#: The installed tensorflow-text, as recorded in an export's metadata.
TENSORFLOW_TEXT_VERSION = importlib.metadata.version("tensorflow-text")

_OP_LIBRARY = os.path.join("python", "ops", "_fast_wordpiece_tokenizer.so")
_BUILDER = "pywrap_fast_wordpiece_tokenizer_model_builder"


class WordpieceOps(NamedTuple):
    """The model builder and the op, as loaded from tensorflow-text."""

    build_model: Callable  # (vocab, max_bytes_per_word, suffix, unknown, no_pretokenization, detokenize) -> bytes
    tokenize_with_offsets: Callable  # the op: input_values, wp_model -> (pieces, ids, row_splits, starts, ends)
    whole_package: bool  # True when tensorflow_text had to be imported whole


def _load_direct(root: str) -> WordpieceOps:
    ops = tf.load_op_library(os.path.join(root, _OP_LIBRARY))
    (path,) = glob.glob(os.path.join(root, "core", "pybinds", f"{_BUILDER}*.so"))
    spec = importlib.util.spec_from_file_location(f"tensorflow_text.core.pybinds.{_BUILDER}", path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)  # not put in sys.modules: tensorflow_text's own import stays untouched
    return WordpieceOps(builder.build_fast_wordpiece_model, ops.fast_wordpiece_tokenize_with_offsets, False)


def _load_whole_package() -> WordpieceOps:
    import tensorflow_text  # noqa: F401  (registers every op)
    from tensorflow_text.core.pybinds import pywrap_fast_wordpiece_tokenizer_model_builder as builder
    from tensorflow_text.python.ops.fast_wordpiece_tokenizer import gen_fast_wordpiece_tokenizer as ops

    return WordpieceOps(builder.build_fast_wordpiece_model, ops.fast_wordpiece_tokenize_with_offsets, True)


def load_ops(root: Optional[str]) -> WordpieceOps:
    """The op and its model builder from the tensorflow-text package at `root`, else from the whole package.

    `root` None, or a layout other than the one expected, imports tensorflow_text whole.
    """
    with quiet_stderr():
        if root is not None:
            try:
                return _load_direct(root)
            except (OSError, ValueError, ImportError, tf.errors.NotFoundError, AttributeError):
                pass  # an unexpected package layout: the whole package still has the op
        return _load_whole_package()


def _package_root() -> Optional[str]:
    spec = importlib.util.find_spec("tensorflow_text")  # locates the package without importing it
    return None if spec is None or spec.origin is None else os.path.dirname(spec.origin)


_OPS = load_ops(_package_root())


def loaded_whole_package() -> bool:
    """Whether this process had to import tensorflow_text whole to get the op."""
    return _OPS.whole_package


def wordpiece_model(vocab: Sequence[str], *, suffix_indicator: str, max_bytes_per_word: int,
                    unknown_token: str) -> tf.Tensor:
    """tensorflow-text's FastWordpiece model (a flatbuffer) for `vocab`, as a uint8 tensor.

    Words are taken as already split (`no_pretokenization`): the caller splits text into words.
    """
    model = _OPS.build_model(list(vocab), max_bytes_per_word, suffix_indicator, unknown_token, True, False)
    return tf.constant(np.frombuffer(model, np.uint8))


def wordpiece_ids(words: tf.Tensor, model: tf.Tensor) -> tf.RaggedTensor:
    """`[words]` strings -> int32 `[words, (pieces)]`: each word's WordPiece ids under `model`.

    What `tensorflow_text.FastWordpieceTokenizer(..., token_out_type=tf.int32).tokenize`
    returns for a vector of words.
    """
    _, ids, row_splits, _, _ = _OPS.tokenize_with_offsets(input_values=words, wp_model=model)
    return tf.RaggedTensor.from_row_splits(tf.cast(ids, tf.int32), row_splits, validate=False)
