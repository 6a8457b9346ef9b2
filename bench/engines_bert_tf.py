"""bert_tf's engines: what a user calls, timed whole, with each model call reported by `BertEmbedder.on_call`."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from bench.context import Context
from bench.fidelity import FIDELITY_SENTENCES, save_token_vectors
from bench.flops import bert_tf_flop_model
from bench.measure import ModelTimer, measure_passes, rss_now, tf_threads
from bench.registry import engine

NEEDS = ("tensorflow", "tensorflow_text")


def _import_tf() -> float:
    """Imports TensorFlow the way bert_tf does (quietly, oneDNN on); returns how long it took."""
    t = time.perf_counter()
    from bert_tf.runtime import tf  # noqa: F401

    return time.perf_counter() - t


def _measure(ctx: Context, import_s: float, make_embedder: Callable, call: Callable) -> tuple[dict, object]:
    """Start-up, the passes, the model calls inside them and the tokenizer alone, for `call(embedder, texts)`."""
    from bert_tf.runtime import tf

    threads = tf_threads(tf)
    rss_imported = rss_now()
    t1 = time.perf_counter()
    embedder = make_embedder()
    loaded_s = time.perf_counter() - t1
    call(embedder, ["Hello world."])
    ready_s = time.perf_counter() - t1
    rss_ready = rss_now()
    flop_model, flops = bert_tf_flop_model(embedder.config)
    timer = ModelTimer(flops)
    embedder.on_call = lambda c: timer.add(c.seconds, c.rows, c.padded_length, c.real_tokens, c.span)
    result = measure_passes(lambda: call(embedder, ctx.texts), ctx.runs, on_pass=timer.new_pass)
    embedder.on_call = None
    # The tokenizer alone on the whole workload (its public tf.function).
    tokenize = []
    for _ in range(3):
        t = time.perf_counter()
        out = embedder.tokenizer.tokenize(tf.constant([s.encode("utf-8") for s in ctx.texts]))
        out["pieces"].flat_values.numpy()
        tokenize.append(time.perf_counter() - t)
    result.update(timer.record())
    result.update({
        "threads": threads, "import_s": import_s, "load_s": loaded_s, "ready_s": ready_s, "rss_ready": rss_ready,
        "rss_imported": rss_imported, "flop_model": flop_model, "tokenize_s": statistics.median(tokenize),
    })
    return result, embedder


def precision_api() -> dict[str, bool]:
    """Which of bert_tf's public entry points take `precision=` (the reduced-precision option)."""
    import inspect

    from bert_tf import BertEmbedder
    from bert_tf.embed.api import get_bert_embeddings, get_embedder

    return {fn.__name__: "precision" in inspect.signature(fn).parameters
            for fn in (BertEmbedder.from_checkpoint, get_bert_embeddings, get_embedder)}


