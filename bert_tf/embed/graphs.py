"""The two traced graphs behind each set of options: the encoder call and the head.

Both speak in named features: `features` maps an output name ("words", "sentence",
"states") to the hidden layers it needs and how they are combined. `encode_graph`:
ids, mask -> those features for every real token (`BertEncoder.token_states`: the dense
layers never see padding) and "pooled", the pooler output. `head_graph`: those features
for whole texts -> word vectors, sentence vectors and/or stitched token states (`head`,
the functions the SavedModel runs too). Both take `[None, ...]` shapes, so one trace
serves every batch.
"""

from __future__ import annotations

from bert_tf.embed import head
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.runtime import tf


def encode_graph(encoder, features: dict[str, tuple[tuple[int, ...], str]]):
    """ids, mask -> {name: the combined layers of the real tokens, ..., "pooled": the pooler output}."""
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def encode(ids, mask):
        states, pooled = encoder.token_states(ids, mask, fixed_weights=True)  # the embedder never changes them
        out = {name: head.combine_layers(states, layers, combine) for name, (layers, combine) in features.items()}
        out["pooled"] = pooled
        return out

    return encode


def head_graph(config, features: dict[str, tuple[tuple[int, ...], str]], kinds: tuple[str, ...],
               options: EmbeddingOptions):
    """{name: features, "pooled": ...}, n, pieces_per_word, span -> words, sentence and/or states of whole texts."""
    h = config.hidden_size
    feature_specs = {name: tf.TensorSpec(head.combined_shape(len(layers), h, combine), tf.float32)
                     for name, (layers, combine) in features.items()}
    feature_specs["pooled"] = tf.TensorSpec([None, h], tf.float32)
    vector = tf.TensorSpec([None], tf.int64)
    signature = [feature_specs, vector, vector, tf.TensorSpec([], tf.int64)]

    @tf.function(input_signature=signature, autograph=False)
    def reduce(features, n, pieces_per_word, span):
        source, plan = head.stitch_indices(n, span)
        out = {}
        if "words" in kinds:
            words = head.pool_words(tf.gather(features["words"], source), n, pieces_per_word,
                                    options.subword_pooling)
            out["words"] = words if options.dim is None else words[:, :options.dim]
        if "sentence" in kinds:
            rows = tf.gather(features["sentence"], source) if "sentence" in features else None
            out["sentence"] = head.sentence_vectors(rows, n, features["pooled"], plan, options.sentence_strategy)
        if "states" in kinds:
            out["states"] = tf.gather(features["states"], source)
        return out

    return reduce


def one_call_graph(encode, reduce):
    """`encode` then `reduce`, for a request that makes one model call (a query, a serving request): every
    text is complete after it, so the head takes the whole call, straight from the encoder's output tensors
    without their round trip through numpy (a short sentence's latency, bench/README.md). Two calls of the
    two graphs, not one graph holding both: the encoder graph's kernels keep their reordered weights
    (`token_states(..., fixed_weights=True)`), and a second graph would keep a second copy of them all."""
    def encode_and_reduce(ids, mask, n, pieces_per_word, span):
        return reduce(encode(ids, mask), n, pieces_per_word, span)

    return encode_and_reduce
