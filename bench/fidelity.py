"""Fidelity of a reduced-precision engine to float32: cosines of its token vectors against the same model's.

Every engine that takes part writes the sum of the last four layers for each token of the
first `FIDELITY_SENTENCES` sentences of the workload ([CLS] and [SEP] included), in input
order, as it computed them (same batches as its timed passes where it batches). The report
compares an engine with its `reference` (registry.py): bert_tf bfloat16 with bert_tf float32,
Hugging Face bfloat16 with Hugging Face float32, ONNX Runtime int8 with ONNX Runtime float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

#: How many of the workload's sentences (from the first) the fidelity check covers.
FIDELITY_SENTENCES = 128


def fidelity_file(name: str) -> str:
    return f"fidelity_{name}.npz"


def save_token_vectors(workdir: Path, name: str, vectors: Sequence[np.ndarray]) -> dict:
    """Writes one engine's token vectors (one [tokens, hidden] array per sentence) for the fidelity check."""
    vectors = [np.asarray(v, np.float32) for v in vectors[:FIDELITY_SENTENCES]]
    np.savez(workdir / fidelity_file(name), vectors=np.concatenate(vectors),
             lengths=np.array([len(v) for v in vectors]))
    return {"fidelity_file": fidelity_file(name), "fidelity_sentences": len(vectors)}


def token_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b`, computed in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def compare(workdir: Path, name: str, reference: str) -> dict:
    """Mean and minimum token cosine of `name` against `reference`, or why it could not be computed."""
    paths = [workdir / fidelity_file(n) for n in (name, reference)]
    missing = [n for n, p in zip((name, reference), paths) if not p.exists()]
    if missing:
        return {"reference": reference, "missing": f"no token vectors from {' and '.join(missing)} in this run"}
    with np.load(paths[0]) as x, np.load(paths[1]) as y:
        if not np.array_equal(x["lengths"], y["lengths"]):
            return {"reference": reference, "missing": "the two engines tokenized the sentences differently"}
        sentences = len(x["lengths"])
        cos = token_cosines(x["vectors"], y["vectors"])
        max_abs = float(np.abs(x["vectors"] - y["vectors"]).max())
    return {"reference": reference, "sentences": sentences, "tokens": int(cos.size),
            "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "max_abs_diff": max_abs}
