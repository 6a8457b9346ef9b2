"""`BertConfig`: the hyper-parameters in Google's `bert_config.json`.

The field names are exactly those of Google's file, so one name means one
setting everywhere in this package. What the JSON does not say is written
down here, once:

* LayerNorm epsilon is 1e-12: Google's `modeling.py` hard-codes it
  (`layer_norm(..., epsilon=1e-12)` via `tf.contrib.layers.layer_norm`'s
  caller), and Hugging Face's `layer_norm_eps` default matches.
* Casing is not in the config at all; it belongs to the vocabulary and the
  checkpoint's name (see `bert_tf.tokenization.infer_lower_case`).
* `hidden_act="gelu"` in Google's released configs means the exact, erf-based
  GELU the 2018 checkpoints were trained with; see `modeling.gelu`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

#: Activations `hidden_act` may name. "gelu" is the exact erf form; "gelu_new"
#: and "gelu_tanh" are the tanh approximation (Hugging Face / newer Google code).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_tanh", "relu", "tanh", "swish")

LAYER_NORM_EPSILON = 1e-12


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyper-parameters, with the field names of Google's `bert_config.json`.

    Example:
        >>> cfg = BertConfig(vocab_size=30522, hidden_size=768)
        >>> cfg.head_size
        64
    """

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            raise ValueError("invalid BERT config: " + "; ".join(problems))

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> "BertConfig":
        """Builds a config from a mapping, rejecting missing and unknown keys.

        Args:
            data: the parsed JSON object.
            source: where it came from, for error messages (a file path).

        Raises:
            ValueError: naming `source` and every offending field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(k for k in data if k not in names)
        problems = []
        if missing:
            problems.append("missing field(s) " + ", ".join(missing))
        if unknown:
            problems.append("unknown field(s) " + ", ".join(unknown)
                            + " (a Google bert_config.json has exactly: " + ", ".join(names) + ")")
        for f in dataclasses.fields(cls):
            if f.name in data and not _type_ok(data[f.name], f.type):
                problems.append(f"field {f.name} must be {f.type}, got {data[f.name]!r}")
        if problems:
            raise ValueError(f"{source}: " + "; ".join(problems))
        try:
            return cls(**{n: data[n] for n in names})
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    return True


def _problems(cfg: BertConfig) -> list[str]:
    out = []
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            out.append(f"field {name} must be a positive integer, got {value!r}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            out.append(f"field {name} must be in [0, 1), got {value!r}")
    if not isinstance(cfg.initializer_range, (int, float)) or cfg.initializer_range <= 0:
        out.append(f"field initializer_range must be positive, got {cfg.initializer_range!r}")
    if cfg.hidden_act not in SUPPORTED_ACTIVATIONS:
        out.append(f"field hidden_act must be one of {', '.join(SUPPORTED_ACTIVATIONS)}; "
                   f"got {cfg.hidden_act!r}")
    if (not out and cfg.hidden_size % cfg.num_attention_heads != 0):
        out.append(f"field hidden_size ({cfg.hidden_size}) must be a multiple of "
                   f"num_attention_heads ({cfg.num_attention_heads})")
    return out


def load_config(path: str | os.PathLike) -> BertConfig:
    """Loads and validates a Google `bert_config.json`.

    Args:
        path: the JSON file, or a checkpoint directory holding `bert_config.json`.

    Returns:
        The validated `BertConfig`.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when it is not valid JSON or a field is missing, unknown or impossible;
            the message names the file and the field.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "bert_config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no BERT config at {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return BertConfig.from_dict(data, source=path)
