"""The TF1 checkpoint table: Google's variable names, shapes and how each maps into the Keras encoder.

Restoring is strict: every expected variable must be present with the right
shape, or one `CheckpointError` lists all that is wrong at once.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import time

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.model.config import BertConfig


def google_variable_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every BERT variable of a Google checkpoint with its shape, in model order.

    BERT-Base has 199 of them: 5 embedding tensors, 16 per layer, 2 for the pooler.
    """
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (config.vocab_size, h),
        "bert/embeddings/token_type_embeddings": (config.type_vocab_size, h),
        "bert/embeddings/position_embeddings": (config.max_position_embeddings, h),
        "bert/embeddings/LayerNorm/gamma": (h,),
        "bert/embeddings/LayerNorm/beta": (h,),
    }
    dense = {"attention/self/query": (h, h), "attention/self/key": (h, h), "attention/self/value": (h, h),
             "attention/output/dense": (h, h), "intermediate/dense": (h, i), "output/dense": (i, h)}
    for n in range(config.num_hidden_layers):
        p = f"bert/encoder/layer_{n}"
        for scope, (fan_in, fan_out) in dense.items():
            shapes[f"{p}/{scope}/kernel"] = (fan_in, fan_out)
            shapes[f"{p}/{scope}/bias"] = (fan_out,)
            if scope in ("attention/output/dense", "output/dense"):  # each residual branch ends in a LayerNorm
                norm = scope.replace("dense", "LayerNorm")
                shapes[f"{p}/{norm}/gamma"] = (h,)
                shapes[f"{p}/{norm}/beta"] = (h,)
    shapes["bert/pooler/dense/kernel"] = (h, h)
    shapes["bert/pooler/dense/bias"] = (h,)
    return shapes


logger = logging.getLogger("bert_tf")

#: Tensors Google's released checkpoints carry that the encoder does not use:
#: the pre-training heads, the step counter and Adam's slots.
IGNORED_VARIABLES = ("cls/*", "global_step", "*/adam_m", "*/adam_v", "bad_steps", "good_steps",
                     "loss_scale")

DOWNLOAD_HINT = ("download one with `bert-tf download uncased_L-12_H-768_A-12` "
                 "(or `bert-tf download --list` for the choices)")


class CheckpointError(InvalidValue):
    """A checkpoint that cannot be restored; the message lists every problem at once."""


@dataclasses.dataclass(frozen=True)
class TableRow:
    """One TF1 variable and the Keras encoder variable it becomes, as it is: Google's kernels are
    already `[in, out]`, like Keras Dense kernels."""

    tf1_name: str
    keras_path: str
    shape: tuple[int, ...]


def _keras_path(tf1_name: str) -> str:
    """Maps one Google name to the encoder's variable path (see modeling.py)."""
    parts = tf1_name.split("/")
    if parts[1] == "embeddings":
        if parts[2] == "LayerNorm":
            return f"embeddings/layer_norm/{parts[3]}"
        return f"embeddings/{parts[2]}"
    if parts[1] == "pooler":
        return f"pooler/{parts[3]}"
    layer, rest = parts[2], "/".join(parts[3:])
    local = {
        "attention/self/query": "query",
        "attention/self/key": "key",
        "attention/self/value": "value",
        "attention/output/dense": "attention_output",
        "attention/output/LayerNorm": "attention_layer_norm",
        "intermediate/dense": "intermediate",
        "output/dense": "output",
        "output/LayerNorm": "output_layer_norm",
    }
    scope, leaf = rest.rsplit("/", 1)
    return f"{layer}/{local[scope]}/{leaf}"


def checkpoint_table(config: BertConfig) -> list[TableRow]:
    """The complete table for `config`: one row per Google variable, in model order."""
    return [TableRow(name, _keras_path(name), shape)
            for name, shape in google_variable_shapes(config).items()]


@dataclasses.dataclass
class LoadReport:
    """What a restore did: for `bert-tf info` and logs."""

    checkpoint: str
    restored: int
    parameters: int
    ignored: list[str]
    seconds: float

    def __str__(self) -> str:
        return (f"restored {self.restored} tensors ({self.parameters:,} parameters) from "
                f"{self.checkpoint} in {self.seconds:.2f} s; ignored {len(self.ignored)} "
                f"non-encoder tensors ({', '.join(_summarise(self.ignored))})")


