"""The embedding head: hidden states of real tokens in, word and sentence vectors out, in TensorFlow.

One implementation serves the library's traced calls and every SavedModel
signature, so the two cannot drift apart. Everything works on the flat layout
that `BertEncoder.token_states` returns: the real tokens of every model input
("segment") one after another, `[CLS] pieces [SEP]` each. Texts longer than a
window are several consecutive segments.

The steps, each a function below:

1. `combine_layers`: the chosen hidden layers summed, averaged, concatenated or
   stacked, per token.
2. `stitch`: one row per token of each text, `[CLS] pieces [SEP]`, each piece
   taken from the window where it has the most context on both sides (the rule
   of Google's `run_squad.py`), [CLS] from the first window, [SEP] from the last.
   Windows are planned by `window_plan` (their encoder inputs built by
   `window_inputs`), pieces placed by `piece_positions`.
3. `pool_words`: a word's pieces pooled into its vector (mean, first, last).
4. `sentence_vectors`: mean or max over the text's tokens, its [CLS], or the
   pooler output of its first window.

Shapes: `T` texts, `S` segments, `N` real tokens of all segments, `P` pieces of
all texts, `W` words of all texts; a text of `n` pieces has `n + 2` stitched rows.
"""

from __future__ import annotations

from bert_tf.runtime import tf

#: Combinations of hidden layers; "stack" keeps every layer ([tokens, layers, hidden]) for token states.
COMBINATIONS = ("sum", "mean", "concat", "stack")


def combine_layers(states, layers, combine: str):
    """`states[i]` for i in `layers`, `[N, hidden]` each, combined per token.

    Returns `[N, hidden]` (sum, mean), `[N, len(layers) * hidden]` (concat) or
    `[N, len(layers), hidden]` (stack).
    """
    picked = [states[i] for i in layers]
    if combine == "stack":
        return tf.stack(picked, axis=1)
    if combine == "concat":
        return tf.concat(picked, axis=-1)
    x = tf.add_n(picked) if len(picked) > 1 else picked[0]
    if combine == "mean":
        x = x / float(len(picked))
    return x


def combined_shape(num_layers: int, hidden: int, combine: str) -> list:
    """The shape `combine_layers` returns for `num_layers` layers of width `hidden`, `[None, ...]`."""
    if combine == "stack":
        return [None, num_layers, hidden]
    return [None, hidden * (num_layers if combine == "concat" else 1)]


def window_plan(n, span):
    """The windows of every text, in the graph (`batching.plan_calls` plans the model calls over them).

    Args:
        n: [T] pieces per text.
        span: pieces per window (max_seq_length - 2); a Python int or a scalar tensor.

    Returns:
        A dict of int64 tensors: `seg_splits` [T + 1] (text t owns segments
        seg_splits[t]:seg_splits[t + 1]), `num_windows` [T], and per segment
        `seg_text`, `seg_start` (its first piece) and `seg_len` (its number of pieces).
    """
    span = tf.cast(span, tf.int64)
    stride = tf.maximum(span // 2, 1)
    n = tf.cast(n, tf.int64)
    # range(0, n - span, stride) plus the last start n - span, or one window.
    num_windows = tf.where(n <= span, tf.ones_like(n), (n - span + stride - 1) // stride + 1)
    seg_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(num_windows)], axis=0)
    seg_text = tf.ragged.row_splits_to_segment_ids(seg_splits, out_type=tf.int64)
    window = tf.range(seg_splits[-1]) - tf.gather(seg_splits, seg_text)
    seg_n = tf.gather(n, seg_text)
    seg_start = tf.minimum(window * stride, tf.maximum(seg_n - span, 0))
    return {
        "seg_splits": seg_splits,
        "num_windows": num_windows,
        "seg_text": seg_text,
        "seg_start": seg_start,
        "seg_len": tf.minimum(seg_n - seg_start, span),
    }


