"""A record's fields through `beam-embed` (both runner paths, every format) and into `index build --parquet`."""

from __future__ import annotations

import json

import pytest

from bert_tf.beam import EmbedSpec
from bert_tf.beam.pipeline import embed_corpus
from bert_tf.cli.main import main
from bert_tf.embed.corpus_format import run_metadata
from bert_tf.index import OccurrenceIndex
from tests.beam.conftest import read_jsonl_rows, read_parquet

#: Records with fields of every type, a list and a null (left out), a field some records lack, and one field
#: whose values are strings in some records and numbers in others ("mixed").
RECORDS = [
    {"id": "n1", "text": "the bank of the river", "source": "nyt", "year": 2019, "score": 0.5, "flag": True,
     "tags": ["a", "b"], "who": None, "mixed": "x"},
    {"id": "n2", "text": "money in the bank", "source": "nyt", "year": 2021, "score": 2.0, "flag": False,
     "mixed": 3},
    {"id": "g1", "text": "a mouse is a rodent", "source": "guardian", "year": 2019, "score": 1.25, "flag": True,
     "meta": {"k": 1}},
    {"id": "g2", "text": "", "source": "guardian", "year": 2020, "flag": False},
    {"id": "o'1", "text": "no source here", "year": 1999, "score": -3.5, "mixed": 4.5},
]
WHERES = ["source = 'nyt'", "year >= 2020", "flag = true", "score > 0.75 and year < 2021", "source != 'nyt'",
          "mixed = 'x'", "mixed > 3"]


def _fields_by_key(index: OccurrenceIndex) -> dict:
    """`{text key: {name: (value, SQLite type)}}`: what the index holds, typed as it is stored."""
    out = {key: {} for (key,) in index.db.execute("SELECT key FROM texts")}
    for key, name, value, kind in index.db.execute(
            "SELECT t.key, f.name, f.value, typeof(f.value) FROM fields f JOIN texts t ON t.id = f.text_id"):
        out[key][name] = (value, kind)
    return out


def _keys_where(index: OccurrenceIndex, where: str) -> set[str]:
    rows = index.texts_where(where).tolist()
    return {key for (key,) in (index.db.execute("SELECT key FROM texts WHERE id = ?", (r,)).fetchone()
                                for r in rows)}


