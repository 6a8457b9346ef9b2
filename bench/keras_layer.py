"""The Keras layer measured (issue 29): a measurement, not a test.

    python -m bench.keras_layer [--checkpoint DIR] [--repeats 5] [--quick] [--json out.json]
    python -m bench.keras_layer --memory-only --bert-base DIR [--precision bfloat16]

1. Features per second: `WordVectors` inside `model.predict` against `get_bert_embeddings`, on the
   same sentences, in alternating order repeat by repeat (so drift of the machine hits both); the
   median of each and the median of the per-repeat ratios (layer / library; the target is >= 0.9).
   The layer is given predict batches of `--predict-batch` texts (256, as docs/keras.md advises:
   the layer plans each batch as the library plans its chunk of texts) from `text_batches`, and, for
   comparison, batches of predict's default 32 the same way, and the texts as a numpy array
   (`model.predict(array, batch_size=...)`: Keras's own autotuned pipeline, whose end waits for the
   tf.data tuner's next wake-up; bert_tf/keras/data.py).
2. A training step: a `word_tagger` (BiLSTM) on frozen `GivenWordVectors` against the same with the
   top two encoder layers fine-tuned, steps alternating between the two models; median seconds each.
3. Peak memory: fine-tuning the top two layers of the largest checkpoint found (by the size of its
   weights) at batch 32 and sequence 128, in a child process of its own, its peak resident set read
   as `VmHWM` (the high-water mark of the process's own memory): `ru_maxrss` would not do, since Linux
   carries it across `exec` from the parent, which may have peaked higher (writing the checkpoint).
   `--bert-base DIR` measures it on a random BERT-Base-shaped checkpoint in Google's layout, written
   into DIR the first time (as `bench.run` writes its own: `bench.context.BERT_BASE`, seed
   `WEIGHT_SEED`, the uncased vocabulary), so no real BERT-Base is needed: memory depends on the
   shapes, not the values. `--memory-only` skips parts 1 and 2;
   `--precision` is the fine-tuned layer's (`WordVectors.from_checkpoint`).

Only the standard library and bert_tf are imported, so it runs as `python -m bench.keras_layer`
from the repository root. `--quick` is a smoke run (tiny sizes, figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Words the generated sentences are made of: common English, so most are one piece in any vocabulary.
WORDS = ("the bank of river was money over under he she they it is a an new old city water music house "
         "road day night year time people world life hand part place case week company system program "
         "question work government number point home water room mother area national money story fact "
         "month lot right study book eye job word business issue side kind head house service friend "
         "father power hour game line end member law car city community name president team minute idea "
         "unbelievable internationalisation , . ! ?").split()


def sentences(n: int, *, seed: int = 0, shortest: int = 5, longest: int = 60) -> list[str]:
    """`n` generated sentences of `shortest` to `longest` words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(shortest, longest))) for _ in range(n)]


def _best_checkpoint() -> str:
    """The checkpoint in the checkpoints root with the largest weights, else the one bert_tf resolves."""
    from bert_tf.store.checkpoint_dir import CheckpointDir
    from bert_tf.store.resolve import checkpoints_root

    def weights(path: Path) -> int:
        return sum(f.stat().st_size for f in path.glob("*.data-*"))

    root = checkpoints_root()
    candidates = list(root.iterdir()) if root.is_dir() else []
    found = [p for p in candidates if p.is_dir() and (p / "bert_config.json").is_file() and weights(p)]
    return str(max(found, key=weights)) if found else str(CheckpointDir.resolve(None).path)


def bert_base_checkpoint(directory: str) -> str:
    """`directory`, holding a random BERT-Base-shaped Google checkpoint (written unless one is there)."""
    from bench.context import BERT_BASE, WEIGHT_SEED
    from bench.run import vocabulary
    from bert_tf.model.config import BertConfig
    from bert_tf.testing import write_random_checkpoint

    path = Path(directory)
    if not (path / "bert_model.ckpt.index").is_file():
        found = vocabulary(lambda line: print(line, file=sys.stderr))
        if found is None:
            raise SystemExit("bench: no BERT-Base vocabulary to write the checkpoint with")
        write_random_checkpoint(path, BertConfig(**BERT_BASE), seed=WEIGHT_SEED, vocab=found[1])
    return str(path)


