"""The input glob and output prefix of a corpus run, checked without Beam or TensorFlow.

`bert-tf beam-embed` checks them before importing either (seconds), so a mistyped
path is answered at once; `bert_tf.beam.pipeline.embed_corpus` checks the same
things with the same messages (remote paths through Beam's filesystems).
"""

from __future__ import annotations

import os
from typing import Sequence

from bert_tf.errors import InvalidValue


def check_matched(pattern: str, matched: Sequence[str], is_dir=os.path.isdir) -> None:
    """Refuses an input glob that matched nothing, or only folders.

    Raises:
        FileNotFoundError, IsADirectoryError: one line each, saying what to give instead.
    """
    if not matched:
        raise FileNotFoundError(f"--input {pattern} matches no file")
    if all(is_dir(m) for m in matched):
        raise IsADirectoryError(f"--input {pattern} is a folder; give a glob of its files, e.g. "
                                f"{os.path.join(pattern, '*.txt')}")


def check_local_prefix(prefix: str) -> None:
    """Refuses a local output prefix that is a folder, ends in a separator, or lies in a missing folder.

    Raises:
        ValueError: the prefix is (or ends like) a folder.
        OutputError: its folder does not exist.
    """
    from bert_tf.files.output import OutputError

    directory, name = os.path.split(prefix)
    if not name:
        raise InvalidValue(f"--output {prefix} is a folder; give a file name prefix, e.g. {prefix.rstrip('/')}/corpus")
    if os.path.isdir(prefix):
        raise InvalidValue(f"--output {prefix} is a folder; give a file name prefix inside it, "
                           f"e.g. {os.path.join(prefix, 'corpus')}")
    if not os.path.isdir(directory or "."):
        raise OutputError(prefix, f"the folder {directory} does not exist; create it first")
