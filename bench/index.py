"""Occurrence index: build throughput beyond embedding, bytes per occurrence, query latency, recall@10.

    python -m bench.index --quick          # 10k occurrences (while developing)
    python -m bench.index                  # 10k, 100k and 1M (minutes; run once)
    python -m bench.index --sizes 100000 --scann   # also ScaNN, for the choice of library

The vectors are synthetic, of the real width (384, all-MiniLM-L6-v2's): a shared offset
(BERT's vectors all lean one way, which is why raw cosines are all high), plus one of
`CENTRES` "word sense" centres, plus noise, so occurrences bunch as a corpus's do. The
index is written through `IndexWriter`, the code every build runs after the embedder, so
the build time is what indexing adds to embedding. A query is a stored occurrence moved by
noise (the same word in a new sentence), normalised as the index normalises queries.

Recall@10 of the approximate index is against exact search over the same stored vectors;
the storage rows compare exact search over float16 / int8 vectors with exact search over
the float32 vectors before compaction.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bert_tf.embed.options import DEFAULT_LAYERS
from bert_tf.embed.space import VectorSpace
from bert_tf.files.atomic import staged_directory
from bert_tf.index import IndexWriter, OccurrenceIndex
from bert_tf.index.layout import WORDS
from bert_tf.index.scoring import DEFAULT_SCORING, VectorStats, normalize

WIDTH = 384
CENTRES = 5000
WORDS_PER_TEXT = 20
QUERIES = 200
CHUNK = 50_000


def synthetic(n: int, seed: int = 0):
    """Yields `[rows, WIDTH]` float32 chunks of the synthetic corpus (memory flat in n)."""
    rng = np.random.default_rng(seed)
    offset = 3 * rng.normal(size=WIDTH)
    centres = rng.normal(size=(CENTRES, WIDTH))
    for start in range(0, n, CHUNK):
        r = np.random.default_rng([seed, start])
        m = min(CHUNK, n - start)
        yield (offset + centres[r.integers(0, CENTRES, m)] + 0.7 * r.normal(size=(m, WIDTH))).astype(np.float32)


def build(directory: Path, n: int, dtype: str) -> float:
    space = VectorSpace("synthetic", True, "float32", DEFAULT_LAYERS, "sum", "mean", WIDTH, "mean", -2, 512,
                        name="synthetic")
    started = time.perf_counter()
    with staged_directory(directory, replace=True) as staging:
        writer = IndexWriter(staging, space=space, width=WIDTH, sentence_width=WIDTH, vector_dtype=dtype)
        for chunk in synthetic(n):
            for start in range(0, len(chunk), WORDS_PER_TEXT):
                part = chunk[start:start + WORDS_PER_TEXT]
                words = [(f"w{(start + i) % 997}", 3 * i, 3 * i + 2) for i in range(len(part))]
                writer.add(str(start), " ".join(w for w, _, _ in words), words, part, part[0])
        writer.finish(source={"kind": "bench"})
    return time.perf_counter() - started


def float32_truth(n: int) -> np.ndarray:
    raw_stats = VectorStats()
    for chunk in synthetic(n):
        raw_stats.update(chunk)
    return np.concatenate([normalize(c, raw_stats, DEFAULT_SCORING) for c in synthetic(n)]), raw_stats


def queries(index, n: int, count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, count, replace=False)
    raw = np.concatenate(list(synthetic(n)))[rows] if n <= 200_000 else _rows_of(n, rows)
    moved = raw + 0.35 * rng.normal(size=raw.shape).astype(np.float32)
    return normalize(moved, index.stats[WORDS], index.scoring)  # as the index scores a query word


def _rows_of(n, rows):
    out = np.empty((len(rows), WIDTH), np.float32)
    for k, chunk in enumerate(synthetic(n)):
        lo = k * CHUNK
        hit = (rows >= lo) & (rows < lo + len(chunk))
        out[hit] = chunk[rows[hit] - lo]
    return out


def exact_top(matrix: np.ndarray, qs: np.ndarray, k: int = 10) -> np.ndarray:
    out = []
    for start in range(0, len(qs), 50):
        scores = qs[start:start + 50] @ matrix.T
        out.extend(np.argpartition(-s, k)[:k] for s in scores)
    return np.array(out)


def recall(got, want) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


def timed_search(searcher, qs, k=10):
    times, found = [], []
    for q in qs[:20]:  # warm: the first calls start BLAS's threads and fault the pages in
        searcher.search(q, k)
    for q in qs:
        t = time.perf_counter()
        _, ids = searcher.search(q, k)
        times.append(time.perf_counter() - t)
        found.append(ids)
    times = np.array(times) * 1000
    return found, float(np.percentile(times, 50)), float(np.percentile(times, 99))


def scann_searcher(matrix: np.ndarray, leaves_fraction: float = 0.02):
    """ScaNN through its pybind module: `import scann` fails under TF 2.21 (an ABSL symbol of its TF ops),
    so the package's __init__ (which imports those ops) is bypassed."""
    import types

    import importlib.util

    spec = importlib.util.find_spec("scann")
    if spec is None:
        return None
    package = types.ModuleType("scann")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["scann"] = package
    from scann.scann_ops.py import scann_ops_pybind

    leaves = max(16, int(2 * np.sqrt(len(matrix))))
    builder = scann_ops_pybind.builder(matrix, 10, "dot_product").tree(
        num_leaves=leaves, num_leaves_to_search=max(8, int(leaves * leaves_fraction)),
        training_sample_size=min(len(matrix), 250_000)).score_ah(2, anisotropic_quantization_threshold=0.2)
    started = time.perf_counter()
    searcher = builder.reorder(100).build()
    build_s = time.perf_counter() - started

    class Wrapped:
        seconds = build_s

        def search(self, q, k):
            ids, scores = searcher.search(q, final_num_neighbors=k)
            return scores, np.asarray(ids)

    return Wrapped()


