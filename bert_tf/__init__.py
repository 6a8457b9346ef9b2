"""bert_tf: contextual word and sentence embeddings from Google's BERT checkpoints.

Importing this package is cheap: TensorFlow is imported (quietly) only when
something that needs it is first used.

Example:
    >>> from bert_tf import get_bert_embeddings
    >>> vecs = get_bert_embeddings(["A mouse is a rodent animal."])
    >>> vecs[0]["mouse"].shape
    (384,)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "BertConfig": "bert_tf.config",
    "load_config": "bert_tf.config",
    "BertEncoder": "bert_tf.modeling",
    "load_encoder": "bert_tf.checkpoint",
    "CheckpointError": "bert_tf.checkpoint",
    "BertTokenizer": "bert_tf.tokenization",
    "BertEmbedder": "bert_tf.embeddings",
    "WordVector": "bert_tf.embeddings",
    "get_bert_embeddings": "bert_tf.embeddings",
    "convert_hf_checkpoint": "bert_tf.convert",
    "download_checkpoint": "bert_tf.download",
    "export_saved_model": "bert_tf.export",
    "resolve_checkpoint": "bert_tf.resolve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bert_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + __all__)