def features_per_second(checkpoint: str, texts: list[str], *, repeats: int, batch_size: int,
                        default_batch: int = 32) -> dict:
    """Word vectors per second: the layer in `model.predict` (`text_batches` of `batch_size` texts and
    of predict's default `default_batch`; a numpy array in batches of `batch_size`) and
    `get_bert_embeddings`, interleaved."""
    import numpy as np

    from bert_tf import get_bert_embeddings
    from bert_tf.keras import WordVectors, text_batches
    from bert_tf.runtime import keras

    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, WordVectors.from_checkpoint(checkpoint)(inputs)["vectors"])
    data = {size: text_batches(texts, batch_size=size) for size in (batch_size, default_batch)}
    array = np.array(texts, dtype=object)

    def layer(size, numpy=False):
        x = array if numpy else data[size]
        out = model.predict(x, batch_size=size if numpy else None, verbose=0).flat_values  # [words, width]
        return out.shape[0], out.shape[1]

    def library():
        # Its dicts keep one vector per distinct word, but every word's vector is computed, as the layer's.
        out = get_bert_embeddings(texts, checkpoint=checkpoint, progress=False)
        return next(v for d in out for v in d.values()).shape[0]

    runs = {"layer": lambda: layer(batch_size), "library": library, "layer_default": lambda: layer(default_batch),
            "layer_numpy": lambda: layer(batch_size, numpy=True)}
    words, width = layer(batch_size)  # and warm-up: tracing, the library's cached embedder
    if library() != width or layer(default_batch) != (words, width) or layer(batch_size, True) != (words, width):
        raise RuntimeError("the layer and the library made vectors of different widths or numbers")
    rates = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:  # each first in turn
            start = time.perf_counter()
            runs[name]()
            rates[name].append(words / (time.perf_counter() - start))
    ratio = lambda name: statistics.median(a / b for a, b in zip(rates[name], rates["library"]))  # noqa: E731
    return {
        "words": words, "width": width, "texts": len(texts), "repeats": repeats,
        "predict_batch": batch_size, "default_batch": default_batch,
        "layer_per_s": statistics.median(rates["layer"]), "library_per_s": statistics.median(rates["library"]),
        "layer_default_per_s": statistics.median(rates["layer_default"]),
        "layer_numpy_per_s": statistics.median(rates["layer_numpy"]),
        "ratio": ratio("layer"), "ratio_default_batch": ratio("layer_default"), "ratio_numpy": ratio("layer_numpy"),
        "passes_s": {name: [words / rate for rate in rates[name]] for name in names},
    }