def _summarise(names: list[str]) -> list[str]:
    groups: dict[str, int] = {}
    for name in names:
        key = name.split("/")[0] if "/" in name else name
        groups[key] = groups.get(key, 0) + 1
    return [f"{k}/* x{n}" if n > 1 else k for k, n in sorted(groups.items())] or ["none"]


def resolve_checkpoint_prefix(path: str | os.PathLike) -> tuple[str, str]:
    """Finds `(directory, checkpoint prefix)` for a checkpoint directory or prefix.

    Accepts `checkpoints/NAME`, `checkpoints/NAME/bert_model.ckpt`, or a path to one
    of the checkpoint files.

    Raises:
        CheckpointError: naming what is missing and how to get a checkpoint.
    """
    from bert_tf.files.layout import PREFIX, missing_files

    path = os.fspath(path)
    for suffix in (".index", ".data-00000-of-00001"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if os.path.isdir(path):
        directory = path
        prefix = os.path.join(path, PREFIX)
        if not os.path.exists(prefix + ".index"):
            indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
            if len(indexes) == 1:
                prefix = os.path.join(path, indexes[0][: -len(".index")])
    else:
        directory, prefix = os.path.dirname(path) or ".", path
        if not os.path.isdir(directory):
            raise CheckpointError(f"no checkpoint at {path}: the directory does not exist; {DOWNLOAD_HINT}")
    # What is missing is the store's question too (is a download finished?): one answer for both.
    missing = missing_files(directory, os.path.basename(prefix))
    if missing:
        raise CheckpointError(f"no complete BERT checkpoint in {directory}: missing {', '.join(missing)}; "
                              f"{DOWNLOAD_HINT}")
    return directory, prefix


def _check_index(prefix: str, table: list[TableRow], strict: bool) -> list[str]:
    """Checks the checkpoint's index against `table`; returns the ignored tensors' names.

    Raises:
        CheckpointError: every missing, unexpected and mis-shaped variable at once.
    """
    from bert_tf.runtime import tf
    from bert_tf.model.tf1_format import checkpoint_shapes

    try:
        found = checkpoint_shapes(prefix)
    except (tf.errors.OpError, ValueError, IndexError, OSError) as e:
        raise CheckpointError(f"cannot read checkpoint index {prefix}.index: {_first_line(e)}") from None
    expected = {row.tf1_name for row in table}
    ignored = sorted(n for n in found if n not in expected and _is_ignored(n))
    unexpected = sorted(n for n in found if n not in expected and not _is_ignored(n))
    missing = [row.tf1_name for row in table if row.tf1_name not in found]
    mismatched = [f"{row.tf1_name}: expected {list(row.shape)}, found {list(found[row.tf1_name])}"
                  for row in table if row.tf1_name in found and tuple(found[row.tf1_name]) != row.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: " + ", ".join(missing))
    if mismatched:
        problems.append(f"{len(mismatched)} with the wrong shape: " + "; ".join(mismatched)
                        + " (does bert_config.json belong to this checkpoint?)")
    if unexpected:
        message = f"{len(unexpected)} unexpected: " + ", ".join(unexpected)
        if strict:
            problems.append(message)
        else:
            logger.warning("checkpoint %s: %s", prefix, message)
    if problems:
        raise CheckpointError(f"cannot restore {prefix}: " + "; ".join(problems))
    return ignored


class _CheckpointValues:
    """The checkpoint's tensors by the encoder's variable path, read one at a time on demand."""

    def __init__(self, prefix: str, table: list[TableRow]):
        from bert_tf.runtime import tf

        self.prefix = prefix
        self.rows = {row.keras_path: row for row in table}
        self.reader = tf.train.load_checkpoint(prefix)
        self.read: set[str] = set()
        self.parameters = 0

    def __call__(self, keras_path: str) -> np.ndarray:
        from bert_tf.runtime import tf

        row = self.rows.get(keras_path)
        if row is None:  # the model has a variable the table does not know: a bug here, not in the file
            raise AssertionError(f"encoder variable {keras_path} has no row in the checkpoint table")
        try:
            value = self.reader.get_tensor(row.tf1_name)
        except (tf.errors.OpError, ValueError, IndexError, OSError) as e:  # IndexError: short read
            raise CheckpointError(
                f"cannot read {row.tf1_name} from {self.prefix}: {_first_line(e)} "
                f"(is the .data file truncated or corrupt? re-download it)") from None
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{row.tf1_name} in {self.prefix} holds NaN or infinite values")
        if keras_path not in self.read:  # a LayerNorm's values are read again by the int8 layers it feeds
            self.parameters += value.size
        self.read.add(keras_path)
        return value


def _is_ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in IGNORED_VARIABLES)


def _first_line(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def load_encoder(path: str | os.PathLike, *, strict: bool = True, return_report: bool = False,
                 compute_dtype: str = "float32", trained_layers: int = 0):
    """Builds the Keras encoder from a Google checkpoint and restores its weights.

    Args:
        path: a checkpoint directory (with `bert_config.json`, `vocab.txt`,
            `bert_model.ckpt.*`) or its `bert_model.ckpt` prefix.
        strict: when False, unexpected extra tensors are logged instead of raised.
        return_report: also return the `LoadReport`.
        compute_dtype: "float32", "bfloat16"/"float16" for the mixed-precision encoder, or "int8"
            (see `BertEncoder`); `precision.resolve_precision` turns the user's option into this.
        trained_layers: the top blocks kept as float32 variables for fine-tuning (see `BertEncoder`).

    Returns:
        `(config, encoder)`, or `(config, encoder, report)` with `return_report`.

    Raises:
        CheckpointError: a missing, incomplete or mismatched checkpoint (all problems at once).
        ValueError: an invalid `bert_config.json` (names the file and the field).

    Example:
        >>> config, encoder = load_encoder("checkpoints/uncased_L-12_H-768_A-12")
        >>> config.num_hidden_layers
        12
    """
    from bert_tf.model.config import load_config

    start = time.perf_counter()
    directory, prefix = resolve_checkpoint_prefix(path)
    config = load_config(os.path.join(directory, "bert_config.json"))
    return restore_encoder(config, prefix, strict=strict, return_report=return_report, start=start,
                           compute_dtype=compute_dtype, trained_layers=trained_layers)


def restore_encoder(config: BertConfig, prefix: str | os.PathLike, *, strict: bool = True,
                    return_report: bool = False, start: float | None = None, compute_dtype: str = "float32",
                    trained_layers: int = 0):
    """`load_encoder` for a checkpoint already found: `prefix` as `resolve_checkpoint_prefix` returns it.

    `bert_tf.store.CheckpointDir` resolves a checkpoint once and restores through this, so
    the path is not looked up again and `bert_config.json` is not read twice.

    Args:
        config: the checkpoint's config.
        prefix: its TF1 prefix (`DIR/bert_model.ckpt`).
        strict, return_report, compute_dtype, trained_layers: as for `load_encoder`.
        start: `time.perf_counter()` when the load began, for the report (default: now).

    Raises:
        CheckpointError: a missing or mismatched tensor (all problems at once).
    """
    from bert_tf.model.encoder import BertEncoder

    start = time.perf_counter() if start is None else start
    prefix = os.fspath(prefix)
    table = checkpoint_table(config)
    ignored = _check_index(prefix, table, strict)
    # The variables are created from the checkpoint's tensors: no second copy of the weights.
    values = _CheckpointValues(prefix, table)
    encoder = BertEncoder(config, initial_values=values, compute_dtype=compute_dtype, trained_layers=trained_layers)
    unread = sorted(set(values.rows) - values.read)
    if unread:  # every variable was looked up above; a row nobody asked for has no variable
        raise AssertionError(f"checkpoint table rows with no encoder variable: {unread}")
    report = LoadReport(prefix, len(table), values.parameters, ignored, time.perf_counter() - start)
    logger.info("%s", report)
    return (config, encoder, report) if return_report else (config, encoder)
