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
