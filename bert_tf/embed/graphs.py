"""The two traced graphs behind each set of options: the encoder call and the head.

Both speak in named features: `features` maps an output name ("words", "sentence",
"states") to the hidden layers it needs and how they are combined. `encode_graph`:
ids, mask -> those features for every real token (`BertEncoder.token_states`: the dense
layers never see padding) and "pooled", the pooler output. `head_graph`: those features
for whole texts -> word vectors, sentence vectors and/or stitched token states (`head`,
the functions the SavedModel runs too). Both take `[None, ...]` shapes, so one trace
serves every batch. Where the encoder keeps oneDNN's reordered float32 kernels, queries and
batches run encoder graphs of their own, each laid out for its size (`size_class`).
"""

from __future__ import annotations

import numpy as np

from bert_tf.embed import head
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.model.precision import OUTSIDE_GRAPH_PRECISIONS
from bert_tf.runtime import tf

#: A request of one model call over at most this many tokens is a query (`size_class`).
QUERY_TOKENS = 64
#: `(rows, length)` of the call that lays out a size class's kept kernels when its graph is made.
LAYOUT_CALLS = {"query": (1, 8), "batch": (4, 128)}
#: The precisions whose kept kernels oneDNN lays out by the rows multiplied, measured (`size_class`).
LAYOUT_BY_SIZE_PRECISIONS = ("float32",)


def layouts_by_size(encoder) -> bool:
    """Whether queries and batches run encoder graphs of their own (`size_class`): the encoder keeps
    oneDNN's kernels (`BertEncoder.keeps_kernels`) in a precision of `LAYOUT_BY_SIZE_PRECISIONS`."""
    return encoder.precision in LAYOUT_BY_SIZE_PRECISIONS and encoder.keeps_kernels


def size_class(calls: int, tokens: int) -> str:
    """Which encoder graph runs a request of `calls` model calls over `tokens` real tokens in all:
    "query" for one call of at most `QUERY_TOKENS` tokens, "batch" for anything else.

    Why two: oneDNN computes a float32 matmul from a blocked layout of its kernel, and which layout
    depends on the rows it multiplies (on an AMD Zen 4 it changes between 64 and 96 rows); a kept kernel
    (`onednn.fixed_weight_dense`) is laid out once, as the graph's first call asks, and every call whose
    rows want the other layout reorders the kernel again, every time. There a float32 query after a few
    batches took 84-94 ms instead of 21-22 (bench/README.md). So in float32 queries and batches keep a
    layout each, in graphs of their own (`layouts_by_size`), each laid out by its class's call (`lay_out`)
    however the first request looks; a process that runs both keeps two copies of the kernels (BERT-Base:
    0.35 GB more). bfloat16's kept kernels served both sizes alike on that CPU (a query after batches
    17-20 ms either way), so it keeps one graph. A remainder call of a batch stays in the batch graph: it is
    a small part of its request."""
    return "query" if calls == 1 and tokens <= QUERY_TOKENS else "batch"


