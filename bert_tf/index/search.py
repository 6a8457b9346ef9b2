"""Nearest neighbours of unit vectors by inner product (cosine): exact, or faiss IVF with an exact re-ranking.

Below `EXACT_LIMIT` rows the whole matrix is scored with one matrix product (exact, and
a few milliseconds at most there). Above it, a faiss `IVF{nlist},SQ8` index
(inverted lists over k-means cells, 8-bit codes) proposes candidates from the
`nprobe` closest cells and the candidates are scored again on the stored vectors, so
the scores returned are the same numbers exact search would give; only a true
neighbour outside the probed cells can be missed. bench/index.py measures the recall,
and why faiss rather than ScaNN (docs/index.md).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from bert_tf.index.vectors import VectorStore

logger = logging.getLogger("bert_tf")

#: Up to this many rows, search is exact: one matrix product of [n, 384] float32 stays a few ms (bench/index.py).
EXACT_LIMIT = 20_000
#: Candidates the approximate index proposes per result asked for, before re-ranking (at least `MIN_CANDIDATES`).
CANDIDATES_PER_RESULT = 4
MIN_CANDIDATES = 64
#: Training rows per k-means cell: k-means is most of the build time, and 20 recalled as well as 40.
TRAIN_PER_CELL = 20


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` best of `scores` (1-D), best first; equal scores in the order of `ids`."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    if k < len(scores):
        keep = np.argpartition(-scores, k - 1)[:k]
        scores, ids = scores[keep], ids[keep]
    order = np.lexsort((ids, -scores))
    return scores[order], ids[order]


def search_rows(store: VectorStore, rows: np.ndarray, query: np.ndarray, k: int,
                chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The `k` of `rows` (ids into `store`) with the largest inner product with `query`, best first.

    Exact, a chunk of rows at a time, so a filter that keeps most of a large index (`--where`)
    needs memory for one chunk and the `k` best, not for every row it keeps.
    """
    query = np.asarray(query, np.float32)
    best_scores, best_ids = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for start in range(0, len(rows), chunk):
        part = np.asarray(rows[start:start + chunk], np.int64)
        scores, ids = top_k(store.rows(part) @ query, part, k)
        best_scores, best_ids = top_k(np.concatenate([best_scores, scores]), np.concatenate([best_ids, ids]), k)
    return best_scores, best_ids


class ExactSearch:
    """Scores every row: `[n, width]` unit rows in memory as float32."""

    kind = "exact"

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.ascontiguousarray(matrix, np.float32)
        self._ids = np.arange(len(self.matrix), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.matrix)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(scores, ids)` of the `k` rows with the largest inner product with the unit `query`, best first."""
        return top_k(self.matrix @ np.asarray(query, np.float32), self._ids, k)


def n_cells(n_rows: int) -> int:
    """k-means cells of the approximate index: 4 sqrt(n), the usual faiss rule (fewer, larger cells
    recalled less for the same work in bench/index.py)."""
    return max(16, int(4 * math.sqrt(n_rows)))


def default_nprobe(cells: int) -> int:
    """Cells probed per query: a 32nd of them, at least 8 (bench/index.py measures the recall this gives)."""
    return max(8, cells // 32)


def build_approximate(store: VectorStore, path: str | os.PathLike, *, seed: int = 0) -> dict:
    """Trains and writes the faiss IVF index of `store`'s rows; returns its settings for the manifest."""
    import faiss

    n, width = len(store), store.width
    cells = n_cells(n)
    index = faiss.index_factory(width, f"IVF{cells},SQ8", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.min_points_per_centroid = TRAIN_PER_CELL  # faiss warns below 39 otherwise
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, TRAIN_PER_CELL * cells), replace=False))
    index.train(store.rows(sample))
    for start in range(0, n, 65536):
        stop = min(start + 65536, n)
        index.add(store.rows(np.arange(start, stop)))
    faiss.write_index(index, os.fspath(path))
    return {"kind": "faiss", "factory": f"IVF{cells},SQ8", "cells": cells, "nprobe": default_nprobe(cells)}


class ApproximateSearch:
    """faiss IVF candidates, re-scored exactly on the stored vectors."""

    kind = "approximate"

    def __init__(self, path: str | os.PathLike, store: VectorStore, *, nprobe: int):
        import faiss

        self.index = faiss.read_index(os.fspath(path))
        self.index.nprobe = int(nprobe)
        self.store = store

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def nprobe(self) -> int:
        return self.index.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = int(value)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wanted = max(CANDIDATES_PER_RESULT * k, MIN_CANDIDATES)
        _, candidates = self.index.search(np.asarray(query, np.float32)[None, :], wanted)
        candidates = candidates[0][candidates[0] >= 0].astype(np.int64)
        scores = self.store.rows(candidates) @ np.asarray(query, np.float32)
        return top_k(scores, candidates, k)


def open_search(path: Path, store: VectorStore, approximate: dict | None):
    """The search over `store`: the faiss index at `path` where the build made one (`approximate`: its
    settings in the manifest), else exact."""
    if approximate:
        return ApproximateSearch(path, store, nprobe=approximate["nprobe"])
    if len(store) > EXACT_LIMIT:
        logger.info("exact search over %d vectors of %s", len(store), path.parent)
    return ExactSearch(store.all())