def window_inputs(text_pieces, seg_text, seg_start, seg_len, cls_id: int, sep_id: int):
    """The encoder input of every window, `[CLS] pieces[start:start + len] [SEP]`, as ragged rows.

    The windows are given per segment, in whatever order the caller runs them (the
    `window_plan` order, or a batch plan's call order: gather the three fields first).

    Args:
        text_pieces: [T, (pieces)] int32, each text's word-piece ids.
        seg_text, seg_start, seg_len: [S] int64, each window's text, first piece and number of pieces.
        cls_id, sep_id: the vocabulary's [CLS] and [SEP] ids.

    Returns:
        [S, (seg_len + 2)] int32 ragged: the ids of each window, unpadded.
    """
    starts = tf.gather(text_pieces.row_splits, seg_text) + seg_start
    flat = tf.gather(text_pieces.flat_values, tf.ragged.range(starts, starts + seg_len).flat_values)
    windows = tf.RaggedTensor.from_row_lengths(flat, seg_len, validate=False)
    column = tf.concat([tf.shape(seg_len, out_type=tf.int64)[:1], [1]], 0)  # [S, 1]
    return tf.concat([tf.fill(column, tf.cast(cls_id, flat.dtype)), windows,
                      tf.fill(column, tf.cast(sep_id, flat.dtype))], axis=1)


def piece_positions(n, plan: dict, span):
    """For every piece, (segment, position in it) of its max-context window.

    Google's `run_squad.py` rule, score = min(left context, right context) + 0.01 * window
    length, in integers (x100) so that ties are exact and go to the earliest window. A
    piece lies in at most ceil(span / stride) <= 3 consecutive regular windows ending at
    window floor(i / stride), or in the last window, so only those candidates are scored:
    memory stays linear in the pieces.

    Args:
        n: [T] pieces per text; plan: `window_plan(n, span)`.

    Returns:
        [P, 2] int64: the segment and the position within it ([CLS] is position 0).
    """
    span = tf.cast(span, tf.int64)
    stride = tf.maximum(span // 2, 1)
    n = tf.cast(n, tf.int64)
    text_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(n)], axis=0)
    piece_text = tf.ragged.row_splits_to_segment_ids(text_splits, out_type=tf.int64)
    i = tf.range(text_splits[-1]) - tf.gather(text_splits, piece_text)  # position in its text
    n_i = tf.gather(n, piece_text)
    last = tf.gather(plan["num_windows"], piece_text) - 1
    candidates = tf.concat([(i // stride)[:, tf.newaxis] - tf.range(3, dtype=tf.int64)[tf.newaxis, :],
                            last[:, tf.newaxis]], axis=1)  # [P, 4] window indices
    candidates = tf.clip_by_value(candidates, 0, last[:, tf.newaxis])
    starts = tf.minimum(candidates * stride, tf.maximum(n_i - span, 0)[:, tf.newaxis])
    ends = tf.minimum(starts + span, n_i[:, tf.newaxis])
    ii = i[:, tf.newaxis]
    inside = (ii >= starts) & (ii < ends)
    score = tf.where(inside, 100 * tf.minimum(ii - starts, ends - 1 - ii) + (ends - starts), -1)
    best = tf.reduce_max(score, axis=1, keepdims=True)
    window = tf.reduce_min(tf.where(score == best, candidates, tf.int64.max), axis=1)
    start = tf.minimum(window * stride, tf.maximum(n_i - span, 0))
    segment = tf.gather(plan["seg_splits"], piece_text) + window
    return tf.stack([segment, 1 + i - start], axis=1)


def stitch_indices(n, span, plan: dict | None = None):
    """Which row of the segments' features each stitched row takes.

    Args:
        n: [T] pieces per text.
        span: pieces per window.
        plan: `window_plan(n, span)` when the caller has it already (made here otherwise).

    Returns:
        `(source, plan)`: source [P + 2T] int64, indices into the segments' rows (the real
        tokens of every segment of every text, in order, as `token_states` returns them
        for segments planned by `window_plan`); text t's stitched rows start at
        `n[:t].sum() + 2t`. `plan` is the `window_plan`.
    """
    n = tf.cast(n, tf.int64)
    plan = window_plan(n, span) if plan is None else plan
    seg_offsets = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(plan["seg_len"] + 2)], axis=0)  # [S + 1]
    position = piece_positions(n, plan, span)
    pieces = tf.gather(seg_offsets, position[:, 0]) + position[:, 1]  # [P] row in features
    cls = tf.gather(seg_offsets, plan["seg_splits"][:-1])  # first segment's row 0
    sep = tf.gather(seg_offsets, plan["seg_splits"][1:]) - 1  # last segment's last row
    # Text t's block: [CLS], its n[t] pieces, [SEP]; scatter the three kinds into place.
    text_rows = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(n + 2)], axis=0)
    piece_rows = _piece_rows(n)
    source = tf.scatter_nd(
        tf.concat([text_rows[:-1], piece_rows, text_rows[1:] - 1], axis=0)[:, tf.newaxis],
        tf.concat([cls, pieces, sep], axis=0), shape=text_rows[-1:])
    return source, plan


