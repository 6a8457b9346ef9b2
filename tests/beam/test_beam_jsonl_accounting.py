"""JSON Lines input of beam-embed: every line counted exactly once, in the output or the dead letters, with its reason.

The awkward file holds valid records, blank and whitespace-only lines, numeric and null ids, a line that is not
UTF-8, a non-string text and repeated ids (within a file and across the glob's two files).
"""

from __future__ import annotations

import pytest

from bert_tf.beam import EmbedSpec
from bert_tf.beam.pipeline import embed_corpus
from bert_tf.cli.main import main
from tests.beam.conftest import read_dead_letters, read_jsonl_rows

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


def _assert_each_line_once(folder, prefix, fates) -> tuple[list, dict]:
    rows = read_jsonl_rows(prefix)
    dead = read_dead_letters(prefix)  # fails on an id twice
    assert len(rows) + len(dead) == len(fates)  # every input line once, in one place
    assert sorted(r["id"] for r in rows) == sorted(f for f in fates.values() if isinstance(f, str))
    texts = {r["id"]: r["text"] for r in rows}
    assert texts["a"] == "A mouse is a rodent." and texts["17"] == "Seventeen as a string."  # the first wins
    for where, fate in fates.items():
        if isinstance(fate, str):
            continue
        _, reason, record_id = fate
        letter = dead[record_id or where]
        assert letter["reason"].startswith(reason), (where, letter)
    assert 'quote it ("id": "17")' in dead[f"{folder / 'a.jsonl'}:3"]["reason"]
    assert f"the record at {folder / 'a.jsonl'}:1" in dead[f"{folder / 'b.jsonl'}:1"]["reason"]
    assert f"the record at {folder / 'a.jsonl'}:2" in dead[f"{folder / 'a.jsonl'}:10"]["reason"]
    return rows, dead


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
    rows, dead = _assert_each_line_once(tmp_path, prefix, fates)
    assert summary.embedded == len(rows) and summary.dead_letters == len(dead)


def test_beam_embed_on_the_command_line_counts_every_line_once(tmp_path, beam_checkpoint, capsys):
    fates = _write_awkward(tmp_path)
    prefix = tmp_path / "out" / "corpus"
    prefix.parent.mkdir()
    code = main(["beam-embed", "--input", str(tmp_path / "*.jsonl"), "--output", str(prefix),
                 "--checkpoint", str(beam_checkpoint), "--format", "jsonl"])
    err = capsys.readouterr().err
    assert code == 0, err
    rows, dead = _assert_each_line_once(tmp_path, prefix, fates)
    assert (len(rows), len(dead)) == (4, 11)
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith(f"bert-tf: wrote 4 text(s) to {prefix}-00000-of-00001.jsonl (jsonl); 11 to dead letters")
