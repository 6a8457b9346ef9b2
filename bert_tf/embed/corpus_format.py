"""The columns and the metadata of a corpus run's outputs, named once.

`bert_tf.beam` writes them (and cannot be imported without Beam); `bert_tf.index.parquet`
reads them without Beam. Both take the names from here. The metadata, stored in the
Parquet schema under `METADATA_KEY` and in the run's manifest, is
`{"format_version": FORMAT_VERSION, "space": VectorSpace.to_dict()}`.

A record's **fields** (`source`, `date`, ...: what `bert-tf index build` keeps for `--where`
and `--by`) travel in one column `fields`, since their names vary from record to record:
a JSON object per row (a string in Parquet and TFRecord, an object in JSON Lines), so
their types (str, int, float, bool) come back as they went in. `record_fields` is the one
rule of which keys of a JSON Lines record are fields, for `beam-embed` and `index build` alike.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from bert_tf.embed.space import VectorSpace, space_of_identity
from bert_tf.errors import InvalidValue

#: The schema-metadata key of Parquet outputs.
METADATA_KEY = b"bert_tf"
#: Bumped when the columns or the metadata change, so readers can refuse what they do not know.
#: 1: `identity` and `options` as written (before `VectorSpace`; still read, see `space_of_identity`).
#: 2: no `fields` column (still read: its texts have no fields).
FORMAT_VERSION = 3
#: The column of a text's fields (a JSON object), written since format version 3.
FIELDS_COLUMN = "fields"
#: The columns of every output format, in order.
COLUMNS = ("id", "text", "words", "starts", "ends", "word_vectors", "sentence_vector", FIELDS_COLUMN)
#: The keys of a JSON Lines record that are not fields.
RECORD_KEYS = ("id", "text")
#: The field a text file's texts get: the file's name.
FILE_FIELD = "file"


def run_metadata(space: VectorSpace) -> dict[str, Any]:
    """What a run's outputs record about how they were made (JSON-ready)."""
    return {"format_version": FORMAT_VERSION, "space": space.to_dict()}


def record_fields(record: Mapping) -> tuple[dict, list[str]]:
    """`(fields, names left out)` of one JSON Lines record: every key but `id` and `text` whose value is a
    string, number or true/false. A null is missing (no field); a list, an object or an empty name is left
    out and named, so a caller can say so once.

    Example:
        >>> record_fields({"id": "a", "text": "...", "source": "nyt", "year": 2019, "tags": ["x"]})
        ({'source': 'nyt', 'year': 2019}, ['tags'])
    """
    fields, left_out = {}, []
    for name, value in record.items():
        if name in RECORD_KEYS or value is None:
            continue
        if not isinstance(name, str) or not name or not isinstance(value, (str, int, float)):
            left_out.append(str(name))  # bool is an int: kept
            continue
        fields[name] = value
    return fields, left_out


def encode_fields(fields: Mapping) -> str:
    """The `fields` column's value of one text: its fields as a JSON object (keys sorted)."""
    return json.dumps(dict(fields), ensure_ascii=False, sort_keys=True)


def decode_fields(value: str | Mapping | None) -> dict:
    """A text's fields from its `fields` value (a JSON object string, an already decoded object, or None:
    none, as in files of format version 2).

    Raises:
        ValueError: a value that is not a JSON object.
    """
    if value is None:
        return {}
    return dict(_json_object(value, "its fields column holds something other than a JSON object"))


def _decoded(metadata: Any) -> dict:
    return dict(_json_object(metadata, "it has no bert_tf metadata (which model and options made the vectors)"))


def _json_object(value: Any, problem: str) -> Mapping:
    """`value` as a JSON object: decoded from a str or bytes, or as given; else `InvalidValue(problem)`."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            value = None
    if not isinstance(value, Mapping):
        raise InvalidValue(problem)
    return value


def columns_of(metadata: Any) -> tuple[str, ...]:
    """The columns a file with this metadata holds: `COLUMNS`, less `fields` before format version 3.

    Raises:
        ValueError: as `space_of`.
    """
    space_of(metadata)  # refuses what this bert_tf cannot read
    version = _decoded(metadata).get("format_version")
    return COLUMNS if version >= 3 else tuple(c for c in COLUMNS if c != FIELDS_COLUMN)


def space_of(metadata: Any) -> VectorSpace:
    """The `VectorSpace` recorded in a run's metadata (decoded JSON or the raw schema value).

    Raises:
        ValueError: no such metadata, or metadata of another format version (the message says
            which; the caller names the file and how to remake it).
    """
    metadata = _decoded(metadata)
    version = metadata.get("format_version")
    if version == 1:
        return space_of_identity(metadata.get("identity"), metadata.get("options"))
    if version not in (2, FORMAT_VERSION):
        raise InvalidValue(f"its bert_tf metadata is of format version {version}, written by another bert_tf "
                           f"(this one reads versions 1 to {FORMAT_VERSION})")
    return VectorSpace.from_dict(metadata.get("space"))
