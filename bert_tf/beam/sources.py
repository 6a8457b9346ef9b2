"""Reading a corpus: text files (every line a record) and JSON Lines (`id` and `text` fields), by glob.

A record is `(id, text, fields)`: its fields are what `bert-tf index build` keeps of it for
`--where` and `--by` (the same rule, `corpus_format.record_fields`), and they travel to
the output's `fields` column.

Each file is read whole by one worker, line by line (any size, any filesystem Beam
knows: local, `gs://`, ...; `.gz` and `.bz2` are decompressed), and the records are
then reshuffled so that every worker gets a share of one big file. Each matched file
is read by its own suffix (`.jsonl`/`.json`, optionally compressed: JSON Lines; any
other: text) unless one format is forced, so one glob may mix both.

* Text: every line is a record, an empty line included; the id is `FILE:LINE` (1-based).
  Lines end at `\\n` only (a `\\r\\n` ending is stripped too), so a stray `\\r`, form feed
  or U+2028 inside a line never splits it. The bytes are decoded by `EmbedTexts`, so a
  line that is not UTF-8 becomes a dead letter with its id, not a failed read. Its fields:
  `file`, the file's name.
* JSON Lines: one object per line with a string `id` and a string `text`. Every line
  is accounted for: one that is not UTF-8, blank, not such an object, or whose `id` is
  not a JSON string (`17` is refused, so that it never merges with `"17"`) becomes a
  `DeadLetter` with id `FILE:LINE` and the reason. An id seen before (in any file of the
  glob) is a dead letter too: the first occurrence in input order (file path, then
  line) is embedded, every later one is not (`ReadTexts` groups the records by id). Its
  fields: every other key with a string, number or true/false value (a list or an object
  is left out).
"""

from __future__ import annotations

import json
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from bert_tf.beam import progress
from bert_tf.beam.records import DeadLetter
from bert_tf.embed.corpus_format import FILE_FIELD, record_fields
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


def format_of(path: str, input_format: str | None) -> str:
    """The format to read one file in: `input_format` when forced, else by its suffix."""
    return input_format or input_format_for(path)


def text_records(readable) -> Iterator[tuple[str, bytes, dict]]:
    """`(FILE:LINE, raw line bytes, {"file": the file's name})` for every line of one matched file."""
    fields = {FILE_FIELD: FileSystems.split(readable.metadata.path)[1]}
    for where, raw in _raw_lines(readable):
        yield where, raw, dict(fields)


def located_json_records(readable) -> Iterator[tuple[int, tuple[str, object, dict] | DeadLetter]]:
    """`(line number, (id, text, fields) or DeadLetter)` for every line of one JSON Lines file (see the module's
    rule)."""
    number = 0
    for where, raw in _raw_lines(readable):
        number += 1
        yield number, _json_record(where, raw)


def _json_record(where: str, raw: bytes) -> tuple[str, object, dict] | DeadLetter:
    decoded, problem = decode_line(raw)
    if problem is not None:
        return DeadLetter(where, problem, raw.decode("utf-8", "backslashreplace"))
    if not decoded.strip():
        return DeadLetter(where, "a blank line: a JSON Lines file holds one object per line; remove it", decoded)
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as e:
        return DeadLetter(where, f"not valid JSON: {e.msg} (column {e.colno})", decoded)
    if not isinstance(obj, dict) or "text" not in obj or "id" not in obj:
        return DeadLetter(where, 'not a JSON object with "id" and "text" fields', decoded)
    record_id = obj["id"]
    if not isinstance(record_id, str):
        kind = "a number" if isinstance(record_id, (int, float)) and not isinstance(record_id, bool) \
            else f"JSON {json.dumps(record_id)[:20]}"
        return DeadLetter(where, f'"id" is {kind}; ids must be JSON strings: quote it ("id": '
                                 f'{json.dumps(str(json.dumps(record_id)))})', decoded)
    return record_id, obj["text"], record_fields(obj)[0]


def json_records(readable) -> Iterator[tuple[str, object, dict] | DeadLetter]:
    """`(id, text, fields)` for every line of one JSON Lines file, or a `DeadLetter` for a line that is not a record
    or repeats an id of this file (one file at a time: `ReadTexts` checks over the whole glob instead)."""
    first: dict[str, str] = {}
    path = readable.metadata.path
    for number, item in located_json_records(readable):
        if not isinstance(item, DeadLetter):
            record_id, text, _ = item
            if record_id in first:
                item = duplicate_letter(record_id, f"{path}:{number}", first[record_id], text)
            else:
                first[record_id] = f"{path}:{number}"
        yield item


def duplicate_letter(record_id: str, where: str, first: str, text) -> DeadLetter:
    """The dead letter of a record whose id already belongs to the record at `first`."""
    return DeadLetter(where, f"duplicate id {json.dumps(record_id)}: the record at {first} has it and is the "
                             "one embedded; give every record its own id",
                      text if isinstance(text, str) else None)


def first_of_each_id(keyed) -> Iterator[tuple[str, object, dict] | DeadLetter]:
    """`(id, [(path, line, text, fields), ...])` -> the first record in input order (with its own fields),
    and a dead letter for each other."""
    record_id, occurrences = keyed
    ordered = sorted(occurrences, key=lambda o: (o[0], o[1]))
    path, line, text, fields = ordered[0]
    yield record_id, text, fields
    for other_path, other_line, other_text, _ in ordered[1:]:
        yield duplicate_letter(record_id, f"{other_path}:{other_line}", f"{path}:{line}", other_text)


class _ReadFile(beam.DoFn):
    """One matched file to its records: text records and dead letters on the main output, JSON Lines
    records keyed by id on `"json"` (for the duplicate check)."""

    def __init__(self, input_format: str | None):
        self.input_format = input_format

    def process(self, readable):
        path = readable.metadata.path
        if format_of(path, self.input_format) == "text":
            for record in text_records(readable):
                progress.note("read")
                yield record
            return
        for number, item in located_json_records(readable):
            progress.note("read")
            if isinstance(item, DeadLetter):
                yield item
            else:
                record_id, text, fields = item
                yield beam.pvalue.TaggedOutput("json", (record_id, (path, number, text, fields)))


class ReadTexts(beam.PTransform):
    """A glob of files to `(id, text, fields)` records (and `DeadLetter`s) for `EmbedTexts`.

    Args:
        pattern: a file glob (`corpus/*.txt`, `gs://bucket/corpus/part-*`).
        input_format: "text" or "jsonl" for every file; None reads each file by its own suffix
            (`input_format_for`).
    """

    def __init__(self, pattern: str, input_format: str | None = None):
        super().__init__()
        from bert_tf.embed.options import check_choice

        self.pattern = pattern
        self.input_format = input_format
        if input_format is not None:
            check_choice("input_format", input_format, INPUT_FORMATS)

    def expand(self, p):
        read = (p
                | "Match" >> fileio.MatchFiles(self.pattern)
                | "Open" >> fileio.ReadMatches()
                | "Records" >> beam.ParDo(_ReadFile(self.input_format)).with_outputs("json", main="records"))
        unique = (read.json
                  | "ById" >> beam.GroupByKey()
                  | "FirstOfEachId" >> beam.FlatMap(first_of_each_id))
        return ((read.records, unique)
                | "All" >> beam.Flatten()
                | "Spread" >> beam.Reshuffle())
