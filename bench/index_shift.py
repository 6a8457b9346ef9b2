"""`shift` on labelled drift sets: which measure ranks changed words first, how well `senses --by` recovers shares.

Each drift set (tests/index/conftest.py `make_drift_set`, one per seed) puts the labelled
sense set's 28 words into two groups; half of them change their first sense's share by
0.25 to 1, the others keep one share. The index is built with the real all-MiniLM-L6-v2,
then every measure ranks the 28 words, raw and less its permutation baseline (what
`shift` ranks by), and is scored by Spearman's rho with the true change and by the share
of changed words among its top 10. `senses --by source` is scored by the error of each
group's share of the first sense (senses chosen from the data, each read as the labelled
sense most of its occurrences have).

With `--occurrences N` it also times `shift` on a synthetic index of N occurrences
(random unit vectors, 2 groups, a Zipf vocabulary) and reports the peak memory; on a
shared or busy machine the time is only indicative.

    PYTHONPATH=. python bench/index_shift.py --checkpoint /path/to/all-MiniLM-L6-v2 [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert_tf.index import build_index  # noqa: E402
from bert_tf.index.shift import MEASURES  # noqa: E402
from tests.index.conftest import load_sense_set, make_drift_set  # noqa: E402


def evaluate(index, drift, words) -> dict:
    """Per measure and kind (raw, less baseline): Spearman with the true change and precision of the top 10."""
    from scipy.stats import spearmanr

    out = {}
    for measure in MEASURES:
        report = index.shift("source", measure=measure, min_count=5, words=words)
        truth = np.array([drift.change[w.word] for w in report.words])
        for kind in ("raw", "excess"):
            score = np.array([w.measures[measure] if kind == "raw" else w.score for w in report.words])
            top = np.argsort(-score, kind="stable")[:10]
            # Among the unchanged words, a score that follows the count is a count effect, not a change.
            fewer = np.array([min(w.counts) for w in report.words])
            same = truth == 0
            out[f"{measure}/{kind}"] = {"spearman": float(spearmanr(score, truth).statistic),
                                        "precision_at_10": float(np.mean(truth[top] > 0)),
                                        "count_bias": float(spearmanr(score[same], fewer[same]).statistic)}
    return out


def share_errors(index, drift, sense_set) -> list[float]:
    """|estimated - true| share of each word's first sense, per word and group (`senses --by`, senses chosen
    from the data; each stands for the labelled sense most of its occurrences have)."""
    errors = []
    for word in sense_set.vocabulary:
        report = index.senses(word, by="source")
        texts = index.text_ids_of(report.clustered)
        first = np.array([sense_set.senses[sense_set.sentences.index(drift.texts[t])] == drift.senses[word][0]
                          for t in texts])
        labels = np.asarray(report.labels)
        is_first = [first[labels == sense].mean() > 0.5 for sense in range(report.n_senses)]
        for group, true in zip(report.groups, drift.shares[word]):
            errors.append(abs(sum(s for s, f in zip(group.shares, is_first) if f) - true))
    return errors


def synthetic(n_occurrences: int, embedder, seed: int = 0) -> dict:
    """Time and peak memory of `shift` on a synthetic index of `n_occurrences` (random vectors in the
    embedder's space: the model is not run)."""
    from bert_tf.files.atomic import staged_directory
    from bert_tf.files.owned import INDEX
    from bert_tf.index import IndexWriter, OccurrenceIndex

    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(20_000)]
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    zipf /= zipf.sum()
    words_per_text, width = 20, embedder.hidden_size
    space = embedder.space()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ix")
        started = time.perf_counter()
        with staged_directory(out, owner=INDEX) as staging:
            writer = IndexWriter(staging, space=space, width=width, sentence_width=width)
            for t in range(n_occurrences // words_per_text):
                words = rng.choice(len(vocabulary), words_per_text, p=zipf)
                text = " ".join(vocabulary[w] for w in words)
                spans, start = [], 0
                for w in words:
                    spans.append((vocabulary[w], start, start + len(vocabulary[w])))
                    start += len(vocabulary[w]) + 1
                writer.add(str(t), text, spans, rng.normal(size=(words_per_text, width)).astype(np.float32),
                           rng.normal(size=width).astype(np.float32), {"source": "A" if t % 2 else "B"})
            writer.finish(source={"kind": "synthetic"})
        built = time.perf_counter() - started
        index = OccurrenceIndex.open(out, verify=False)
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        started = time.perf_counter()
        report = index.shift("source", min_count=10)
        seconds = time.perf_counter() - started
    return {"occurrences": n_occurrences, "build_seconds": round(built, 1), "shift_seconds": round(seconds, 1),
            "words_ranked": report.candidates, "index_bytes_per_occurrence": round(size / n_occurrences, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="all-MiniLM-L6-v2 in Google's layout")
    parser.add_argument("--seeds", type=int, default=5, help="drift sets (0: only the synthetic timing)")
    parser.add_argument("--occurrences", type=int, help="also time shift on a synthetic index this large")
    args = parser.parse_args(argv)
    from bert_tf.embed.embedder import BertEmbedder

    embedder = BertEmbedder.from_checkpoint(args.checkpoint)
    if args.seeds:
        sense_set = load_sense_set()
        results, errors = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                drift = make_drift_set(sense_set, seed=seed)
                index = build_index(list(drift.texts), os.path.join(tmp, f"drift{seed}"), embedder=embedder,
                                    fields=list(drift.fields))
                results.append(evaluate(index, drift, sense_set.vocabulary))
                errors.extend(share_errors(index, drift, sense_set))
                print(f"seed {seed}: " + "  ".join(f"{k} {v['spearman']:.3f}/{v['precision_at_10']:.2f}"
                                                    for k, v in results[-1].items()), flush=True)
        print(f"\nmean over {args.seeds} drift sets (Spearman with the true change / precision of the top 10 / "
              "Spearman of the unchanged words' scores with their count):")
        for key in results[0]:
            rho = np.mean([r[key]["spearman"] for r in results])
            p10 = np.mean([r[key]["precision_at_10"] for r in results])
            bias = np.nanmean([r[key]["count_bias"] for r in results])
            worst = min(r[key]["spearman"] for r in results)
            print(f"  {key:12s} {rho:.3f} (worst {worst:.3f}) / {p10:.2f} / {bias:+.3f}")
        print(f"senses --by share error: mean {np.mean(errors):.3f}, 90th percentile "
              f"{np.quantile(errors, 0.9):.3f}, max {np.max(errors):.3f} over {len(errors)} word-groups")
    if args.occurrences:
        print(json.dumps(synthetic(args.occurrences, embedder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
