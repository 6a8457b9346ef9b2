"""How short word-in-context queries ("river bank") fare against full sentences, on the labelled sense set.

An occurrence index is built over the sentences of tests/index/data/senses.tsv (29 ambiguous
words, 2-3 senses each, 10-15 labelled sentences a word) with the real all-MiniLM-L6-v2 (the
offline default model). Each query of bench/data/short_queries.tsv (two per sense, two or three
words: "river bank", "bank loan") asks `search_word(word, query, k=3)`, as `bert-tf search
--word` does; a hit is right when its sentence has the query's sense. Reported per way of
asking: precision of the first hit (P@1) and of the top three (P@3), over all queries:

- `bare`: the phrase as typed ("river bank");
- `framed`: the phrase in a neutral sentence ("They talked about the river bank.");
- `sentence` (the reference): every labelled sentence as the query, itself left out of its hits.

For each of the index's scorings: its default `standardize`, `center` and raw cosine (`none`).

Usage:
    python -m bench.short_queries [--checkpoint DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.index.conftest import load_sense_set

QUERIES = Path(__file__).with_name("data") / "short_queries.tsv"
FRAME = "They talked about the {}."
K = 3  # a word has 4-7 other sentences of each sense, so a perfect P@3 is possible for every query


def load_queries() -> list[tuple[str, str, str]]:
    with open(QUERIES, encoding="utf-8", newline="") as f:
        return [(r["word"], r["sense"], r["query"]) for r in csv.DictReader(f, delimiter="\t")]


def precision(index, word: str, query: str, sense: str, sense_of: dict, leave_out: str | None = None) -> tuple:
    hits = [h for h in index.search_word(word, query, k=K + (leave_out is not None)) if h.text != leave_out][:K]
    right = [sense_of[h.text] == sense for h in hits]
    return float(right[0]), float(np.mean(right))


def measure(index, sense_set, queries) -> dict:
    sense_of = dict(zip(sense_set.sentences, sense_set.senses))
    asked = {"bare": [(w, s, q, None) for w, s, q in queries],
             "framed": [(w, s, FRAME.format(q), None) for w, s, q in queries],
             "sentence": [(w, s, t, t) for w, s, t in zip(sense_set.words, sense_set.senses, sense_set.sentences)]}
    report = {}
    for way, items in asked.items():
        scores = np.array([precision(index, w, q, s, sense_of, leave) for w, s, q, leave in items])
        report[way] = {"queries": len(items), "p_at_1": round(float(scores[:, 0].mean()), 3),
                       f"p_at_{K}": round(float(scores[:, 1].mean()), 3)}
        if way != "sentence":
            report[way]["first_hit_wrong"] = [q for (w, s, q, _), (first, _) in zip(items, scores) if not first]
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder (default: resolved as the CLI does)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from bert_tf.embed.embedder import BertEmbedder
    from bert_tf.index import OccurrenceIndex, build_index

    sense_set, queries = load_sense_set(), load_queries()
    embedder = BertEmbedder.from_checkpoint(args.checkpoint)
    report = {"checkpoint": embedder.space().to_dict(), "labelled_sentences": len(sense_set), "k": K,
              "short_queries": len(queries), "frame": FRAME, "scoring": {}}
    with tempfile.TemporaryDirectory(prefix="bench-short-queries-") as tmp:
        for scoring in ("standardize", "center", "none"):
            out = Path(tmp) / scoring
            build_index(list(sense_set.sentences), out, embedder=embedder, scoring=scoring, progress=False)
            with OccurrenceIndex.open(out, embedder=embedder) as index:
                report["scoring"][scoring] = measure(index, sense_set, queries)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