def run(n: int, work: Path, *, int8: bool, scann: bool) -> dict:
    print(f"--- {n} occurrences", file=sys.stderr, flush=True)
    row = {"occurrences": n}
    directory = work / f"ix-{n}"
    seconds = build(directory, n, "float16")
    started = time.perf_counter()
    OccurrenceIndex.open(directory).close()  # what every query command pays: the checksums verified
    open_s = time.perf_counter() - started
    index = OccurrenceIndex.open(directory, verify=False)
    size = sum(p.stat().st_size for p in directory.iterdir())
    approximate = index.manifest["approximate"].get("words")
    approximate_s = approximate["seconds"] if approximate else None
    row.update(build_s=round(seconds, 2), approximate_build_s=approximate_s, open_verified_s=round(open_s, 3),
               occurrences_per_s=round(n / seconds),
               bytes_per_occurrence=round(size / n), searcher=index.searcher("words").kind,
               files={p.name: p.stat().st_size for p in directory.iterdir()})
    truth32, _ = float32_truth(n)
    qs = queries(index, n, QUERIES)
    want32 = exact_top(truth32, qs)
    stored = index.words.all()
    want16 = exact_top(stored, qs)
    row["recall_float16_vs_float32"] = recall(want16, want32)
    del truth32
    from bert_tf.index.search import ExactSearch

    exact = ExactSearch(stored)
    _, p50, p99 = timed_search(exact, qs)
    row.update(exact_p50_ms=round(p50, 3), exact_p99_ms=round(p99, 3))
    if approximate:
        found, p50, p99 = timed_search(index.searcher("words"), qs)
        row.update(approximate=approximate, approximate_p50_ms=round(p50, 3),
                   approximate_p99_ms=round(p99, 3), recall_at_10=recall(found, want16))
    else:
        # Below the limit the index is exact; still measure what an approximate index would do here.
        from bert_tf.index.search import ApproximateSearch, build_approximate

        settings = build_approximate(index.words, work / "probe.faiss")
        probe = ApproximateSearch(work / "probe.faiss", index.words, nprobe=settings["nprobe"])
        found, p50, p99 = timed_search(probe, qs)
        row.update(approximate_if_built=settings, approximate_p50_ms=round(p50, 3),
                   approximate_p99_ms=round(p99, 3), recall_at_10=recall(found, want16))
    if scann:
        searcher = scann_searcher(stored)
        if searcher is not None:
            found, p50, p99 = timed_search(searcher, qs)
            row.update(scann_build_s=round(searcher.seconds, 2), scann_p50_ms=round(p50, 3),
                       scann_p99_ms=round(p99, 3), scann_recall_at_10=recall(found, want16))
    index.close()
    del stored, exact
    if int8:
        directory8 = work / f"ix8-{n}"
        build(directory8, n, "int8")
        index8 = OccurrenceIndex.open(directory8, verify=False)
        row["int8_bytes_per_occurrence"] = round(sum(p.stat().st_size for p in directory8.iterdir()) / n)
        truth32, _ = float32_truth(n)
        row["recall_int8_vs_float32"] = recall(exact_top(index8.words.all(), qs), exact_top(truth32, qs))
        index8.close()
        shutil.rmtree(directory8)
    shutil.rmtree(directory)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def markdown(report: dict) -> str:
    """The results as the table of docs/index.md."""
    lines = ["| occurrences | build (s) | occurrences/s | bytes/occurrence | search | p50 (ms) | p99 (ms) "
             "| recall@10 vs exact | exact p50 / p99 (ms) | float16 / int8 recall vs float32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        approximate = r["searcher"] == "approximate"
        p50, p99 = (r["approximate_p50_ms"], r["approximate_p99_ms"]) if approximate else \
            (r["exact_p50_ms"], r["exact_p99_ms"])
        search = r["approximate"]["factory"] + f", nprobe {r['approximate']['nprobe']}" if approximate else "exact"
        storage = f"{r['recall_float16_vs_float32']:.3f}"
        if "recall_int8_vs_float32" in r:
            storage += f" / {r['recall_int8_vs_float32']:.3f} ({r['int8_bytes_per_occurrence']} B)"
        lines.append(f"| {r['occurrences']:,} | {r['build_s']:.1f} | {r['occurrences_per_s']:,} | "
                     f"{r['bytes_per_occurrence']:,} | {search} | {p50:.3f} | {p99:.3f} | "
                     f"{r['recall_at_10']:.3f}{'' if approximate else ' (if built)'} | "
                     f"{r['exact_p50_ms']:.2f} / {r['exact_p99_ms']:.2f} | {storage} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k occurrences only")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--scann", action="store_true",
                        help="also measure ScaNN (via its pybind module), at sizes up to 100k (its build takes "
                             "minutes beyond)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 storage comparison")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000, 1_000_000])
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [run(n, work, int8=not args.no_int8 and n <= 100_000, scann=args.scann and n <= 100_000)
            for n in sizes]
    report = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "load_average": os.getloadavg(), "width": WIDTH, "queries": QUERIES, "results": rows}
    print(json.dumps(report, indent=1))
    print(markdown(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
