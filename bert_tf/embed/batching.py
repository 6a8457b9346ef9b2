"""The batch plan: which model inputs a request makes and how they are grouped into model calls.

Written once, in TensorFlow ops (`plan_calls`): the library runs it once per chunk of texts
(`plan`: op by op for a process's first plans, then as one traced graph; a request of one model
call gets the same plan from numpy, `one_call_plan`), and the SavedModel and the Keras layer run
the same ops inside their graphs, and the calls themselves with `encode_calls`. In bfloat16 a
different call shape gives different vectors (within bfloat16 rounding), so one plan is what makes
the export return the library's vectors. (int8 rounds each token over its
own range: its vectors do not depend on the plan.)

A text becomes one model input, `[CLS] pieces [SEP]`; a text longer than
`max_seq_length - 2` pieces becomes overlapping windows (`head.window_plan`).
Segments are sorted by length and batched by a budget of padded positions
(rows x length): many short texts share one call, long ones go a few at a time, so
every call is big enough for the matrix multiplications to run near their peak and
small enough to bound memory. Each call is padded only to its own longest member,
rounded up to a multiple of 8.

A text's windows are consecutive segments of equal length, so they stay adjacent
in the sorted order: a call holds whole texts, except that a long text's windows
may run on into the next call. The plan says, per call, which texts are complete
once it has run (`ready`, `ready_texts`), so a caller that reduces texts as they
complete knows what to keep for the next call without working it out itself.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from bert_tf.embed import head
from bert_tf.runtime import tf

#: Pad each batch to a multiple of this many tokens (cheap alignment, few distinct shapes).
PAD_MULTIPLE = 8
#: The padded positions (rows x padded length) one model call may hold: the dense layers then
#: multiply matrices of a thousand rows or more, where TensorFlow's CPU matmul runs near its
#: peak, and a call's activations stay bounded (attention grows with rows x length^2).
#: bench/README.md has the measurements behind the value.
MAX_BATCH_POSITIONS = 2048


def plan_calls(n, span, max_seq_length, batch_size, max_positions) -> dict:
    """The model inputs and model calls for texts of `n` pieces, in TensorFlow ops.

    Args:
        n: [T] int64, pieces per text ([CLS] and [SEP] not counted).
        span: pieces per window (`max_seq_length - 2`).
        max_seq_length: the padded length's upper limit.
        batch_size: the most rows per call; 0 for no limit.
        max_positions: padded positions per call; a single segment longer than that runs alone.

    Returns:
        A dict of int64 tensors. The segments (`head.window_plan`): `seg_splits` [T + 1],
        `num_windows` [T], `seg_text`, `seg_start`, `seg_len` [S]. The calls: `order` [S]
        (segments sorted stably by length: calls take consecutive runs of it),
        `call_splits` [C + 1] (call c runs `order[call_splits[c]:call_splits[c + 1]]`),
        `call_padded` [C] (the length its rows are padded to), `token_splits` [S + 1] (where
        each sorted segment's real tokens start in the calls' concatenated outputs). What is
        complete after each call: `text_order` [T] (texts in the order their rows come back),
        `ready` [C + 1] (sorted segments whose texts are all complete after call c:
        `order[:ready[c + 1]]`) and `ready_texts` [C + 1] (`text_order[:ready_texts[c + 1]]`).
    """
    n = tf.cast(n, tf.int64)
    max_seq_length = tf.cast(max_seq_length, tf.int64)
    batch_size = tf.cast(batch_size, tf.int64)
    max_positions = tf.cast(max_positions, tf.int64)
    plan = head.window_plan(n, span)
    lengths = plan["seg_len"] + 2
    order = tf.argsort(lengths, stable=True)
    sorted_lengths = tf.gather(lengths, order)
    padded = tf.minimum((sorted_lengths + PAD_MULTIPLE - 1) // PAD_MULTIPLE * PAD_MULTIPLE, max_seq_length)
    count = tf.size(order, out_type=tf.int64)

    def step(first, splits):
        # The most rows from `first` on whose padded positions fit the budget (at least one):
        # lengths are sorted, so row k's padded length is the longest so far.
        k = tf.range(1, count - first + 1)
        rows = tf.maximum(tf.reduce_sum(tf.cast(k * padded[first:] <= max_positions, tf.int64)), 1)
        rows = tf.where(batch_size > 0, tf.minimum(rows, batch_size), rows)
        return first + rows, splits.write(splits.size(), first + rows)

    _, ends = tf.while_loop(lambda first, _: first < count, step,
                            (tf.constant(0, tf.int64), tf.TensorArray(tf.int64, size=0, dynamic_size=True)))
    call_splits = tf.concat([tf.zeros([1], tf.int64), ends.stack()], axis=0)
    window = tf.range(count) - tf.gather(plan["seg_splits"], plan["seg_text"])
    is_last = tf.gather(window == tf.gather(plan["num_windows"], plan["seg_text"]) - 1, order)
    text_ends = tf.reshape(tf.where(is_last), [-1]) + 1  # [T]: after each text's last sorted segment
    ready_texts = tf.searchsorted(text_ends, call_splits, side="right")
    ready = tf.gather(tf.concat([tf.zeros([1], tf.int64), text_ends], axis=0), ready_texts)
    return {
        **plan,
        "order": tf.cast(order, tf.int64),
        "call_splits": call_splits,
        "call_padded": tf.gather(padded, call_splits[1:] - 1),
        "token_splits": tf.concat([tf.zeros([1], tf.int64), tf.cumsum(sorted_lengths)], axis=0),
        "text_order": tf.gather(plan["seg_text"], tf.gather(order, text_ends - 1)),
        "ready": ready,
        "ready_texts": ready_texts,
    }


def encode_calls(encoder, text_pieces, plan: dict, features: dict, cls_id: int, sep_id: int, *,
                 token_states=None, gradients: bool = False) -> dict:
    """The plan's model calls run in the graph, each padded to the plan's length as `call_arrays` pads.

    What the SavedModel and the Keras layer run: the same calls, of the same shapes, as the library's,
    so a batch pads each call only to its own longest segment (not to the batch's longest text) and
    the outputs come back in segment order, whatever order the calls ran in.

    Args:
        encoder: a `BertEncoder`.
        text_pieces: [T, (pieces)] int32, each text's pieces.
        plan: `plan_calls` for these texts.
        features: {name: (layers, combine)}: what each call keeps of its hidden states
            (`head.combine_layers`), as `graphs.encode_graph` takes it.
        cls_id, sep_id: the vocabulary's [CLS] and [SEP] ids.
        token_states: `(ids, mask) -> (states, pooled)` of one call; None for `encoder.token_states`
            (the Keras layer passes its forward with dropout while fine-tuning).
        gradients: False: the calls run in a `tf.while_loop` and no gradient flows back into them
            (TensorFlow cannot differentiate the encoder's `tf.cond` inside a while loop, and a
            frozen encoder needs none). True (fine-tuning): every segment runs in one call, padded
            to the longest, which TensorFlow differentiates.

    Returns:
        {name: [N, ...] every real token of every segment, in segment order, "pooled": [S, hidden]}.
    """
    token_states = token_states or encoder.token_states
    hidden = encoder.config.hidden_size
    order = plan["order"]
    windows = (tf.gather(plan[k], order) for k in ("seg_text", "seg_start", "seg_len"))
    segments = head.window_inputs(text_pieces, *windows, cls_id, sep_id)  # [S, (length)] in call order
    splits, padded = plan["call_splits"], plan["call_padded"]
    names = list(features)
    shapes = [head.combined_shape(len(layers), hidden, combine) for layers, combine in features.values()]
    arrays = [tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False, element_shape=shape)
              for shape in shapes + [[None, hidden]]]

    def step(c, *arrays):
        chunk = segments[splits[c]:splits[c + 1]]
        shape = tf.stack([splits[c + 1] - splits[c], padded[c]])
        ids = chunk.to_tensor(default_value=0, shape=shape)
        mask = tf.ones_like(chunk).to_tensor(default_value=0, shape=shape)
        states, pooled = token_states(ids, mask)
        values = [head.combine_layers(states, *features[name]) for name in names] + [pooled]
        return (c + 1, *(a.write(tf.cast(c, tf.int32), v) for a, v in zip(arrays, values)))

    if gradients:
        ids = segments.to_tensor(default_value=0)
        states, pooled = token_states(ids, tf.ones_like(segments).to_tensor(default_value=0))
        outputs = [head.combine_layers(states, *features[name]) for name in names]
    else:
        calls = tf.size(padded, out_type=tf.int64)
        # One call at a time, as the library runs them: each call's matmuls already keep every core busy, and
        # the loop's default of up to 10 iterations at once would run calls side by side, each with a share
        # of the cores (two streams, which measured 0.80x of one in float32: bench/README.md, Streams).
        _, *arrays = tf.while_loop(lambda c, *_: c < calls, step, (tf.constant(0, tf.int64), *arrays),
                                   parallel_iterations=1)
        *outputs, pooled = (tf.stop_gradient(a.concat()) for a in arrays)
    # Back from call order to segment order: segment s's tokens start where its sorted position's do.
    position = tf.math.invert_permutation(order)
    token_starts = tf.gather(plan["token_splits"], position)
    tokens = tf.ragged.range(token_starts, token_starts + plan["seg_len"] + 2).flat_values
    out = {name: tf.ensure_shape(tf.gather(x, tokens), shape) for name, x, shape in zip(names, outputs, shapes)}
    out["pooled"] = tf.ensure_shape(tf.gather(pooled, position), [None, hidden])
    return out


_scalar = tf.TensorSpec([], tf.int64)
_plan_graph = tf.function(plan_calls, autograph=False,
                          input_signature=[tf.TensorSpec([None], tf.int64), _scalar, _scalar, _scalar, _scalar])

#: Plans a process makes op by op before it traces `plan_calls` into a graph. Tracing costs about 0.25 s
#: once; a traced plan then takes about 3 ms where op by op takes about 20 ms (90 ms the first time), so
#: a short-lived process (one CLI query, a small batch) never pays for the trace and a long run pays it
#: once, after about as many plans as the trace costs. Both run the same integer ops: the same plan.
EAGER_PLANS = 12
_plans_made = itertools.count()


def one_call_plan(n: np.ndarray, max_seq_length: int, batch_size: int | None) -> dict[str, np.ndarray] | None:
    """`plan_calls`' plan, in numpy, for texts that make one model call without windows; else None.

    A query, a serving request or a short list is one call: its plan is the texts sorted by
    length and padded to the longest, which numpy writes in microseconds where running
    `plan_calls` costs milliseconds (3 ms traced, 20 ms op by op), a large share of one
    sentence's latency. The same values and dtypes as `plan_calls` (tested); anything longer
    or larger goes to `plan_calls`.
    """
    n = np.asarray(n, np.int64)
    count = len(n)
    if count == 0 or (batch_size and count > batch_size) or int(n.max()) > max_seq_length - 2:
        return None
    lengths = n + 2
    order = np.argsort(lengths, kind="stable").astype(np.int64)
    sorted_lengths = lengths[order]
    longest = min(-(-int(sorted_lengths[-1]) // PAD_MULTIPLE) * PAD_MULTIPLE, max_seq_length)
    if count > 1 and count * longest > MAX_BATCH_POSITIONS:  # `plan_calls` runs a lone segment whatever its size
        return None
    texts = np.arange(count, dtype=np.int64)
    ends = np.array([0, count], np.int64)
    return {"seg_splits": np.arange(count + 1, dtype=np.int64), "num_windows": np.ones(count, np.int64),
            "seg_text": texts, "seg_start": np.zeros(count, np.int64), "seg_len": n, "order": order,
            "call_splits": ends, "call_padded": np.array([longest], np.int64),
            "token_splits": np.concatenate([[0], np.cumsum(sorted_lengths)]).astype(np.int64),
            "text_order": order, "ready": ends, "ready_texts": ends.astype(np.int32)}  # tf.searchsorted's type


def plan(n: np.ndarray, max_seq_length: int, batch_size: int | None) -> dict[str, np.ndarray]:
    """`plan_calls` for the texts' piece counts `n`, as numpy arrays: `one_call_plan` where it applies, else
    op by op at first, then one traced graph."""
    quick = one_call_plan(n, max_seq_length, batch_size)
    if quick is not None:
        return quick
    run = plan_calls if next(_plans_made) < EAGER_PLANS else _plan_graph
    out = run(tf.constant(n, tf.int64), tf.constant(max_seq_length - 2, tf.int64),
              tf.constant(max_seq_length, tf.int64), tf.constant(batch_size or 0, tf.int64),
              tf.constant(MAX_BATCH_POSITIONS, tf.int64))
    return {key: value.numpy() for key, value in out.items()}


def call_arrays(plan: dict[str, np.ndarray], c: int, piece_ids: np.ndarray, piece_splits: np.ndarray,
                cls_id: int, sep_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 `ids` and `mask` `[rows, padded length]` of call `c` of a `plan`.

    Args:
        piece_ids: [P] the piece ids of all texts ([CLS] and [SEP] not included).
        piece_splits: [T + 1] text t's pieces are `piece_ids[piece_splits[t]:piece_splits[t + 1]]`.
    """
    order = plan["order"][plan["call_splits"][c]:plan["call_splits"][c + 1]]
    seq = int(plan["call_padded"][c])
    ids = np.zeros((len(order), seq), np.int32)
    mask = np.zeros((len(order), seq), np.int32)
    starts = (piece_splits[plan["seg_text"][order]] + plan["seg_start"][order]).tolist()
    for row, (start, length) in enumerate(zip(starts, plan["seg_len"][order].tolist())):
        ids[row, 0] = cls_id
        ids[row, 1:length + 1] = piece_ids[start:start + length]
        ids[row, length + 1] = sep_id
        mask[row, :length + 2] = 1
    return ids, mask


@dataclasses.dataclass(frozen=True)
class ModelCall:
    """What one model call ran: reported to `BertEmbedder.on_call` after each call.

    Attributes:
        rows: model inputs in the call.
        padded_length: the length every row was padded to.
        real_tokens: tokens that are not padding.
        seconds: wall time of the encoder and the head for this call.
        span: `(start, end)` in `time.perf_counter()` seconds: the call's work lies within it. With
            several streams (`BertEmbedder.streams`) the spans of consecutive calls overlap, so the
            time inside model calls is the union of the spans, not the sum of `seconds`.
    """

    rows: int
    padded_length: int
    real_tokens: int
    seconds: float
    span: tuple[float, float] | None = None


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
