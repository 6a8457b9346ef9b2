"""Reading a corpus: text files (every line a record) and JSON Lines (`id` and `text` fields), by glob.

Each file is read whole by one worker, line by line (any size, any filesystem Beam
knows: local, `gs://`, ...; `.gz` and `.bz2` are decompressed), and the records are
then reshuffled so that every worker gets a share of one big file.

* Text: every line is a record, an empty line included; the id is `FILE:LINE` (1-based).
  Lines end at `\\n` only (a `\\r\\n` ending is stripped too), so a stray `\\r`, form feed
  or U+2028 inside a line never splits it. The bytes are decoded by `EmbedTexts`, so a
  line that is not UTF-8 becomes a dead letter with its id, not a failed read.
* JSON Lines: one object per line with a string `text` and a string `id`. A line that is
  not such an object becomes a `DeadLetter` with id `FILE:LINE` and the reason: a blank
  line, invalid JSON or UTF-8, a missing field, or an `id` that is not a string (a number
  is refused, not converted, so `17` and `"17"` can never become one id).

Which files are which: a file's own suffix (`.jsonl` / `.json`, optionally `.gz` / `.bz2`,
is JSON Lines, anything else text), so one glob can match both; `input_format` forces one.
"""

from __future__ import annotations

import json
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio

from bert_tf.beam.records import DeadLetter
from bert_tf.text.inputs import decode_line, split_line

INPUT_FORMATS = ("text", "jsonl")


def input_format_for(pattern: str) -> str:
    """"jsonl" for a pattern ending in `.jsonl` or `.json` (optionally compressed), else "text"."""
    name = pattern.lower()
    for suffix in (".gz", ".bz2"):
        name = name.removesuffix(suffix)
    return "jsonl" if name.endswith((".jsonl", ".json")) else "text"


def _raw_lines(readable) -> Iterator[tuple[str, bytes]]:
    path = readable.metadata.path
    with readable.open() as f:
        number = 0
        while raw := f.readline():
            number += 1
            yield f"{path}:{number}", split_line(raw)


def text_records(readable) -> Iterator[tuple[str, bytes]]:
    """`(FILE:LINE, raw line bytes)` for every line of one matched file."""
    yield from _raw_lines(readable)


def json_records(readable) -> Iterator[tuple[str, str] | DeadLetter]:
    """`(id, text)` for every line of one JSON Lines file, or a `DeadLetter` for a line that is not a record."""
    for where, raw in _raw_lines(readable):
        decoded, problem = decode_line(raw)
        if problem is not None:
            yield DeadLetter(where, problem, raw.decode("utf-8", "backslashreplace"))
            continue
        if not decoded.strip():  # counted like every line: in the output or the dead letters, never neither
            yield DeadLetter(where, "blank line: JSON Lines holds one record per line", decoded)
            continue
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as e:
            yield DeadLetter(where, f"not valid JSON: {e.msg} (column {e.colno})", decoded)
            continue
        if not isinstance(obj, dict) or "text" not in obj or "id" not in obj:
            yield DeadLetter(where, 'not a JSON object with "id" and "text" fields', decoded)
            continue
        record_id = obj["id"]
        if not isinstance(record_id, str):
            yield DeadLetter(where, f'"id" is {type(record_id).__name__}, expected a string: ids are strings, so '
                                    f'write "id": {json.dumps(str(record_id))}', decoded)
            continue
        yield record_id, obj["text"]


def records(readable, input_format: str | None = None) -> Iterator:
    """The records of one matched file: as `input_format` says, or by the file's own suffix when None."""
    fmt = input_format or input_format_for(readable.metadata.path)
    yield from (text_records if fmt == "text" else json_records)(readable)


class ReadTexts(beam.PTransform):
    """A glob of files to `(id, text)` records (and `DeadLetter`s) for `EmbedTexts`.

    Args:
        pattern: a file glob (`corpus/*.txt`, `gs://bucket/corpus/part-*`).
        input_format: "text" or "jsonl" for every file; None decides per file, by its suffix
            (`input_format_for`), so a glob over `.txt` and `.jsonl` files reads each as what it is.
    """

    def __init__(self, pattern: str, input_format: str | None = None):
        super().__init__()
        from bert_tf.embed.options import check_choice

        self.pattern = pattern
        self.input_format = input_format
        if input_format is not None:
            check_choice("input_format", input_format, INPUT_FORMATS)

    def expand(self, p):
        return (p
                | "Match" >> fileio.MatchFiles(self.pattern)
                | "Open" >> fileio.ReadMatches()
                | "Records" >> beam.FlatMap(records, self.input_format)
                | "Spread" >> beam.Reshuffle())