def stitch(features, n, span):
    """One row per token of each text, `[CLS] pieces [SEP]`: `features` gathered by `stitch_indices`.

    Returns:
        `(rows, plan)`: rows [P + 2T, ...].
    """
    source, plan = stitch_indices(n, span)
    return tf.gather(features, source), plan


def _piece_rows(n):
    """[P]: the stitched row of every piece; piece j of text t sits after t texts' [CLS] and [SEP] and its own [CLS]."""
    piece_text = tf.ragged.row_splits_to_segment_ids(
        tf.concat([tf.zeros([1], tf.int64), tf.cumsum(n)], axis=0), out_type=tf.int64)
    return tf.range(tf.size(piece_text, out_type=tf.int64)) + 2 * piece_text + 1


def pool_words(rows, n, pieces_per_word, how: str):
    """Word vectors from stitched rows: a word's pieces pooled.

    Args:
        rows: [P + 2T, ...] stitched rows (`stitch`).
        n: [T] pieces per text.
        pieces_per_word: [W] pieces of each word, words of all texts in order.
        how: "mean", "first" or "last".

    Returns:
        [W, ...]
    """
    counts = tf.cast(pieces_per_word, tf.int64)
    piece_rows = _piece_rows(tf.cast(n, tf.int64))  # [P]
    word_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(counts)], axis=0)
    if how == "first":
        return tf.gather(rows, tf.gather(piece_rows, word_splits[:-1]))
    if how == "last":
        return tf.gather(rows, tf.gather(piece_rows, word_splits[1:] - 1))
    word_of_piece = tf.ragged.row_splits_to_segment_ids(word_splits, out_type=tf.int64)
    return segment_mean(tf.gather(rows, piece_rows), word_of_piece, counts)


def sentence_vectors(rows, n, pooled, plan: dict, strategy: str):
    """One vector per text from its stitched rows at the sentence layer.

    Args:
        rows: [P + 2T, hidden] stitched rows of the sentence layer.
        n: [T] pieces per text.
        pooled: [S, hidden] the pooler output of every segment.
        plan: the `window_plan` the rows were stitched by; None where every text is one window (the rows
            and `pooled` are then the texts' own, in order).
        strategy: "mean" or "max" over the text's rows ([CLS] and [SEP] included), "cls"
            (its [CLS] row) or "pooled" (its first window's pooler output).

    Returns:
        [T, hidden]
    """
    n = tf.cast(n, tf.int64)
    if strategy == "pooled":
        return pooled if plan is None else tf.gather(pooled, plan["seg_splits"][:-1])
    text_rows = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(n + 2)], axis=0)
    if strategy == "cls":
        return tf.gather(rows, text_rows[:-1])
    text_of_row = tf.ragged.row_splits_to_segment_ids(text_rows, out_type=tf.int64)
    if strategy == "max":  # every text has rows ([CLS], [SEP]): no empty segment, whose maximum would differ
        return tf.math.unsorted_segment_max(rows, text_of_row, tf.size(n, out_type=tf.int64))
    return segment_mean(rows, text_of_row, n + 2)


def segment_mean(rows, segment_ids, counts):
    """`tf.math.segment_mean(rows, segment_ids)` as the sum of each segment over its count (`counts`: rows
    per segment), in ops that LiteRT runs too (`litert.LiteFunction`; it has no SegmentMean). The same to
    float32 rounding: `segment_mean` may add a long segment's rows in another order."""
    shape = tf.concat([[-1], tf.ones([tf.rank(rows) - 1], tf.int32)], axis=0)  # [-1, 1, ...]: over each row
    return tf.math.segment_sum(rows, segment_ids) / tf.reshape(tf.cast(counts, rows.dtype), shape)
