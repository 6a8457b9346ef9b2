"""The columns and the metadata of a corpus run's outputs, named once.

`bert_tf.beam` writes them (and cannot be imported without Beam); `bert_tf.index.parquet`
reads them without Beam. Both take the names from here. The metadata, stored in the
Parquet schema under `METADATA_KEY` and in the run's manifest, is
`{"format_version": FORMAT_VERSION, "space": VectorSpace.to_dict()}`.
"""

from __future__ import annotations

import json
from typing import Any

from bert_tf.embed.space import VectorSpace, space_of_identity
from bert_tf.errors import InvalidValue

#: The schema-metadata key of Parquet outputs.
METADATA_KEY = b"bert_tf"
#: Bumped when the columns or the metadata change, so readers can refuse what they do not know.
#: 1: `identity` and `options` as written (before `VectorSpace`; still read, see `space_of_identity`).
FORMAT_VERSION = 2
#: The columns of every output format, in order.
COLUMNS = ("id", "text", "words", "starts", "ends", "word_vectors", "sentence_vector")


def run_metadata(space: VectorSpace) -> dict[str, Any]:
    """What a run's outputs record about how they were made (JSON-ready)."""
    return {"format_version": FORMAT_VERSION, "space": space.to_dict()}


def space_of(metadata: Any) -> VectorSpace:
    """The `VectorSpace` recorded in a run's metadata (decoded JSON or the raw schema value).

    Raises:
        ValueError: no such metadata, or metadata of another format version (the message says
            which; the caller names the file and how to remake it).
    """
    if isinstance(metadata, (bytes, str)):
        try:
            metadata = json.loads(metadata)
        except (UnicodeDecodeError, json.JSONDecodeError):
            metadata = None
    if not isinstance(metadata, dict):
        raise InvalidValue("it has no bert_tf metadata (which model and options made the vectors)")
    version = metadata.get("format_version")
    if version == 1:
        return space_of_identity(metadata.get("identity"), metadata.get("options"))
    if version != FORMAT_VERSION:
        raise InvalidValue(f"its bert_tf metadata is of format version {version}, written by another bert_tf "
                           f"(this one reads versions 1 and {FORMAT_VERSION})")
    return VectorSpace.from_dict(metadata.get("space"))