def lay_out(encode, size: str, max_positions: int, fill_id: int) -> None:
    """Runs `encode` once on `LAYOUT_CALLS[size]` (length at most `max_positions`, every position the
    token `fill_id`), before its first real call: its kept kernels take that class's layout."""
    rows, length = LAYOUT_CALLS[size]
    tokens = rows * length
    length = min(length, max_positions)
    rows = -(-tokens // length)
    ids = tf.fill([rows, length], tf.constant(fill_id, tf.int32))
    encode(ids, tf.ones_like(ids))


def encoded(states, pooled, features: dict[str, tuple[tuple[int, ...], str]]) -> dict:
    """What an encoder call returns: {name: `states`' layers combined as `features` says, ..., "pooled": `pooled`}."""
    out = {name: head.combine_layers(states, layers, combine) for name, (layers, combine) in features.items()}
    out["pooled"] = pooled
    return out


def encode_graph(encoder, features: dict[str, tuple[tuple[int, ...], str]]):
    """ids, mask -> {name: the combined layers of the real tokens, ..., "pooled": the pooler output}.

    A traced graph; for an encoder that runs outside TensorFlow's graph (`litert.LiteEncoder`), an
    `OutsideEncode`: the encoder called directly, then a traced graph that combines its layers."""
    if encoder.precision in OUTSIDE_GRAPH_PRECISIONS:
        return OutsideEncode(encoder, features)
    spec = tf.TensorSpec([None, None], tf.int32)

    def encode(ids, mask):
        states, pooled = encoder.token_states(ids, mask, fixed_weights=True)  # the embedder never changes them
        return encoded(states, pooled, features)

    return traced(encode, [spec, spec])


def traced(fn, signature: list) -> "FunctionCall":
    """`fn` traced for `signature`, as every graph here is: traced once, when made, so it serves every batch
    shape and cannot be traced again; called as the op it is (`FunctionCall`)."""
    return FunctionCall(tf.function(fn, input_signature=signature, autograph=False).get_concrete_function())


class FunctionCall:
    """A concrete function called as the one op TensorFlow registers it as, through the eager executor:
    what calling the function does, without `tf.function`'s Python around it (binding the arguments to its
    signature, checking them, the call options). Arguments (a dict as the signature's: its keys in order) are
    converted to the signature's dtypes; the output has the function's structure. Eagerly and outside a
    gradient tape only; elsewhere the concrete function is called.

    Why: right after LiteRT's interpreter (and after any pause) every TensorFlow call is slow, its Python
    too. On the tokenizer after an int8-litert query's interpreter (AMD Zen 4) the concrete function's call
    took 1.24-1.31 ms and this 1.04, warm 0.45-0.52 and 0.37 (bench/README.md, "The graphs called as ops").
    Where this TensorFlow has no such call (`Context.call_function`), the concrete function is called."""

    def __init__(self, concrete):
        from tensorflow.python.eager import context, record  # the executor's call; no public API runs it

        self.concrete = concrete  # holds the function, so it stays registered with the executor
        self._name = concrete.name
        self._captured = list(concrete.captured_inputs)  # the variables and constants it reads, last
        self._dtypes = [spec.dtype for spec in tf.nest.flatten(concrete.structured_input_signature[0])]
        structure = concrete.structured_outputs
        # A dict of tensors (every graph here) is rebuilt from its keys in order, as `tf.nest` orders them.
        self._keys = sorted(structure) if isinstance(structure, dict) and all(
            isinstance(v, tf.Tensor) for v in structure.values()) else None
        self._context = context.context()
        self._recording = record.could_possibly_record  # a gradient tape: the concrete function records the call
        self._direct = hasattr(self._context, "call_function") and self._keys is not None

    def __call__(self, *args):
        if not self._direct or not self._context.executing_eagerly() or self._recording():
            return self.concrete(*args)
        flat = [x for a in args for x in ([a[k] for k in sorted(a)] if isinstance(a, dict) else (a,))]
        inputs = [tf.convert_to_tensor(a, d) for a, d in zip(flat, self._dtypes, strict=True)]
        outputs = self._context.call_function(self._name, inputs + self._captured, len(self._keys))
        return dict(zip(self._keys, outputs))


class OutsideEncode:
    """`encode_graph` for an encoder that runs outside TensorFlow's graph (`litert.LiteEncoder`, numpy in
    and out): `states` runs it for the layers `features` need, `combine` (traced) makes the features of
    them, and a call does the two. `one_call_graph` puts `combine` and the head in one graph.

    Why a graph for a few additions: right after the interpreter has streamed the model's weights
    through the caches, every TensorFlow call is slow (a one-op graph: 0.7 ms, against 0.16 before it),
    so each call saved is worth about half a millisecond of a query (bench/README.md)."""

    def __init__(self, encoder, features: dict[str, tuple[tuple[int, ...], str]]):
        self.encoder = encoder
        self.features = features
        self.layers = tuple(sorted({i % (encoder.config.num_hidden_layers + 1)
                                    for layers, _ in features.values() for i in layers}))
        hidden = encoder.config.hidden_size
        self.signature = [tf.TensorSpec([len(self.layers), None, hidden], tf.float32),
                          tf.TensorSpec([None, hidden], tf.float32)]
        self._combine = None

    @property
    def combine(self):
        """states, pooled -> `combined`, traced when first asked for (a process of queries never runs it)."""
        if self._combine is None:
            self._combine = traced(self.combined, self.signature)
        return self._combine

    def combined(self, states, pooled) -> dict:
        """`encoded` of `states` (`[layers, tokens, hidden]`: this call's layers, in order) and `pooled`, in
        the caller's graph."""
        full = [None] * (self.encoder.config.num_hidden_layers + 1)  # indexed as `features` index it
        for j, layer in enumerate(self.layers):
            full[layer] = states[j]
        return encoded(full, pooled, self.features)

    def states(self, ids, mask) -> tuple[np.ndarray, np.ndarray]:
        """The encoder's `(states of this call's layers as one array, pooled)` for `ids`, `mask` (numpy or
        tensors): one tensor to pass, not one per layer (each costs a query about 0.05 ms after the
        interpreter)."""
        return self.encoder.run_stacked(np.asarray(ids), np.asarray(mask), self.layers)

    def __call__(self, ids, mask) -> dict:
        return self.combine(*self.states(ids, mask))


def head_graph(config, features: dict[str, tuple[tuple[int, ...], str]], kinds: tuple[str, ...],
               options: EmbeddingOptions, *, windows: bool = True):
    """{name: features, "pooled": ...}, n, pieces_per_word, span -> words, sentence and/or states of whole texts.

    `windows` False: for calls in which every text is one window (`BertEmbedder` asks the plan), whose
    features are already one row per token of each text: no stitching, which is most of the head's ops
    (about 300 of 320). int8-litert queries took 0.95x the time of the stitching head's for 40 words, 0.98x
    for a short sentence (an AMD Zen 4)."""
    h = config.hidden_size
    feature_specs = {name: tf.TensorSpec(head.combined_shape(len(layers), h, combine), tf.float32)
                     for name, (layers, combine) in features.items()}
    feature_specs["pooled"] = tf.TensorSpec([None, h], tf.float32)
    vector = tf.TensorSpec([None], tf.int64)
    signature = [feature_specs, vector, vector, tf.TensorSpec([], tf.int64)]

    def reduce(features, n, pieces_per_word, span):
        if windows:
            source, plan = head.stitch_indices(n, span)
            stitched = {name: tf.gather(x, source) for name, x in features.items() if name != "pooled"}
        else:
            plan, stitched = None, features
        out = {}
        if "words" in kinds:
            words = head.pool_words(stitched["words"], n, pieces_per_word, options.subword_pooling)
            out["words"] = words if options.dim is None else words[:, :options.dim]
        if "sentence" in kinds:
            out["sentence"] = head.sentence_vectors(stitched.get("sentence"), n, features["pooled"], plan,
                                                    options.sentence_strategy)
        if "states" in kinds:
            out["states"] = stitched["states"]
        return out

    return traced(reduce, signature)


def tracing_count(graph) -> int:
    """How many graphs `graph`, made by this module, has traced: 1 for `encode_graph`'s and `head_graph`'s,
    an `OutsideEncode`'s once its `combine` has been made, and a `one_call_graph` with a graph of its own."""
    if isinstance(graph, OutsideEncode):
        return int(graph._combine is not None)
    return int(isinstance(graph, FunctionCall) or hasattr(graph, "graph"))


def one_call_graph(encode, reduce, *, windows: bool = True):
    """`encode` then `reduce`, for a request that makes one model call (a query, a serving request): every
    text is complete after it, so the head takes the whole call, straight from the encoder's output tensors
    without their round trip through numpy (a short sentence's latency, bench/README.md). Two calls of the
    two graphs, not one graph holding both: the encoder graph's kernels keep their reordered weights
    (`token_states(..., fixed_weights=True)`), and a graph holding it again would keep another copy of them
    all, for no other layout (`size_class`).

    An `OutsideEncode`'s layers go into one graph that combines them and runs the head, and where no text
    has `windows` (`reduce` made with the same `windows`), that graph runs converted to LiteRT
    (`litert.LiteFunction`), as the encoder does: after the encoder's interpreter a TensorFlow call costs a
    query about a millisecond, the graph's ops on LiteRT a quarter of one. Stitching windows needs int64
    integer division, which LiteRT does not run, so a text of several windows keeps TensorFlow's graph."""
    if isinstance(encode, OutsideEncode):
        from bert_tf.model.litert import LiteFunction

        vector = tf.TensorSpec([None], tf.int64)

        def combine_and_reduce(states, pooled, n, pieces_per_word, span):
            return reduce(encode.combined(states, pooled), n, pieces_per_word, span)

        combine_and_reduce = traced(combine_and_reduce, [*encode.signature, vector, vector,
                                                         tf.TensorSpec([], tf.int64)])
        head = combine_and_reduce if windows else LiteFunction(combine_and_reduce.concrete)

        def outside_and_reduce(ids, mask, n, pieces_per_word, span):
            return head(*encode.states(ids, mask), n, pieces_per_word, span)

        outside_and_reduce.graph = combine_and_reduce  # a traced graph, for `BertEmbedder.traces`
        return outside_and_reduce

    def encode_and_reduce(ids, mask, n, pieces_per_word, span):
        return reduce(encode(ids, mask), n, pieces_per_word, span)

    return encode_and_reduce
