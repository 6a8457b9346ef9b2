"""How well word vectors tell senses apart, on the labelled sense set (tests/index/data/senses.tsv).

Measures, with the real all-MiniLM-L6-v2 word vectors (default options: the sum of the last
four layers):

(a) word-in-context retrieval: each occurrence as a query; is the nearest other occurrence of
    the same word of the same sense? Under each scoring mode of `bert_tf.index.scoring`, with
    the corpus statistics taken from the labelled occurrences, or from every word occurrence of
    the sentences (a background of other words).
(b) sense clustering: `cluster_senses`'s adjusted Rand index per word (mean over words) against
    the labels, against a one-cluster baseline (ARI 0), with the number of senses chosen vs the
    true number; and the best silhouette of words restricted to ONE labelled sense, which is
    what the one-sense rule must reject.

Usage:
    python -m bench.senses_eval [--quick] [--checkpoint DIR] [--json OUT]

`--quick` uses the first 6 words only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from bert_tf.index.scoring import SCORING_MODES, VectorStats, normalize
from bert_tf.index.senses import ONE_SENSE_SILHOUETTE, cluster_senses
from tests.index.conftest import SenseSet, embed_sense_set, load_sense_set


def subset(sense_set: SenseSet, words) -> tuple[SenseSet, np.ndarray]:
    rows = np.flatnonzero(np.isin(sense_set.words, list(words)))
    pick = lambda column: tuple(column[i] for i in rows)  # noqa: E731
    return SenseSet(pick(sense_set.words), pick(sense_set.senses), pick(sense_set.sentences)), rows


def retrieval(sense_set: SenseSet, unit: np.ndarray) -> float:
    """Share of occurrences whose nearest other occurrence of the same word has the same sense."""
    hits = total = 0
    for word in sense_set.vocabulary:
        rows = sense_set.rows_of(word)
        labels = sense_set.labels_of(word)
        scores = unit[rows] @ unit[rows].T
        np.fill_diagonal(scores, -np.inf)
        hits += int((labels[scores.argmax(axis=1)] == labels).sum())
        total += len(rows)
    return hits / total


def clustering(sense_set: SenseSet, unit: np.ndarray, **options) -> dict:
    from sklearn.metrics import adjusted_rand_score

    aris, chosen, true = [], [], []
    for word in sense_set.vocabulary:
        rows = sense_set.rows_of(word)
        labels = sense_set.labels_of(word)
        clusters = cluster_senses(unit[rows], **options)
        aris.append(adjusted_rand_score(labels, clusters.labels))
        chosen.append(clusters.n_senses)
        true.append(labels.max() + 1)
    chosen, true = np.array(chosen), np.array(true)
    return {"ari_mean": float(np.mean(aris)), "ari_min": float(np.min(aris)), "one_cluster_ari": 0.0,
            "k_exact": float(np.mean(chosen == true)), "k_mean_chosen": float(chosen.mean()),
            "k_mean_true": float(true.mean()), "worst": [sense_set.vocabulary[i] for i in np.argsort(aris)[:3]]}


def one_sense_silhouettes(sense_set: SenseSet, unit: np.ndarray) -> list[float]:
    """The best silhouette (k = 2..4) of each single labelled sense's occurrences."""
    out = []
    for word in sense_set.vocabulary:
        rows = sense_set.rows_of(word)
        labels = sense_set.labels_of(word)
        for sense in range(labels.max() + 1):
            clusters = cluster_senses(unit[rows[labels == sense]], max_senses=4)
            out.append(max(clusters.scores.values()) if clusters.scores else float("-inf"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 6 words only")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: resolved as the CLI does)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from bert_tf.embed.embedder import BertEmbedder

    sense_set = load_sense_set()
    if args.quick:
        sense_set, _ = subset(sense_set, sense_set.vocabulary[:6])
    started = time.perf_counter()
    embedder = BertEmbedder.from_checkpoint(args.checkpoint)
    embedded = embed_sense_set(embedder, sense_set)
    seconds = time.perf_counter() - started
    report = {"checkpoint": embedder.space().to_dict(), "rows": len(sense_set), "words": len(sense_set.vocabulary),
              "senses": sum(int(sense_set.labels_of(w).max()) + 1 for w in sense_set.vocabulary),
              "embed_seconds": round(seconds, 1), "retrieval": {}, "clustering": {}}
    sources = {"labelled": VectorStats().update(embedded.vectors),
               "background": VectorStats().update(embedded.background)}
    for source, stats in sources.items():
        for mode in SCORING_MODES:
            if mode == "none" and source != "labelled":
                continue  # no statistics used
            unit = normalize(embedded.vectors, stats, mode)
            key = mode if mode == "none" else f"{mode}/{source}"
            report["retrieval"][key] = round(retrieval(sense_set, unit), 4)
            report["clustering"][key] = clustering(sense_set, unit)
    unit = normalize(embedded.vectors, sources["labelled"], "center")
    single = one_sense_silhouettes(sense_set, unit)
    multi = [max(cluster_senses(unit[sense_set.rows_of(w)]).scores.values()) for w in sense_set.vocabulary]
    report["silhouette"] = {
        "threshold": ONE_SENSE_SILHOUETTE,
        "one_sense_best": {"median": float(np.median(single)), "max": float(np.max(single)),
                           "share_over_threshold": float(np.mean(np.array(single) >= ONE_SENSE_SILHOUETTE))},
        "multi_sense_best": {"median": float(np.median(multi)), "min": float(np.min(multi)),
                             "share_over_threshold": float(np.mean(np.array(multi) >= ONE_SENSE_SILHOUETTE))}}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
