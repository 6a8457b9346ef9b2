"""The `interleaved` engine: bert_tf's model calls, ONNX Runtime and bare matmuls on identical batches,
alternated batch by batch in one process, so that ratios of a few percent survive the VM's drift."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from context import MATMUL_SHAPES, Context
from flops import bert_tf_flop_model
from measure import tf_threads
from registry import engine

#: The variants the `interleaved` engine alternates on every batch, in this order then reversed.
VARIANTS = {
    "bert_tf": "bert_tf's model call (the traced forward `get_bert_embeddings` runs: last four layers summed)",
    "ort": "ONNX Runtime on the same padded batch (ids and mask as bert_tf gets them)",
    "tf_matmuls": "TensorFlow: only the 72 dense matmuls (+ bias, GELU) on the batch's real tokens",
    "numpy_matmuls": "numpy (OpenBLAS): the same 72 matmuls (+ bias), on the same rows",
    "matmul_peak": "numpy float32 2048x2048x2048 matmul, the machine's peak at the same moments",
}


def _model_call(embedder):
    """The encoder call `get_bert_embeddings` makes, with its default layers summed, traced once for any shape."""
    from bert_tf.embed.head import combine_layers
    from bert_tf.runtime import tf

    layers = embedder.default_layers
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def forward(ids, mask):
        states, pooled = embedder.encoder.token_states(ids, mask)
        return combine_layers(states, layers, "sum"), pooled

    return forward


def _dense_chains(encoder, hidden: int):
    """BERT's dense matmuls alone, with the encoder's own weights: TF (as the model fuses them) and numpy.

    Per layer: x @ Q, K, V; their sum @ attention-output; @ intermediate (+GELU in TF); @ output.
    Every layer reads the same input, so values stay O(1) without LayerNorm (no denormals) and
    nothing can be pruned: the result is the sum of the layers' outputs.
    """
    from bert_tf.runtime import tf

    weights = [[(d.kernel, d.bias) for d in (b.query, b.key, b.value, b.attention_output, b.intermediate,
                                            b.output_dense)] for b in encoder.blocks]

    @tf.function(input_signature=[tf.TensorSpec([None, hidden], tf.float32)])
    def tf_chain(x):
        outputs = []
        for (q, k, v, o, i, out) in weights:
            qkv = [tf.nn.bias_add(tf.matmul(x, w), b) for w, b in (q, k, v)]
            a = tf.nn.bias_add(tf.matmul(tf.add_n(qkv), o[0]), o[1])
            h = tf.nn.gelu(tf.nn.bias_add(tf.matmul(a, i[0]), i[1]), approximate=False)
            outputs.append(tf.nn.bias_add(tf.matmul(h, out[0]), out[1]))
        return tf.add_n(outputs)

    arrays = [[(w.numpy(), b.numpy()) for w, b in layer] for layer in weights]

    def numpy_chain(x):
        total = np.zeros_like(x)
        for (q, k, v, o, i, out) in arrays:
            s = x @ q[0]
            s += q[1]
            for w, b in (k, v):
                s += x @ w
                s += b
            a = s @ o[0]
            a += o[1]
            h = a @ i[0]
            h += i[1]
            y = h @ out[0]
            y += out[1]
            total += y
        return total

    return tf_chain, numpy_chain


def _ort_variant(ctx: Context, batches: list[dict]):
    """ONNX Runtime's call on a batch, or why it is left out."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnxruntime is not installed"
    if not Path(ctx.meta["onnx"]).exists():
        return None, "no ONNX export in the work directory"
    from engines_peers import ort_session

    session = ort_session(ctx)
    for b in batches:
        b["ids64"], b["mask64"] = b["ids"].astype(np.int64), b["mask"].astype(np.int64)
    return (lambda b: session.run(["last4"], {"input_ids": b["ids64"], "attention_mask": b["mask64"]})), None


# An interleaved pass runs every batch twice through each variant, and its per-pass ratios
# agree closely: 2 passes are enough.
@engine("interleaved", "bert_tf's model calls, ONNX Runtime (when installed) and bare matmuls, alternated "
        "on each of bert_tf's batches in one process", ("tensorflow", "tensorflow_text"), "interleaved",
        default_runs=2)
def interleaved(ctx: Context) -> dict:
    """Every variant on every batch of bert_tf's plan, A B C D D C B A, so drift over seconds cancels.

    Separate processes measured minutes apart differ by more than the gaps worth knowing on
    this VM. Here every batch runs through each variant in turn, then again in reverse order;
    a pass is the sum over the batches. Memory is not measured (all variants share the process).
    """
    from bert_tf import BertEmbedder
    from bert_tf.runtime import tf

    threads = tf_threads(tf)
    embedder = BertEmbedder.from_checkpoint(ctx.checkpoint)
    hidden = embedder.hidden_size
    forward = _model_call(embedder)
    tf_chain, numpy_chain = _dense_chains(embedder.encoder, hidden)
    _, flops = bert_tf_flop_model(embedder.config)
    batches = []
    rng = np.random.default_rng(0)
    # Exactly the arrays bert_tf feeds its model, in its order.
    for ids, mask in embedder.model_inputs(ctx.texts, embedder.options(batch_size=ctx.bert_tf_batch_size)):
        real = int(mask.sum())
        x = rng.standard_normal((real, hidden), np.float32)
        batches.append({"ids": ids, "mask": mask, "real": real, "x": x, "tf_ids": tf.constant(ids),
                        "tf_mask": tf.constant(mask), "tf_x": tf.constant(x)})
    square = MATMUL_SHAPES[0]
    peak_a, peak_b = (rng.standard_normal(shape, np.float32) for shape in (square[:2], square[1:]))
    variants = {
        "bert_tf": lambda b: [t.numpy() for t in forward(b["tf_ids"], b["tf_mask"])],
        "matmul_peak": lambda b: peak_a @ peak_b,
        "tf_matmuls": lambda b: tf_chain(b["tf_x"]).numpy(),
        "numpy_matmuls": lambda b: numpy_chain(b["x"]),
    }
    ort_call, ort_note = _ort_variant(ctx, batches)
    if ort_call:
        variants["ort"] = ort_call
    order = [name for name in VARIANTS if name in variants]
    for b in batches:  # warm-up: every shape traced / planned once
        for name in order:
            variants[name](b)
    passes = []
    for _ in range(ctx.runs):
        seconds = dict.fromkeys(order, 0.0)
        for b in batches:
            for name in order + order[::-1]:
                t = time.perf_counter()
                variants[name](b)
                seconds[name] += (time.perf_counter() - t) / 2
        passes.append(seconds)
    shapes = [(len(b["ids"]), b["ids"].shape[1], b["real"]) for b in batches]
    return {"threads": threads, "variants": order, "passes": passes, "shapes": shapes, "ort": ort_note,
            "real_tokens": sum(b["real"] for b in batches),
            "bert_tf_executed_flops": sum(flops(*shape) for shape in shapes)}