def test_an_index_of_a_beam_run_has_the_fields_of_one_built_from_the_json_lines(tmp_path, beam_checkpoint, capsys):
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    assert main(["index", "build", "--input", str(corpus), "--out", str(tmp_path / "direct"), "--checkpoint",
                 str(beam_checkpoint), "--no-progress"]) == 0
    embed_corpus(str(corpus), str(tmp_path / "run"), EmbedSpec(str(beam_checkpoint)), num_shards=2)
    assert main(["index", "build", "--parquet", str(tmp_path / "run"), "--out", str(tmp_path / "beam"),
                 "--no-progress"]) == 0
    capsys.readouterr()
    direct, beam = OccurrenceIndex.open(tmp_path / "direct"), OccurrenceIndex.open(tmp_path / "beam")
    assert beam.field_types == direct.field_types == {"flag": "bool", "mixed": "mixed", "score": "float",
                                                      "source": "str", "year": "int"}
    assert beam.manifest["fields"] == direct.manifest["fields"]
    assert _fields_by_key(beam) == _fields_by_key(direct)  # the same values, stored with the same SQLite types
    assert _fields_by_key(beam)["n2"] == {"source": ("nyt", "text"), "year": (2021, "integer"),
                                          "score": (2.0, "real"), "flag": (0, "integer"), "mixed": (3, "integer")}
    for where in WHERES:
        expected = _keys_where(direct, where)
        assert _keys_where(beam, where) == expected and expected, where
    # What a plain Python filter of the records selects, for one of them.
    assert _keys_where(beam, "year >= 2020") == {r["id"] for r in RECORDS if r.get("year", 0) >= 2020}
    # --where and --by on the command line, on the Beam-built index.
    assert main(["search", str(tmp_path / "beam"), "the bank", "--where", "source = 'guardian'", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["id"] for r in rows} <= {"g1", "g2"} and all(r["fields"]["source"] == "guardian"
                                                                    for r in rows)


def test_fields_of_text_and_json_lines_input_in_every_format(tmp_path, beam_checkpoint):
    (tmp_path / "in").mkdir()
    prose, news, more = tmp_path / "in" / "prose.txt", tmp_path / "in" / "a.jsonl", tmp_path / "in" / "b.jsonl"
    prose.write_text("The bank of the river.\n\n", encoding="utf-8")
    news.write_text('{"id": "x", "text": "A mouse.", "source": "nyt", "n": 1}\n', encoding="utf-8")
    # The same id again, in a later file of the glob, with other fields: the first record wins, with its own.
    more.write_text('{"id": "x", "text": "A rat.", "source": "bbc", "n": 2}\n', encoding="utf-8")
    expected = {f"{prose}:1": {"file": "prose.txt"}, f"{prose}:2": {"file": "prose.txt"},
                "x": {"source": "nyt", "n": 1}}
    jsonl = embed_corpus(str(tmp_path / "in" / "*"), str(tmp_path / "j"), EmbedSpec(str(beam_checkpoint)),
                         output_format="jsonl")
    assert jsonl.dead_letters == 1
    assert {r["id"]: r["fields"] for r in read_jsonl_rows(tmp_path / "j")} == expected  # an object in JSON Lines
    embed_corpus(str(tmp_path / "in" / "*"), str(tmp_path / "p"), EmbedSpec(str(beam_checkpoint)))
    assert {k: json.loads(r["fields"]) for k, r in read_parquet(tmp_path / "p").items()} == expected

    import glob

    from bert_tf.beam.records import tfrecord_features
    from bert_tf.runtime import tf

    embed_corpus(str(tmp_path / "in" / "*"), str(tmp_path / "t"), EmbedSpec(str(beam_checkpoint)),
                 output_format="tfrecord")
    dataset = tf.data.TFRecordDataset(sorted(glob.glob(f"{tmp_path / 't'}-*-of-*.tfrecord")))
    parsed = [tf.io.parse_single_example(r, tfrecord_features()) for r in dataset]
    assert {x["id"].numpy().decode(): json.loads(x["fields"].numpy()) for x in parsed} == expected


def test_the_dask_runners_file_task_writes_the_fields(tmp_path, beam_checkpoint, embedder):
    """`on_dask.EmbedFile` (one input file per task) run here, without a cluster: its part has the fields."""
    import pyarrow.parquet as pq

    from bert_tf.beam.on_dask import EmbedFile, part_name

    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    task = EmbedFile(EmbedSpec(str(beam_checkpoint)), str(tmp_path), "parquet", None,
                     run_metadata(embedder.space(embedder.options())))
    task.setup()
    assert list(task.process((0, str(path)))) == [0]
    rows = pq.read_table(part_name(str(tmp_path), 0) + ".parquet").to_pylist()
    dropped = ("id", "text", "tags", "who", "meta")
    assert {r["id"]: json.loads(r["fields"]) for r in rows} == \
        {r["id"]: {k: v for k, v in r.items() if k not in dropped} for r in RECORDS}


@pytest.mark.parametrize("value", ['["a list"]', "not json"])
def test_a_fields_column_that_is_not_an_object_is_refused_in_one_line(tmp_path, beam_checkpoint, value, capsys):
    import pyarrow.parquet as pq

    (tmp_path / "x.txt").write_text("a bank\n", encoding="utf-8")
    embed_corpus(str(tmp_path / "x.txt"), str(tmp_path / "run"), EmbedSpec(str(beam_checkpoint)))
    (shard,) = tmp_path.glob("run-*-of-*.parquet")
    table = pq.read_table(shard)
    column = table.schema.get_field_index("fields")
    pq.write_table(table.set_column(column, "fields", [[value]]), shard)
    assert main(["index", "build", "--parquet", str(tmp_path / "run"), "--out", str(tmp_path / "ix"),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "its fields column holds something other than a JSON object" in err
    assert not (tmp_path / "ix").exists()