def training_steps(checkpoint: str, texts: list[str], *, steps: int, batch_size: int, layers: int = 2) -> dict:
    """Median seconds of a tagger's training step, frozen and with the top `layers` fine-tuned, alternating."""
    import numpy as np

    from bert_tf.keras import GivenWordVectors
    from bert_tf.keras.models import word_tagger
    from bert_tf.runtime import keras, tf

    words = [t.split() for t in texts[:batch_size]]
    x = tf.ragged.constant(words)
    y = np.random.default_rng(0).integers(0, 5, (len(words), max(map(len, words))))
    models = {}
    for name, tuned in (("frozen", 0), ("fine_tuned", layers)):
        model = word_tagger(GivenWordVectors.from_checkpoint(checkpoint, fine_tune_layers=tuned), 5)
        model.compile(optimizer=keras.optimizers.Adam(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y)  # tracing
        models[name] = model
    seconds = {name: [] for name in models}
    for s in range(steps):
        for name in (("frozen", "fine_tuned") if s % 2 == 0 else ("fine_tuned", "frozen")):
            start = time.perf_counter()
            models[name].train_on_batch(x, y)
            seconds[name].append(time.perf_counter() - start)
    frozen, tuned = statistics.median(seconds["frozen"]), statistics.median(seconds["fine_tuned"])
    return {"batch": len(words), "steps": steps, "fine_tuned_layers": layers,
            "frozen_s": frozen, "fine_tuned_s": tuned, "ratio": tuned / frozen}


def peak_memory_child(checkpoint: str, *, batch: int, seq: int, steps: int, layers: int,
                      precision: str = "float32") -> dict:
    """In this process: fine-tune the top `layers` on `batch` texts of exactly `seq` positions; peak RSS (MB)."""
    import numpy as np

    from bert_tf.embed.options import EmbeddingOptions
    from bert_tf.keras import SentenceVectors
    from bert_tf.keras.models import sentence_classifier
    from bert_tf.runtime import keras, tf

    def peak_mb():
        # VmHWM: this process's own peak (a fresh one at exec); ru_maxrss keeps the parent's across exec.
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024  # kB

    imported = peak_mb()
    options = EmbeddingOptions(max_seq_length=seq, sentence_layer=-1)  # the top layer gets a gradient too
    features = SentenceVectors.from_checkpoint(checkpoint, options, fine_tune_layers=layers, precision=precision)
    model = sentence_classifier(features, 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loaded = peak_mb()
    text = " ".join(["the"] * (seq - 2))  # one piece each in every BERT vocabulary: seq positions exactly
    x, y = tf.constant([text] * batch), np.arange(batch) % 2
    for _ in range(steps):
        model.train_on_batch(x, y)
    return {"checkpoint": checkpoint, "batch": batch, "seq": seq, "fine_tuned_layers": layers, "steps": steps,
            "precision": precision, "hidden_size": features.config.hidden_size,
            "num_hidden_layers": features.config.num_hidden_layers,
            "peak_rss_mb_after_import": imported, "peak_rss_mb_after_load": loaded, "peak_rss_mb": peak_mb()}


def peak_memory(checkpoint: str, *, batch: int, seq: int, steps: int, layers: int = 2,
                precision: str = "float32") -> dict:
    """`peak_memory_child` in a fresh process (`python -m bench.keras_layer --peak-memory-child`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.keras_layer", "--peak-memory-child", "--checkpoint", checkpoint,
         "--batch", str(batch), "--seq", str(seq), "--steps", str(steps), "--layers", str(layers),
         "--precision", precision],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the peak-memory child failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The Keras layer measured: features/s, training steps, memory.")
    parser.add_argument("--checkpoint", help="checkpoint for speed (default: as bert_tf resolves it)")
    parser.add_argument("--memory-checkpoint", help="checkpoint for peak memory (default: the largest found)")
    parser.add_argument("--bert-base", metavar="DIR", help="measure memory on a random BERT-Base-shaped checkpoint "
                        "in DIR, written there the first time")
    parser.add_argument("--memory-only", action="store_true", help="measure peak memory only")
    parser.add_argument("--precision", default="float32", help="the fine-tuned layer's precision for memory")
    parser.add_argument("--texts", type=int, default=512, help="generated sentences for features/s")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="training and memory batch")
    parser.add_argument("--predict-batch", type=int, default=256, help="texts per model.predict batch")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="training steps timed (and 3 for memory)")
    parser.add_argument("--layers", type=int, default=2, help="top layers fine-tuned")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, meaningless figures")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--peak-memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.peak_memory_child:
        print(json.dumps(peak_memory_child(args.checkpoint, batch=args.batch, seq=args.seq, steps=args.steps,
                                           layers=args.layers, precision=args.precision)))
        return 0
    if args.quick:
        args.texts, args.repeats, args.batch, args.seq, args.steps = 16, 2, 4, 16, 2
        args.predict_batch = 8
    from bert_tf.store.checkpoint_dir import CheckpointDir

    checkpoint = None if args.memory_only else str(CheckpointDir.resolve(args.checkpoint).path)
    if args.bert_base:
        memory_checkpoint = bert_base_checkpoint(args.bert_base)
    else:
        memory_checkpoint = args.memory_checkpoint or (
            str(CheckpointDir.resolve(args.checkpoint).path) if args.quick else _best_checkpoint())
    results = {}
    if not args.memory_only:
        texts = sentences(args.texts, longest=12 if args.quick else 60)
        results["features"] = features_per_second(checkpoint, texts, repeats=args.repeats,
                                                  batch_size=args.predict_batch, default_batch=args.batch)
        results["training_step"] = training_steps(checkpoint, texts, steps=args.steps, batch_size=args.batch,
                                                  layers=args.layers)
        f, t = results["features"], results["training_step"]
        print(f"features/s: layer in model.predict (batches of {f['predict_batch']}) {f['layer_per_s']:.0f}, "
              f"get_bert_embeddings {f['library_per_s']:.0f}; ratio {f['ratio']:.2f} (median of {f['repeats']} "
              f"interleaved repeats, {f['words']} words of width {f['width']}); predict's default batch of "
              f"{f['default_batch']}: {f['layer_default_per_s']:.0f}, ratio {f['ratio_default_batch']:.2f}; "
              f"a numpy array (Keras's autotuned pipeline): {f['layer_numpy_per_s']:.0f}, ratio "
              f"{f['ratio_numpy']:.2f}")
        for name, seconds in f["passes_s"].items():
            print(f"  {name} passes: " + " ".join(f"{x:.2f}" for x in seconds) + " s")
        print(f"training step (batch {t['batch']}): frozen {1000 * t['frozen_s']:.1f} ms, top "
              f"{t['fine_tuned_layers']} fine-tuned {1000 * t['fine_tuned_s']:.1f} ms; ratio {t['ratio']:.2f}")
    results["memory"] = m = peak_memory(memory_checkpoint, batch=args.batch, seq=args.seq,
                                        steps=min(args.steps, 3), layers=args.layers, precision=args.precision)
    print(f"peak RSS fine-tuning the top {m['fine_tuned_layers']} of {m['num_hidden_layers']} layers (hidden "
          f"{m['hidden_size']}, {m['precision']}) of {Path(m['checkpoint']).name} at batch {m['batch']}, seq "
          f"{m['seq']}: {m['peak_rss_mb']:.0f} MB (after loading {m['peak_rss_mb_after_load']:.0f} MB, after "
          f"importing {m['peak_rss_mb_after_import']:.0f} MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