def _words(ctx: Context, name: str, precision: str | None) -> dict:
    """`get_bert_embeddings` timed whole, at `precision` (None: the library's default, float32, not passed)."""
    import_s = _import_tf()  # first: bert_tf's embedding modules import TensorFlow
    from bert_tf import BertEmbedder
    from bert_tf.embed.api import get_bert_embeddings, get_embedder

    kwargs = {} if precision is None else {"precision": precision}
    api = precision_api()
    if precision is not None and not api["from_checkpoint"]:
        return {"skipped": f"skipped: this bert_tf has no precision option (BertEmbedder.from_checkpoint("
                           f"precision={precision!r})); `git merge main` once it lands"}
    if precision is None or (api["get_bert_embeddings"] and api["get_embedder"]):
        def call(embedder, texts):
            out = get_bert_embeddings(texts, checkpoint=ctx.checkpoint, batch_size=ctx.bert_tf_batch_size,
                                      progress=False, **kwargs)
            assert len(out) == len(texts) and all(out), "every sentence should have words"
            return out

        # get_bert_embeddings runs the cached embedder that get_embedder returns: the one timed here.
        make, how = (lambda: get_embedder(ctx.checkpoint, **kwargs)), "get_bert_embeddings"
    else:  # the option reached BertEmbedder first: the same work through its method
        def call(embedder, texts):
            out = embedder.embed_words(texts, batch_size=ctx.bert_tf_batch_size, progress=False)
            assert len(out) == len(texts) and all(out), "every sentence should have words"
            return out

        make, how = (lambda: BertEmbedder.from_checkpoint(ctx.checkpoint, **kwargs)), "BertEmbedder.embed_words"
    result, embedder = _measure(ctx, import_s, make, call)
    result["api"] = how
    result["precision"] = getattr(embedder, "precision", "float32")
    # Probe for the agreement check: the sum of the last four layers per token, first 4 texts.
    states = embedder.token_states(ctx.texts[:4])
    np.savez(ctx.workdir / f"probe_{name}.npz", *[s.states[-4:].sum(axis=0) for s in states])
    result["probe"] = f"probe_{name}.npz"
    # The fidelity check's token vectors, after the timing (not counted in it).
    # A few texts per call: every layer of every token is returned, and this must not raise the peak RSS.
    texts = ctx.texts[:FIDELITY_SENTENCES]
    vectors = [s.states[-4:].sum(axis=0) for start in range(0, len(texts), 8)
               for s in embedder.token_states(texts[start:start + 8])]
    result.update(save_token_vectors(ctx.workdir, name, vectors))
    return result


@engine("bert_tf_words", "bert_tf `get_bert_embeddings` (tokenize, model, word pooling)", NEEDS)
def bert_tf_words(ctx: Context) -> dict:
    return _words(ctx, "bert_tf_words", None)


@engine("bert_tf_bf16", "bert_tf `get_bert_embeddings(..., precision=\"bfloat16\")`", NEEDS, precision="bfloat16",
        reference="bert_tf_words")
def bert_tf_bf16(ctx: Context) -> dict:
    return _words(ctx, "bert_tf_bf16", "bfloat16")


@engine("bert_tf_int8", "bert_tf `get_bert_embeddings(..., precision=\"int8\")` (dynamic int8 dense layers)", NEEDS,
        precision="int8", reference="bert_tf_words")
def bert_tf_int8(ctx: Context) -> dict:
    return _words(ctx, "bert_tf_int8", "int8")


@engine("bert_tf_int8_split", "bert_tf int8 as `bert-tf embed --precision int8` runs it: two calls at once, one "
        "thread each (BERT_TF_STREAMS=2)", NEEDS, precision="int8", reference="bert_tf_words",
        env=(("BERT_TF_STREAMS", "2"), ("TF_NUM_INTRAOP_THREADS", "1"), ("TF_NUM_INTEROP_THREADS", "2")))
def bert_tf_int8_split(ctx: Context) -> dict:
    return _words(ctx, "bert_tf_int8_split", "int8")


@engine("bert_tf_int8_litert", "bert_tf `get_bert_embeddings(..., precision=\"int8-litert\")` (int8 on LiteRT's "
        "XNNPACK kernels; converted once per checkpoint, cached)", NEEDS, precision="int8-litert",
        reference="bert_tf_words")
def bert_tf_int8_litert(ctx: Context) -> dict:
    return _words(ctx, "bert_tf_int8_litert", "int8-litert")


@engine("bert_tf_sentences", "bert_tf `BertEmbedder.sentence_vectors` (mean of layer -2)", NEEDS)
def bert_tf_sentences(ctx: Context) -> dict:
    import_s = _import_tf()
    from bert_tf import BertEmbedder

    def call(embedder, texts):
        out = embedder.sentence_vectors(texts, batch_size=ctx.bert_tf_batch_size, progress=False)
        assert out.shape == (len(texts), embedder.hidden_size)
        return out

    result, embedder = _measure(ctx, import_s, lambda: BertEmbedder.from_checkpoint(ctx.checkpoint), call)
    np.savez(ctx.workdir / "probe_bert_tf_sentences.npz", embedder.sentence_vectors(ctx.texts[:4]))
    result["probe"] = "probe_bert_tf_sentences.npz"
    return result
