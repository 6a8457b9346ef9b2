"""Reading a corpus: every JSON Lines line accounted for exactly once, and each file read in its own format."""

from __future__ import annotations

import glob
import json

import pytest

from bert_tf.beam import EmbedSpec
from bert_tf.beam.pipeline import embed_corpus
from bert_tf.beam.sources import format_of, input_format_for
from tests.beam.conftest import read_dead_letters

#: (line, where it must go: an output id, or ("dead", reason start, id or None for FILE:LINE)).
AWKWARD_JSONL = [
    (b'{"id": "a", "text": "A mouse is a rodent."}', "a"),
    (b'{"id": "17", "text": "Seventeen as a string."}', "17"),
    (b'{"id": 17, "text": "Seventeen as a number."}', ("dead", '"id" is a number; ids must be JSON strings', None)),
    (b"", ("dead", "a blank line", None)),
    (b'{"id": "a", "text": "The same id again."}', ("dead", 'duplicate id "a"', None)),
    (b'{"id": "b", "text": "caf\xff is not UTF-8"}', ("dead", "not valid UTF-8", None)),
    (b'{"id": "c", "text": 5}', ("dead", "the text is int", "c")),
    (b'{"id": "a", "text": "And a third time."}', ("dead", 'duplicate id "a"', None)),
    (b'{"id": "d", "text": "The bank of the river."}', "d"),
    (b'{"id": "17", "text": "The string id again."}', ("dead", 'duplicate id "17"', None)),
    (b"   \t", ("dead", "a blank line", None)),
    (b'{"id": 1.5, "text": "A float id."}', ("dead", '"id" is a number', None)),
    (b'{"id": null, "text": "No id."}', ("dead", '"id" is JSON null', None)),
]
#: A second file: its id "a" is a duplicate of the first file's first line (input order: path, then line).
SECOND = [(b'{"id": "a", "text": "Another file, the same id."}', ("dead", 'duplicate id "a"', None)),
          (b'{"id": "e", "text": "A fresh id."}', "e")]


def _write_awkward(folder):
    first, second = folder / "a.jsonl", folder / "b.jsonl"
    first.write_bytes(b"".join(line + b"\n" for line, _ in AWKWARD_JSONL))
    second.write_bytes(b"".join(line + b"\n" for line, _ in SECOND))
    return {f"{path}:{n}": fate for path, lines in ((first, AWKWARD_JSONL), (second, SECOND))
            for n, (_, fate) in enumerate(lines, start=1)}


def _read_rows(prefix) -> list[dict]:
    # The glob docs/corpus.md gives for the embeddings: it must not match the dead letters.
    return [json.loads(line) for f in sorted(glob.glob(f"{prefix}-*-of-*.jsonl"))
            for line in open(f, encoding="utf-8")]


@pytest.mark.parametrize("workers", [
    [],
    pytest.param(["--direct_num_workers=2", "--direct_running_mode=multi_processing"], marks=pytest.mark.slow),
], ids=["in_process", "two_workers"])
def test_every_json_lines_line_is_counted_exactly_once(tmp_path, beam_checkpoint, workers):
    fates = _write_awkward(tmp_path)
    prefix = tmp_path / "out" / "corpus"
    prefix.parent.mkdir()
    summary = embed_corpus(str(tmp_path / "*.jsonl"), str(prefix), EmbedSpec(str(beam_checkpoint)),
                           output_format="jsonl", pipeline_args=workers)
    rows = _read_rows(prefix)
    dead = read_dead_letters(prefix)  # fails on an id twice
    assert len(rows) + len(dead) == len(fates)  # every input line once, in one place
    assert sorted(r["id"] for r in rows) == sorted(f for f in fates.values() if isinstance(f, str))
    assert summary.embedded == len(rows) and summary.dead_letters == len(dead)
    texts = {r["id"]: r["text"] for r in rows}
    assert texts["a"] == "A mouse is a rodent." and texts["17"] == "Seventeen as a string."  # the first wins
    for where, fate in fates.items():
        if isinstance(fate, str):
            continue
        _, reason, record_id = fate
        letter = dead[record_id or where]
        assert letter["reason"].startswith(reason), (where, letter)
    assert 'quote it ("id": "17")' in dead[f"{tmp_path / 'a.jsonl'}:3"]["reason"]
    assert f"the record at {tmp_path / 'a.jsonl'}:1" in dead[f"{tmp_path / 'b.jsonl'}:1"]["reason"]


def test_each_file_of_a_glob_is_read_in_its_own_format(tmp_path, beam_checkpoint):
    (tmp_path / "in").mkdir()
    prose, records = tmp_path / "in" / "prose.txt", tmp_path / "in" / "records.jsonl"
    prose.write_text("The bank of the river.\n{\"id\": \"x\", \"text\": \"prose that looks like JSON\"}\n")
    records.write_text('{"id": "x", "text": "A mouse is a rodent."}\n')
    prefix = tmp_path / "corpus"
    embed_corpus(str(tmp_path / "in" / "*"), str(prefix), EmbedSpec(str(beam_checkpoint)), output_format="jsonl")
    texts = {r["id"]: r["text"] for r in _read_rows(prefix)}
    assert texts == {f"{prose}:1": "The bank of the river.",
                     f"{prose}:2": '{"id": "x", "text": "prose that looks like JSON"}',  # a text file's line
                     "x": "A mouse is a rodent."}  # a JSON record, not its syntax


def test_the_format_is_decided_per_file_unless_forced():
    assert input_format_for("in/a.JSONL.gz") == "jsonl" and input_format_for("in/a.json") == "jsonl"
    assert input_format_for("in/*") == "text"
    assert format_of("in/a.jsonl", None) == "jsonl" and format_of("in/a.txt", None) == "text"
    assert format_of("in/a.jsonl", "text") == "text" and format_of("in/a.txt", "jsonl") == "jsonl"


def test_json_records_of_one_file_repeat_no_id(tmp_path):
    """What the DaskRunner reads (a file per task): a repeated id is a dead letter within the file."""
    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bert_tf.beam.records import DeadLetter
    from bert_tf.beam.sources import json_records

    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n\n')
    items = list(json_records(fileio.ReadableFile(FileSystems.match([str(path)])[0].metadata_list[0])))
    assert items[0] == ("a", "x")
    assert items[1] == DeadLetter(f"{path}:2", f'duplicate id "a": the record at {path}:1 has it and is the one '
                                               "embedded; give every record its own id", "y")
    assert items[2].id == f"{path}:3" and items[2].reason.startswith("a blank line")
