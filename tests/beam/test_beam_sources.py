"""Reading a corpus: each file of a glob read in its own format (JSON Lines accounting: test_beam_jsonl_accounting)."""

from __future__ import annotations

from bert_tf.beam import EmbedSpec
from bert_tf.beam.pipeline import embed_corpus
from bert_tf.beam.sources import format_of, input_format_for
from tests.beam.conftest import read_jsonl_rows


def test_each_file_of_a_glob_is_read_in_its_own_format(tmp_path, beam_checkpoint):
    (tmp_path / "in").mkdir()
    prose, records = tmp_path / "in" / "prose.txt", tmp_path / "in" / "records.jsonl"
    prose.write_text("The bank of the river.\n{\"id\": \"x\", \"text\": \"prose that looks like JSON\"}\n")
    records.write_text('{"id": "x", "text": "A mouse is a rodent."}\n')
    prefix = tmp_path / "corpus"
    embed_corpus(str(tmp_path / "in" / "*"), str(prefix), EmbedSpec(str(beam_checkpoint)), output_format="jsonl")
    texts = {r["id"]: r["text"] for r in read_jsonl_rows(prefix)}
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
    path.write_text('{"id": "a", "text": "x", "source": "nyt", "tags": [1]}\n{"id": "a", "text": "y"}\n\n')
    items = list(json_records(fileio.ReadableFile(FileSystems.match([str(path)])[0].metadata_list[0])))
    assert items[0] == ("a", "x", {"source": "nyt"})  # its fields, the list left out
    assert items[1] == DeadLetter(f"{path}:2", f'duplicate id "a": the record at {path}:1 has it and is the one '
                                               "embedded; give every record its own id", "y")
    assert items[2].id == f"{path}:3" and items[2].reason.startswith("a blank line")
