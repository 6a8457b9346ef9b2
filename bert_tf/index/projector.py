"""Occurrences in TensorBoard's Embedding Projector format, to explore them in 3-D.

`write_projector(DIR, ...)` writes three files, then `tensorboard --logdir DIR` shows
them under the Projector tab (TensorBoard reads a `projector_config.pbtxt` at the
top of the log folder even when there are no runs or checkpoints):

* `vectors.tsv`: one vector per line, tab-separated values;
* `metadata.tsv`: a header line (`word`, `sense`, `sentence`) then one line per vector;
  TensorBoard splits it on tabs and newlines and has no quoting, so backslashes, tabs,
  newlines and carriage returns inside a field are written as `\\\\`, `\\t`, `\\n`, `\\r`;
* `projector_config.pbtxt`: the embedding's name and the two files (paths relative to it);
* `bert_tf_projector.json`: the marker that tells `--force` the folder is bert_tf's own
  (`bert_tf.files.owned`); any other folder is never replaced.

The folder is built beside DIR and renamed into place when complete
(`bert_tf.files.atomic.staged_directory`), so a failed write leaves no half-written folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.files.atomic import staged_directory
from bert_tf.files.owned import PROJECTOR, PROJECTOR_FORMAT, PROJECTOR_MARKER

VECTORS_FILE = "vectors.tsv"
METADATA_FILE = "metadata.tsv"
CONFIG_FILE = "projector_config.pbtxt"
METADATA_COLUMNS = ("word", "sense", "sentence")

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape_field(value) -> str:
    """One metadata field on one line: backslash, tab, newline and carriage return escaped."""
    return str(value).translate(_ESCAPES)


def _pbtxt_string(value: str) -> str:
    # with no control characters (refused earlier) JSON's escapes, \\ and \", are text format's too
    return json.dumps(value, ensure_ascii=False)


def write_projector(out_dir: str | os.PathLike, vectors, metadata: Sequence[Sequence], *, name: str,
                    force: bool = False) -> Path:
    """Writes vectors and their metadata as a TensorBoard Embedding Projector folder.

    Args:
        out_dir: the folder to create (`tensorboard --logdir out_dir` then shows it).
        vectors: `[n, dim]` floats, one row per occurrence.
        metadata: one `(word, sense, sentence)` per row of `vectors`.
        name: the embedding's name in the projector (e.g. "bank senses").
        force: replace an existing projector folder written by bert_tf (an empty folder is always
            used; any other folder, or one holding other files too, is never replaced).

    Returns:
        `out_dir` as a `Path`.

    Raises:
        ValueError: vectors that are not a finite non-empty 2-D array, metadata of another
            length or with rows that are not three fields, an empty name; an `out_dir` that is
            the current folder or holds it.
        FileExistsError: `out_dir` is a projector folder and `force` is False, a folder bert_tf did
            not write, or a file.
        PermissionError, OSError: it cannot be written (the message names it).

    Example:
        >>> write_projector("bank_projector", vectors, [("bank", 1, "We sat on the bank.")], name="bank")
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InvalidValue(f"the projector needs a non-empty [n, dim] array of vectors; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidValue("the vectors hold NaN or infinity; the projector cannot show them")
    rows = [tuple(row) for row in metadata]
    if len(rows) != len(x):
        raise ValueError(f"the projector needs one metadata row per vector; got {len(rows)} rows for {len(x)} vectors")
    if any(len(row) != len(METADATA_COLUMNS) for row in rows):
        raise ValueError(f"each metadata row must be ({', '.join(METADATA_COLUMNS)})")
    name = str(name)
    if not name.strip() or any(ord(c) < 32 for c in name):
        raise InvalidValue(f"the projector's embedding needs a name on one line, without control characters; "
                         f"got {name!r}")
    target = Path(out_dir)
    with staged_directory(target, replace=force, owner=PROJECTOR) as staging:
        with open(staging / VECTORS_FILE, "w", encoding="utf-8", newline="\n") as f:
            for row in x:
                # "%.9g" writes every float32 exactly: the projector reads back the same vectors
                f.write("\t".join("%.9g" % v for v in row) + "\n")
        with open(staging / METADATA_FILE, "w", encoding="utf-8", newline="\n") as f:
            f.write("\t".join(METADATA_COLUMNS) + "\n")
            for row in rows:
                f.write("\t".join(escape_field(v) for v in row) + "\n")
        config = (f"embeddings {{\n  tensor_name: {_pbtxt_string(name)}\n"
                  f"  tensor_path: {_pbtxt_string(VECTORS_FILE)}\n"
                  f"  metadata_path: {_pbtxt_string(METADATA_FILE)}\n}}\n")
        (staging / CONFIG_FILE).write_text(config, encoding="utf-8")
        marker = {"format": PROJECTOR_FORMAT, "files": [VECTORS_FILE, METADATA_FILE, CONFIG_FILE], "name": name}
        (staging / PROJECTOR_MARKER).write_text(json.dumps(marker, ensure_ascii=False, indent=1) + "\n",
                                                encoding="utf-8")
    return target
