"""`BertConfig`: the hyper-parameters in Google's `bert_config.json`.

The field names are exactly those of Google's file, so one name means one
setting everywhere in this package. What the JSON does not say is written
down here, once:

* LayerNorm epsilon is 1e-12: Google's `modeling.py` hard-codes it
  (`layer_norm(..., epsilon=1e-12)` via `tf.contrib.layers.layer_norm`'s
  caller), and Hugging Face's `layer_norm_eps` default matches.
* Casing is not in the config at all; it belongs to the vocabulary and the
  checkpoint's name (see `bert_tf.text.vocab.infer_lower_case`).
* `hidden_act="gelu"` in Google's released configs means the exact, erf-based
  GELU the 2018 checkpoints were trained with; see `modeling.gelu`.
* Google's multilingual and Chinese configs add six keys (`directionality`,
  `pooler_fc_size`, `pooler_num_attention_heads`, `pooler_num_fc_layers`,
  `pooler_size_per_head`, `pooler_type`). Google's own `modeling.py` reads none
  of them: its pooler is always one dense tanh layer on the first token, which
  is what `pooler_type="first_token_transform"` names. They are kept (so a saved
  config is the file that was read) and `pooler_type` is checked, since another
  value would describe a model this package does not build. Any other unknown
  key is logged as a warning and ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Mapping

from bert_tf.errors import InvalidValue

logger = logging.getLogger("bert_tf")

#: Activations `hidden_act` may name. "gelu" is the exact erf form; "gelu_new"
#: and "gelu_tanh" are the tanh approximation (Hugging Face / newer Google code).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_tanh", "relu", "tanh", "swish")

LAYER_NORM_EPSILON = 1e-12

#: The pooler Google's `modeling.py` builds: `tanh(dense(first token of the last layer))`.
POOLER_TYPE = "first_token_transform"

#: The eleven keys every Google `bert_config.json` has; `from_dict` requires them all.
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
               "type_vocab_size", "initializer_range")
#: The keys Google's multilingual and Chinese configs add; optional, None when absent.
GOOGLE_EXTRA_FIELDS = ("directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
                       "pooler_size_per_head", "pooler_type")


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
    # Only in Google's multilingual and Chinese configs; unused by the model (see the module docstring).
    directionality: str | None = None
    pooler_fc_size: int | None = None
    pooler_num_attention_heads: int | None = None
    pooler_num_fc_layers: int | None = None
    pooler_size_per_head: int | None = None
    pooler_type: str | None = None

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            raise InvalidValue("invalid BERT config: " + "; ".join(problems))

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        """The `bert_config.json` keys: the eleven BERT fields, and the Google extras that are set."""
        data = dataclasses.asdict(self)
        return {k: v for k, v in data.items() if k not in GOOGLE_EXTRA_FIELDS or v is not None}

    def to_json_file(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> "BertConfig":
        """Builds a config from a mapping, rejecting missing keys and impossible values.

        The eleven `BERT_FIELDS` are required; the `GOOGLE_EXTRA_FIELDS` are optional.
        Any other key is ignored with a warning that names it.

        Args:
            data: the parsed JSON object.
            source: where it came from, for error messages (a file path).

        Raises:
            ValueError: naming `source` and every offending field.
        """
        if not isinstance(data, Mapping):
            raise InvalidValue(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in BERT_FIELDS if n not in data]
        unknown = sorted(str(k) for k in data if k not in names)
        problems = []
        if missing:
            problems.append("missing field(s) " + ", ".join(missing))
        for f in dataclasses.fields(cls):
            if f.name in data and not _type_ok(data[f.name], f.type):
                problems.append(f"field {f.name} must be {f.type}, got {data[f.name]!r}")
        if problems:
            raise InvalidValue(f"{source}: " + "; ".join(problems))
        if unknown:
            # A warning, not an error: configs written by other tools carry keys of their
            # own, and refusing them would refuse a model this package can load.
            logger.warning("%s: ignoring unknown field(s) %s (BERT uses %s)", source, ", ".join(unknown),
                           ", ".join(BERT_FIELDS + GOOGLE_EXTRA_FIELDS))
        try:
            return cls(**{n: data[n] for n in names if n in data})
        except ValueError as e:
            raise InvalidValue(f"{source}: {e}") from None


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name.endswith(" | None"):
        return value is None or _type_ok(value, type_name[:-len(" | None")])
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
    for name in ("pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers", "pooler_size_per_head"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            out.append(f"field {name} must be a positive integer or absent, got {value!r}")
    if cfg.directionality is not None and not isinstance(cfg.directionality, str):
        out.append(f"field directionality must be a string or absent, got {cfg.directionality!r}")
    if cfg.pooler_type is not None and cfg.pooler_type != POOLER_TYPE:
        out.append(f"field pooler_type must be {POOLER_TYPE!r} (the [CLS] vector through one dense tanh "
                   f"layer, the only pooler of Google's BERT) or absent; got {cfg.pooler_type!r}, which "
                   f"describes a model this package does not build")
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
        ValueError: when it is not valid JSON or a field is missing or impossible (a
            `pooler_type` this package does not build included); the message names the
            file and the field. Unknown fields are logged as a warning and ignored.
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
        raise InvalidValue(f"{path}: not valid JSON ({e})") from None
    return BertConfig.from_dict(data, source=path)
