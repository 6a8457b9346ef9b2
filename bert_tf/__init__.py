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
    "BertConfig": "bert_tf.model.config",
    "load_config": "bert_tf.model.config",
    "BertEncoder": "bert_tf.model.encoder",
    "load_encoder": "bert_tf.model.checkpoint",
    "CheckpointError": "bert_tf.model.checkpoint",
    "BertTokenizer": "bert_tf.text.tokenization",
    "BertEmbedder": "bert_tf.embed.embedder",
    "EmbeddingOptions": "bert_tf.embed.options",
    "WordVector": "bert_tf.embed.results",
    "get_bert_embeddings": "bert_tf.embed.api",
    "convert_hf_checkpoint": "bert_tf.model.convert",
    "download_checkpoint": "bert_tf.store.download",
    "export_saved_model": "bert_tf.serve.export",
    "resolve_checkpoint": "bert_tf.store.resolve",
    "CheckpointDir": "bert_tf.store.checkpoint_dir",
    "UserError": "bert_tf.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bert_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + __all__)
