"""Fidelity of a reduced-precision engine to float32: cosines of its token vectors against the same model's.

Every engine that takes part writes the sum of the last four layers for each token of the
first `FIDELITY_SENTENCES` sentences of the workload ([CLS] and [SEP] included), in input
order, as it computed them (same batches as its timed passes where it batches). The report
compares an engine with its `reference` (registry.py): bert_tf bfloat16 with bert_tf float32,
Hugging Face bfloat16 with Hugging Face float32, ONNX Runtime int8 with ONNX Runtime float32,
OpenVINO's reduced precisions with OpenVINO float32, and OpenVINO float32 with Hugging Face's.

CTranslate2's encoder returns the last layer only, so its engines compare that layer (`LAST`):
CTranslate2 int8 with CTranslate2 float32, and CTranslate2 float32 with Hugging Face float32's
last layer, which `hf_torch_sorted` writes as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

#: How many of the workload's sentences (from the first) the fidelity check covers.
FIDELITY_SENTENCES = 128
#: Which token vectors are compared: the sum of the last four layers (every engine that can), or the last layer.
LAST4, LAST = "last4", "last"
LAYERS = {LAST4: "the sum of the last four layers", LAST: "the last layer only"}


def fidelity_file(name: str, layers: str = LAST4) -> str:
    return f"fidelity_{name}.npz" if layers == LAST4 else f"fidelity_{name}_{layers}.npz"


def save_token_vectors(workdir: Path, name: str, vectors: Sequence[np.ndarray], layers: str = LAST4) -> dict:
    """Writes one engine's token vectors (one [tokens, hidden] array per sentence, `layers` of each token)
    for the fidelity check."""
    vectors = [np.asarray(v, np.float32) for v in vectors[:FIDELITY_SENTENCES]]
    np.savez(workdir / fidelity_file(name, layers), vectors=np.concatenate(vectors),
             lengths=np.array([len(v) for v in vectors]))
    return {"fidelity_file": fidelity_file(name, layers), "fidelity_sentences": len(vectors)}


def token_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b`, computed in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def compare(workdir: Path, name: str, reference: str, layers: str = LAST4) -> dict:
    """Mean and minimum token cosine of `name` against `reference` (on `layers`), or why it could not be computed."""
    paths = [workdir / fidelity_file(n, layers) for n in (name, reference)]
    missing = [n for n, p in zip((name, reference), paths) if not p.exists()]
    if missing:
        return {"reference": reference, "layers": layers,
                "missing": f"no token vectors from {' and '.join(missing)} in this run"}
    with np.load(paths[0]) as x, np.load(paths[1]) as y:
        if not np.array_equal(x["lengths"], y["lengths"]):
            return {"reference": reference, "missing": "the two engines tokenized the sentences differently"}
        sentences = len(x["lengths"])
        cos = token_cosines(x["vectors"], y["vectors"])
        max_abs = float(np.abs(x["vectors"] - y["vectors"]).max())
    return {"reference": reference, "layers": layers, "sentences": sentences, "tokens": int(cos.size),
            "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()), "max_abs_diff": max_abs}
