"""`make demo`: the research notebook's experiments on the default checkpoint."""

from __future__ import annotations

import sys
from typing import TextIO

from bert_tf.cli.similarity import cosine_matrix, format_table, pick_words

SEED_EXPERIMENTS = [
    ("mouse", [
        "A mouse is a rodent animal.",
        "A mouse is a computer device.",
        "A rat is an animal that lives in the sewers.",
        "A computer has a keyboard as an input device.",
    ], ["mouse", "rat", "keyboard"]),
    ("lean", [
        "I like my steak lean.",
        "Gravity made the tower lean to the side.",
        "The steak is very greasy.",
        "The corner made the cat tilt sideways.",
    ], ["lean", "greasy", "tilt"]),
]


def run_demo(checkpoint=None, *, components: int = 4, out: TextIO | None = None, precision: str = "float32") -> None:
    """Embeds the seed sentences and prints word vectors and the cosine-similarity tables (to `out`,
    default the current `sys.stdout`, looked up at the call: a default bound at import time would
    keep writing to whatever stdout was then)."""
    from bert_tf.embed.api import get_embedder

    out = sys.stdout if out is None else out

    embedder = get_embedder(checkpoint, precision=precision)
    print(f"checkpoint: {embedder.checkpoint}  ({embedder.config.num_hidden_layers} layers, "
          f"hidden {embedder.hidden_size}, {'uncased' if embedder.lower_case else 'cased'}"
          f"{'' if embedder.precision == 'float32' else ', computed in ' + embedder.precision})", file=out)
    n = embedder.config.num_hidden_layers
    which = "the last four layers" if n > 4 else f"all {n} layers"  # what layers=None combines
    print(f"word vectors: sum of {which}, mean over word pieces\n", file=out)
    for name, sentences, targets in SEED_EXPERIMENTS:
        results = embedder.embed_words(sentences)
        embeddings = []
        for sentence, words in zip(sentences, results):
            print(f"  {sentence}", file=out)
            for w in words:
                head = " ".join(f"{v:+.3f}" for v in w.vector[:components])
                pieces = " ".join(w.pieces)
                print(f"    {w.text:<10} [{head} ...]  pieces: {pieces}", file=out)
            embeddings.append({w.text: w.vector for w in reversed(words)})
        picked = pick_words(embeddings, targets)
        matrix = cosine_matrix([p.vector for p in picked])
        print(f"\n  cosine similarity, '{name}' experiment:", file=out)
        print("  " + format_table([p.label for p in picked], matrix).replace("\n", "\n  "), file=out)
        print(file=out)
