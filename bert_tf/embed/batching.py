"""Planning model calls: texts become model inputs ("segments"), segments become batches.

A text becomes one model input, `[CLS] pieces [SEP]`; a text longer than
`max_seq_length - 2` pieces becomes overlapping windows (`head.window_starts`).
Segments are sorted by length and batched by a budget of padded positions
(rows x length): many short texts share one call, long ones go a few at a time, so
every call is big enough for the matrix multiplications to run near their peak and
small enough to bound memory. Each batch is padded only to its own longest member,
rounded up to a multiple of 8.

A text's windows are consecutive segments of equal length, so they stay adjacent
in the sorted order: a batch holds whole texts, except that a long text's windows
may run on into the next batch.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from bert_tf.embed.head import window_starts

#: Pad each batch to a multiple of this many tokens (cheap alignment, few distinct shapes).
PAD_MULTIPLE = 8
#: The padded positions (rows x padded length) one model call may hold: the dense layers then
#: multiply matrices of a thousand rows or more, where TensorFlow's CPU matmul runs near its
#: peak, and a call's activations stay bounded (attention grows with rows x length^2).
#: bench/README.md has the measurements behind the value.
MAX_BATCH_POSITIONS = 2048


def padded_length(n: int, limit: int) -> int:
    """`n` rounded up to `PAD_MULTIPLE`, at most `limit`."""
    return min(-(-n // PAD_MULTIPLE) * PAD_MULTIPLE, limit)


def plan_batches(lengths: Sequence[int], batch_size: int | None, max_seq_length: int,
                 max_positions: int | None = None) -> list[list[int]]:
    """Groups segment indices, shortest first, into model calls.

    Args:
        lengths: each segment's length in tokens, [CLS] and [SEP] included.
        batch_size: the most rows per call, or None.
        max_seq_length: the padded length's upper limit.
        max_positions: padded positions per call (default `MAX_BATCH_POSITIONS`); a single
            segment longer than that runs alone.

    Returns:
        Lists of segment indices: consecutive runs of the segments sorted (stably) by length.
    """
    max_positions = MAX_BATCH_POSITIONS if max_positions is None else max_positions
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        seq = padded_length(lengths[k], max_seq_length)  # the longest so far: sorted
        full = batch_size is not None and len(current) == batch_size
        if current and (full or (len(current) + 1) * seq > max_positions):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches


@dataclasses.dataclass(frozen=True)
class Segment:
    """One model input: a text, or one window of a long text."""

    text_index: int
    window: int
    num_windows: int
    ids: np.ndarray  # [CLS] + pieces + [SEP], int32


def segments_of(piece_ids: Sequence[np.ndarray], span: int, cls_id: int, sep_id: int) -> list[Segment]:
    """The model inputs of texts given as their piece ids, text by text, window by window."""
    segments = []
    for t, ids in enumerate(piece_ids):
        starts = window_starts(len(ids), span)
        for w, start in enumerate(starts):
            segment_ids = np.concatenate([[cls_id], ids[start:start + span], [sep_id]]).astype(np.int32)
            segments.append(Segment(t, w, len(starts), segment_ids))
    return segments


def batch_arrays(segments: Sequence[Segment], max_seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 `ids` and `mask` `[rows, padded length]` for one model call (segments sorted by length)."""
    seq = padded_length(max(len(s.ids) for s in segments), max_seq_length)
    ids = np.zeros((len(segments), seq), np.int32)
    mask = np.zeros((len(segments), seq), np.int32)
    for row, segment in enumerate(segments):
        n = len(segment.ids)
        ids[row, :n] = segment.ids
        mask[row, :n] = 1
    return ids, mask


@dataclasses.dataclass(frozen=True)
class ModelCall:
    """What one model call ran: reported to `BertEmbedder.on_call` after each call.

    Attributes:
        rows: model inputs in the call.
        padded_length: the length every row was padded to.
        real_tokens: tokens that are not padding.
        seconds: wall time of the encoder and the head for this call.
    """

    rows: int
    padded_length: int
    real_tokens: int
    seconds: float


def model_flops(config, rows: int, padded_length: int, real_tokens: int) -> int:
    """Multiply-add FLOPs (2 per multiply-add) one call executes, by the library's own model.

    The dense layers (Q, K, V, attention output, the two feed-forward matmuls) run on the
    real tokens only (`BertEncoder.token_states`); attention scores and their weighted sum
    run on the padded layout, rows x length^2; the pooler once per row. Embedding lookups,
    softmax, LayerNorm and GELU are left out: they are not matrix multiplications.
    """
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    dense = 2 * real_tokens * (4 * h * h + 2 * h * inner)
    attention = 2 * 2 * rows * padded_length * padded_length * h
    return layers * (dense + attention) + 2 * rows * h * h
