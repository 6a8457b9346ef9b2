"""The files of a Google-layout checkpoint folder, named once.

The loader (which must find the files it opens) and the store (which must know
whether a download finished) both ask "what is missing here?", and both get the
answer from `missing_files`. Standard library only: the download script lists
checkpoints without NumPy or TensorFlow installed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path
from typing import Any

#: The TF1 checkpoint prefix inside every Google checkpoint folder.
PREFIX = "bert_model.ckpt"
#: Written into every checkpoint folder bert_tf unpacks or converts: every file with its size. `is_complete`
#: checks the sizes; `--force` knows the folder as bert_tf's own by it.
MANIFEST = "MANIFEST.json"

_SHARD = re.compile(r"^(?P<prefix>.+)\.data-(?P<index>\d+)-of-(?P<count>\d+)$")


def missing_shards(names, prefix: str = PREFIX) -> list[str]:
    """The `PREFIX.data-*` shards missing from the file names `names` (a pattern when there are none).

    Example:
        >>> missing_shards(["bert_model.ckpt.data-00000-of-00002"])
        ['bert_model.ckpt.data-00001-of-00002']
    """
    shards = [(int(m["index"]), int(m["count"])) for m in map(_SHARD.match, names)
              if m and m["prefix"] == prefix]
    if not shards:
        return [f"{prefix}.data-*"]
    count = shards[0][1]
    have = {index for index, of in shards if of == count}
    return [f"{prefix}.data-{i:05d}-of-{count:05d}" for i in range(count) if i not in have]


def required_files(prefix: str = PREFIX) -> tuple[str, ...]:
    """The files a checkpoint folder needs besides its data shards."""
    return ("bert_config.json", "vocab.txt", prefix + ".index")


def missing_files(directory: str | os.PathLike, prefix: str = PREFIX) -> list[str]:
    """What `directory` lacks to be a checkpoint with this prefix: empty files count as missing.

    Args:
        directory: the checkpoint folder.
        prefix: the TF1 prefix's base name inside it.

    Returns:
        The names missing, in the order `required_files` then shards; empty when all are there.
    """
    directory = os.fspath(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    missing = []
    for name in required_files(prefix):
        path = os.path.join(directory, name)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            missing.append(name)
    return missing + missing_shards(names, prefix)


def is_complete(path: str | os.PathLike) -> bool:
    """True when `path` holds a whole Google-layout checkpoint: the one test of "finished".

    That is: every file `missing_files` asks for (a non-empty `bert_config.json`,
    `vocab.txt` and `bert_model.ckpt.index`, every `bert_model.ckpt.data-*` shard),
    a `bert_config.json` that parses as a JSON object, and, when a `MANIFEST.json`
    is present, every file it lists at the size it records (which catches a
    truncated shard). Whether the config's values make a model is the loader's
    question (`bert_tf.model.config.load_config` names what is wrong); this one only
    asks whether the files arrived. Standard library only, and nothing is written.

    Example:
        >>> is_complete("checkpoints/uncased_L-12_H-768_A-12")
        True
    """
    path = Path(path)
    if not path.is_dir() or missing_files(path):
        return False
    try:
        if not isinstance(json.loads((path / "bert_config.json").read_text(encoding="utf-8")), dict):
            return False
    except (OSError, ValueError):
        return False
    if not (path / MANIFEST).exists():
        return True
    try:
        files = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
        return all((path / rel).is_file() and (path / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def write_manifest(directory: str | os.PathLike, fields: dict[str, Any]) -> None:
    """Writes `directory/MANIFEST.json`: `fields`, every file below `directory` with its size, and when."""
    from bert_tf import __version__
    from bert_tf.files.output import AtomicFile

    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): p.stat().st_size
             for p in sorted(directory.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {**fields, "files": files, "bert_tf_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with AtomicFile(directory / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
