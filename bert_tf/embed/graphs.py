"""The two traced graphs behind each set of options: the encoder call and the head.

`encode_graph`: ids, mask -> the requested combinations of hidden layers for every real
token (`BertEncoder.token_states`: the dense layers never see padding) and the pooled
output. `head_graph`: those features for whole texts -> word vectors, sentence vectors
and/or stitched token states (`head`, the functions the SavedModel runs too). Both take
`[None, ...]` shapes, so one trace serves every batch.
"""

from __future__ import annotations

from bert_tf.embed import head
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.runtime import tf


def encode_graph(encoder, specs):
    """ids, mask -> the combined features of the real tokens (one per spec), the pooled output."""
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def encode(ids, mask):
        states, pooled = encoder.token_states(ids, mask)
        return (*(head.combine_layers(states, layers, combine) for layers, combine in specs), pooled)

    return encode


def head_graph(config, specs, kinds: tuple[str, ...], options: EmbeddingOptions):
    """features..., pooled, n, pieces_per_word, span -> words, sentence and/or states of whole texts."""
    h = config.hidden_size
    feature_specs = [tf.TensorSpec([None, len(layers), h] if combine == "stack" else
                                   [None, h * (len(layers) if combine == "concat" else 1)], tf.float32)
                     for layers, combine in specs]
    vector = tf.TensorSpec([None], tf.int64)
    signature = [*feature_specs, tf.TensorSpec([None, h], tf.float32), vector, vector,
                 tf.TensorSpec([], tf.int64)]

    @tf.function(input_signature=signature, autograph=False)
    def reduce(*args):
        *features, pooled, n, pieces_per_word, span = args
        source, plan = head.stitch_indices(n, span)
        out, f = {}, 0
        if "words" in kinds:
            words = head.pool_words(tf.gather(features[f], source), n, pieces_per_word, options.subword_pooling)
            out["words"] = words if options.dim is None else words[:, :options.dim]
            f += 1
        if "sentence" in kinds:
            rows = None
            if options.sentence_strategy != "pooled":
                rows = tf.gather(features[f], source)
                f += 1
            out["sentence"] = head.sentence_vectors(rows, n, pooled, plan, options.sentence_strategy)
        if "states" in kinds:
            out["states"] = tf.gather(features[f], source)
        return out

    return reduce
