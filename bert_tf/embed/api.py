"""The notebooks' function, `get_bert_embeddings`, and the per-process model cache behind it."""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from bert_tf.embed.embedder import BertEmbedder
from bert_tf.text.inputs import checked_texts

_EMBEDDERS: dict[tuple, BertEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(checkpoint: str | os.PathLike | None = None, *, lower_case: bool | None = None,
                 precision: str = "float32") -> BertEmbedder:
    """The cached `BertEmbedder` for a checkpoint: loaded once per process, then reused.

    One model per checkpoint, casing and compute precision: `lower_case=None` and the casing
    it resolves to share one copy, and so do `precision="auto"` and what it chooses.

    Raises:
        TypeError: `lower_case` is not True, False or None.
        ValueError: an unknown `precision`.
    """
    from bert_tf.model.precision import resolve_precision
    from bert_tf.store.checkpoint_dir import CheckpointDir
    from bert_tf.text.vocab import check_lower_case

    lower_case = check_lower_case(lower_case)
    precision = resolve_precision(precision)
    resolved = CheckpointDir.resolve(checkpoint)
    directory = os.path.realpath(resolved.path)
    key = (directory, lower_case, precision)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            embedder = BertEmbedder.load(resolved, lower_case=lower_case, compute_dtype=precision)
            _EMBEDDERS[key] = _EMBEDDERS.setdefault((directory, embedder.lower_case, precision), embedder)
        return _EMBEDDERS[key]


def get_bert_embeddings(sentences: Sequence[str], dim: int | None = None, *,
                        checkpoint: str | os.PathLike | None = None,
                        layers: Sequence[int] | None = None, combine: str = "sum",
                        subword_pooling: str = "mean", batch_size: int | None = None,
                        max_seq_length: int | None = None, lower_case: bool | None = None,
                        precision: str = "float32", progress: bool | None = None) -> list[dict[str, np.ndarray]]:
    """Contextual word vectors, one dict per sentence: word -> float32 vector.

    Each vector sums (by default) the last four hidden layers of the word's pieces (all of
    them for a model with fewer than four) and averages the pieces, as in the research
    notebooks this package grew from.

    The keys are the words as the model sees them: lower-cased and accent-stripped
    for uncased checkpoints, with punctuation and CJK characters as words of their own.
    When a word occurs more than once in a sentence, the dict holds its FIRST
    occurrence; use `BertEmbedder.embed_words` for every occurrence with offsets.

    Args:
        sentences: a list of strings.
        dim: keep the first `dim` components; None (default) keeps the full width.
            A smaller value discards information (logged); a larger one is a ValueError.
        checkpoint: checkpoint directory; None resolves BERT_TF_CHECKPOINT, then
            checkpoints/uncased_L-12_H-768_A-12, then the offline all-MiniLM-L6-v2 model.
        layers, combine, subword_pooling, batch_size, max_seq_length: see `EmbeddingOptions`.
        lower_case: True or False overrides the checkpoint's casing; None (default) reads it
            from the checkpoint. Nothing else is accepted (a string such as "false" is a TypeError).
        precision: "float32" (default), "bfloat16", "float16", "int8" (dynamic quantization of
            the dense layers: the fastest on a CPU, least faithful), "int8-litert" (int8 on LiteRT's
            XNNPACK kernels: the fastest on short texts) or "auto" (bfloat16 where the
            hardware computes it natively, else float32); see `bert_tf.model.precision`. The
            vectors are float32 whatever the precision.
        progress: progress bar on stderr (None: automatic for long inputs).

    Returns:
        `[{word: vector}, ...]`, one dict per sentence, in input order.

    Raises:
        TypeError: `sentences` is not a list of strings (names the bad index), or
            `lower_case` is not True, False or None; raised before the model is loaded.
        ValueError: a bad option (names the allowed values).

    Example:
        >>> emb = get_bert_embeddings(["A mouse is a rodent animal.", "A mouse is a computer device."])
        >>> from sklearn.metrics.pairwise import cosine_similarity
        >>> cosine_similarity([emb[0]["mouse"]], [emb[1]["mouse"]])[0, 0] < 1.0
        True
    """
    sentences = checked_texts(sentences)  # before the model is loaded or run
    embedder = get_embedder(checkpoint, lower_case=lower_case, precision=precision)
    results = embedder.embed_words(sentences, layers=layers, combine=combine, subword_pooling=subword_pooling,
                                   dim=dim, batch_size=batch_size, max_seq_length=max_seq_length,
                                   progress=progress)
    out = []
    for words in results:
        d: dict[str, np.ndarray] = {}
        for w in words:
            d.setdefault(w.text, w.vector)
        out.append(d)
    return out
