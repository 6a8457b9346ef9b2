"""The files of a Google-layout checkpoint folder, named once.

The loader (which must find the files it opens) and the store (which must know
whether a download finished) both ask "what is missing here?", and both get the
answer from `missing_files`. Standard library only: the download script lists
checkpoints without NumPy or TensorFlow installed.
"""

from __future__ import annotations

import os
import re

#: The TF1 checkpoint prefix inside every Google checkpoint folder.
PREFIX = "bert_model.ckpt"
#: Written by the store beside the checkpoint: every file with its size (see `bert_tf.store.unpack`).
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
