"""The `interleaved` engine: bert_tf's model calls, ONNX Runtime and bare matmuls on identical batches,
alternated batch by batch in one process, so that ratios of a few percent survive the VM's drift."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from bench.context import MATMUL_SHAPES, Context
from bench.flops import bert_tf_flop_model
from bench.measure import tf_threads
from bench.registry import engine

#: The variants the `interleaved` engine alternates on every batch, in this order then reversed.
VARIANTS = {
    "bert_tf": "bert_tf's model call (the traced forward `get_bert_embeddings` runs: last four layers summed)",
    "bert_tf_bf16": "the same model call with `precision=\"bfloat16\"` (layers summed in float32)",
    "bert_tf_int8": "the same model call with `precision=\"int8\"` (dynamic int8 dense layers)",
    "ort": "ONNX Runtime on the same padded batch (ids and mask as bert_tf gets them)",
    "ort_int8": "ONNX Runtime on the int8 quantization of the same export, same padded batch",
    "tf_matmuls": "TensorFlow: only the 72 dense matmuls (+ bias, GELU) on the batch's real tokens",
    "numpy_matmuls": "numpy (OpenBLAS): the same 72 matmuls (+ bias), on the same rows",
    "matmul_peak": "numpy float32 2048x2048x2048 matmul, the machine's peak at the same moments",
    "matmul_peak_bf16": "TensorFlow bfloat16 2048x768x3072 matmul, the bfloat16 peak at the same moments",
}
#: Variants whose thread pools keep spinning for a while after a call (OpenBLAS, ONNX Runtime): the
#: next variant would share the cores with them, so the loop waits `SETTLE_S`, untimed, after each.
SPINNING = ("ort", "ort_int8", "numpy_matmuls", "matmul_peak")
SETTLE_S = 0.2
#: The variants computing in bfloat16, given as shares of the bfloat16 peak too.
BF16_VARIANTS = ("bert_tf_bf16", "matmul_peak_bf16")
#: The bfloat16 peak's shape: BERT's feed-forward on 2048 tokens.
BF16_PEAK_SHAPE = (2048, 768, 3072)


def _model_call(embedder):
    """The encoder call `get_bert_embeddings` makes, with its default layers summed, traced once for any shape.

    States come back float32 from a float32 model (the casts are then no ops); a bfloat16 one's are
    summed in float32, as the library's head does.
    """
    from bert_tf.embed.head import combine_layers
    from bert_tf.runtime import tf

    layers = embedder.default_layers
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def forward(ids, mask):
        states, pooled = embedder.encoder.token_states(ids, mask)
        states = [tf.cast(s, tf.float32) for s in states]
        return combine_layers(states, layers, "sum"), tf.cast(pooled, tf.float32)

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


def _ort_variant(ctx: Context, batches: list[dict], model: str = "onnx"):
    """ONNX Runtime's call on a batch (`model`: the float32 export, or "onnx_int8"), or why it is left out."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnxruntime is not installed"
    if not Path(ctx.meta[model]).exists():
        return None, f"no {'int8 ' if model == 'onnx_int8' else ''}ONNX export in the work directory"
    from bench.engines_peers import ort_session

    session = ort_session(ctx, model)
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
    from bench.engines_bert_tf import precision_api

    threads = tf_threads(tf)
    embedder = BertEmbedder.from_checkpoint(ctx.checkpoint)
    notes = {}
    from bert_tf.model.precision import PRECISIONS

    low = {}
    for name, precision in (("bert_tf_bf16", "bfloat16"), ("bert_tf_int8", "int8")):
        if precision_api()["from_checkpoint"] and precision in PRECISIONS:
            low[name] = _model_call(BertEmbedder.from_checkpoint(ctx.checkpoint, precision=precision))
        else:
            notes[name] = f"this bert_tf has no precision={precision!r} (BertEmbedder.from_checkpoint)"
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
    m, k, n = BF16_PEAK_SHAPE
    bf16_a, bf16_b = (tf.constant(rng.standard_normal(shape, np.float32), tf.bfloat16) for shape in ([m, k], [k, n]))
    # One element comes back: converting the whole bfloat16 product to numpy (ml_dtypes) added about
    # 8% to each call, none of it the matmul's.
    bf16_matmul = tf.function(lambda a, b: tf.matmul(a, b)[0, 0])
    variants = {
        "bert_tf": lambda b: [t.numpy() for t in forward(b["tf_ids"], b["tf_mask"])],
        "matmul_peak": lambda b: peak_a @ peak_b,
        "tf_matmuls": lambda b: tf_chain(b["tf_x"]).numpy(),
        "numpy_matmuls": lambda b: numpy_chain(b["x"]),
        "matmul_peak_bf16": lambda b: bf16_matmul(bf16_a, bf16_b).numpy(),
    }
    for name, call in low.items():
        variants[name] = lambda b, call=call: [t.numpy() for t in call(b["tf_ids"], b["tf_mask"])]
    for name, model in (("ort", "onnx"), ("ort_int8", "onnx_int8")):
        call, why = _ort_variant(ctx, batches, model)
        if call:
            variants[name] = call
        else:
            notes[name] = why
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
                if name in SPINNING:
                    time.sleep(SETTLE_S)
        passes.append(seconds)
    shapes = [(len(b["ids"]), b["ids"].shape[1], b["real"]) for b in batches]
    return {"threads": threads, "variants": order, "passes": passes, "shapes": shapes, "ort": notes.get("ort"),
            "left_out": notes,
            "real_tokens": sum(b["real"] for b in batches),
            "bert_tf_executed_flops": sum(flops(*shape) for shape in shapes)}
