"""embed_corpus and `bert-tf beam-embed`: exactly once, whole outputs, the same vectors as the library."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from bert_tf.beam import EmbedSpec
from bert_tf.beam import records
from bert_tf.beam.pipeline import embed_corpus, run_files
from bert_tf.cli.main import main
from bert_tf.embed.corpus_format import space_of
from bert_tf.testing import assert_float32_close, encoder_bound
from tests.beam.conftest import assert_rows_match_embedder, read_dead_letters, read_parquet


def _snapshot(prefix):
    return {p: open(p, "rb").read() for p in run_files(str(prefix))}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, awkward_file, beam_checkpoint):
    """One in-process run over the awkward corpus, 2 Parquet shards; shared by the tests that only read it."""
    path, expected = awkward_file
    prefix = tmp_path_factory.mktemp("first") / "corpus"
    summary = embed_corpus(str(path), str(prefix), EmbedSpec(str(beam_checkpoint)), num_shards=2)
    return prefix, summary, expected


def test_every_record_comes_out_once_in_the_output_or_the_dead_letters(first_run, embedder):
    prefix, summary, expected = first_run
    rows, dead = read_parquet(prefix), read_dead_letters(prefix)  # each fails on an id seen twice
    assert not set(rows) & set(dead)
    assert set(rows) | set(dead) == set(expected)
    assert set(dead) == {i for i, text in expected.items() if text is None}
    assert all(d["reason"].startswith("not valid UTF-8") for d in dead.values())
    assert dead[min(dead)]["text"] == "caf\\xe9 is latin-1"  # shown, with the bad byte escaped
    good = {i: t for i, t in expected.items() if t is not None}
    assert_rows_match_embedder(rows, good, embedder)
    empty = next(i for i, t in good.items() if t == "")
    assert rows[empty]["words"] == [] and len(rows[empty]["sentence_vector"]) == embedder.hidden_size
    assert len(max(good.values(), key=len)) > 50_000
    assert (summary.embedded, summary.dead_letters) == (len(good), len(dead))  # from Beam's metrics
    assert summary.words == sum(len(r["words"]) for r in rows.values())


def test_a_run_is_sharded_and_its_files_say_what_built_them(first_run, embedder, beam_checkpoint):
    prefix, summary, _ = first_run
    assert [os.path.basename(f) for f in summary.files] == ["corpus-00000-of-00002.parquet",
                                                            "corpus-00001-of-00002.parquet"]
    assert [os.path.basename(f) for f in summary.dead_letter_files] == ["corpus-dead-letters.jsonl"]
    meta = records.read_metadata(summary.files[0])
    space = space_of(meta)
    assert space == embedder.space() and space.path == os.path.abspath(beam_checkpoint)
    manifest = json.load(open(summary.manifest))
    assert manifest["files"] == [os.path.basename(f) for f in summary.files + summary.dead_letter_files]
    assert manifest["space"] == meta["space"] == space.to_dict() and manifest["counts"]["dead_letters"] == 2
    assert not [n for n in os.listdir(prefix.parent) if n.startswith(".")]  # no staging or lock left


def test_a_finished_run_is_refused_and_left_as_it_was(first_run, awkward_file, beam_checkpoint):
    prefix, _, _ = first_run
    before = _snapshot(prefix)
    with pytest.raises(FileExistsError, match="already holds a finished run.*pass force=True"):
        embed_corpus(str(awkward_file[0]), str(prefix), EmbedSpec(str(beam_checkpoint)))
    assert _snapshot(prefix) == before


def test_force_replaces_a_run_as_a_whole_and_a_failed_run_changes_nothing(tmp_path, awkward_file, beam_checkpoint,
                                                                          embedder, monkeypatch):
    path, expected = awkward_file
    prefix = str(tmp_path / "corpus")
    spec = EmbedSpec(str(beam_checkpoint))
    embed_corpus(str(path), prefix, spec, num_shards=3)
    parquet = read_parquet(prefix)

    summary = embed_corpus(str(path), prefix, spec, output_format="tfrecord", num_shards=1, force=True)
    names = sorted(os.path.basename(p) for p in run_files(prefix))
    assert names == ["corpus-00000-of-00001.tfrecord", "corpus-dead-letters.jsonl",
                     "corpus-manifest.json"]  # none of the three old Parquet shards is left
    assert summary.files == [prefix + "-00000-of-00001.tfrecord"]

    from bert_tf.runtime import tf

    rows = {}
    for x in tf.data.TFRecordDataset(summary.files).map(
            lambda r: tf.io.parse_single_example(r, records.tfrecord_features())):
        rows[x["id"].numpy().decode()] = x
    assert sorted(rows) == sorted(parquet)
    for record_id, row in parquet.items():
        vectors = tf.reshape(rows[record_id]["word_vectors"], [-1, rows[record_id]["vector_size"]]).numpy()
        reference = np.array(row["word_vectors"], np.float32).reshape(vectors.shape)
        assert_float32_close(vectors, reference, encoder_bound(embedder.config, reference), record_id)

    # A run that fails while writing: no file under a final name, the finished run untouched.
    before = _snapshot(prefix)
    written = []

    def fail_midway(e):
        written.append(e.id)
        if len(written) == 4:
            raise RuntimeError("disk on fire")
        return records.to_json(e)

    monkeypatch.setattr(records, "to_json", fail_midway)
    with pytest.raises(Exception, match="disk on fire"):
        embed_corpus(str(path), prefix, spec, output_format="jsonl", num_shards=2, force=True)
    assert len(written) >= 4
    assert _snapshot(prefix) == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # the staging folder went with the run


def test_json_lines_input_with_bad_records(tmp_path, beam_checkpoint):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "text": "a mouse"}\n{"id": 7, "text": ""}\nnot json\n'
                       b'{"text": "no id"}\n{"id": "b", "text": 3}\n\n{"id": "c", "text": "caf\\u00e9"}\n'
                       b'{"id": "d", "text": "\xff"}\n')
    prefix = tmp_path / "out"
    embed_corpus(str(source), str(prefix), EmbedSpec(str(beam_checkpoint)), output_format="jsonl")
    rows = {}
    for f in glob.glob(f"{prefix}-0*.jsonl"):
        rows.update((json.loads(line)["id"], json.loads(line)) for line in open(f, encoding="utf-8"))
    dead = read_dead_letters(prefix)
    assert sorted(rows) == ["a", "c"] and rows["c"]["words"] == ["cafe"]
    assert {k: v["reason"].split(":")[0].split(" (")[0].split(";")[0] for k, v in dead.items()} == {
        f"{source}:2": '"id" is a number', f"{source}:3": "not valid JSON",
        f"{source}:4": 'not a JSON object with "id" and "text" fields', "b": "the text is int, expected str",
        f"{source}:6": "a blank line", f"{source}:8": "not valid UTF-8"}


# ---------------------------------------------------------------------- the command line


def _cli(*args, capsys):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


def test_cli_writes_and_reports_from_beams_metrics(tmp_path, awkward_file, beam_checkpoint, embedder, capsys):
    path, expected = awkward_file
    prefix = tmp_path / "cli"
    code, err = _cli("beam-embed", "--input", str(path), "--output", str(prefix), "--checkpoint",
                     str(beam_checkpoint), "--dim", "16", "--layers=-1", "--format", "jsonl", capsys=capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"bert-tf: wrote 7 text(s) to {prefix}-00000-of-00001.jsonl (jsonl); "
                                "2 to dead letters")
    assert not [line for line in lines if not line.startswith("bert-tf:")]  # no Beam or TF noise
    row = json.loads(open(f"{prefix}-00000-of-00001.jsonl", encoding="utf-8").readline())
    assert len(row["word_vectors"][0]) == 16
    space = json.load(open(f"{prefix}-manifest.json"))["space"]
    assert (space["layers"], space["vector_size"], space["path"]) == ([-1], 16, os.path.abspath(beam_checkpoint))


def test_a_relative_checkpoint_is_recorded_absolute_and_the_run_indexed_from_elsewhere(tmp_path, beam_checkpoint,
                                                                                       monkeypatch, capsys):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(beam_checkpoint, work / "ckpts" / "tiny")
    (work / "in.txt").write_text("the bank of the river\nmoney in the bank\n", encoding="utf-8")
    monkeypatch.chdir(work)
    code, _ = _cli("beam-embed", "--input", "in.txt", "--output", "out", "--checkpoint", "ckpts/tiny", capsys=capsys)
    assert code == 0
    absolute = str(work / "ckpts" / "tiny")
    assert json.load(open("out-manifest.json"))["space"]["path"] == absolute
    assert space_of(records.read_metadata(glob.glob("out-*-of-*.parquet")[0])).path == absolute
    monkeypatch.chdir(tmp_path)
    assert main(["index", "build", "--parquet", str(work / "out"), "--out", "ix"]) == 0
    assert main(["search", "ix", "--word", "bank", "the bank of the river", "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["word"] == "bank"


@pytest.mark.parametrize("args, message", [
    (["--input", "{tmp}/nothing-*.txt"], "--input {tmp}/nothing-*.txt matches no file"),
    (["--input", "{tmp}"], "--input {tmp} is a folder; give a glob of its files, e.g. {tmp}/*.txt"),
    (["--output", "{tmp}/missing/out"], "cannot write {tmp}/missing/out: the folder {tmp}/missing does not exist"),
    (["--output", "{tmp}"], "--output {tmp} is a folder; give a file name prefix inside it"),
    (["--projet", "p"], "unknown option --projet: it is neither a beam-embed option nor a Beam pipeline option"),
    (["-x"], "unknown option -x"),
    (["--verbose"], "--verbose goes before the command: bert-tf --verbose beam-embed"),
    (["--combine", "avg"], None),  # argparse's own message, exit status 2
    (["--num-shards", "-1"], "--num-shards must be 0 (the runner chooses) or more; got -1"),
])
def test_cli_errors_are_one_line(tmp_path, awkward_file, beam_checkpoint, capsys, args, message):
    base = {"--input": str(awkward_file[0]), "--output": str(tmp_path / "out"), "--checkpoint": str(beam_checkpoint)}
    args = [a.format(tmp=tmp_path) for a in args]
    for flag in list(base):
        if flag in args:
            del base[flag]
    argv = ["beam-embed", *[x for kv in base.items() for x in kv], *args]
    if message is None:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "invalid choice: 'avg'" in capsys.readouterr().err
        return
    code, err = _cli(*argv, capsys=capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"bert-tf: error: {message.format(tmp=tmp_path)}"), err
    assert not list(tmp_path.glob("out*"))


def test_cli_refuses_a_finished_run_in_one_line(first_run, awkward_file, beam_checkpoint, capsys):
    prefix, _, _ = first_run
    code, err = _cli("beam-embed", "--input", str(awkward_file[0]), "--output", str(prefix), "--checkpoint",
                     str(beam_checkpoint), capsys=capsys)
    assert code == 1
    assert err == (f"bert-tf: error: --output {prefix} already holds a finished run (corpus-00000-of-00002.parquet, "
                   "...); pass --force to replace it as a whole, or choose another prefix\n")


@pytest.mark.slow
def test_two_worker_processes_give_the_same_rows_and_vectors(tmp_path, first_run, awkward_file, beam_checkpoint,
                                                             embedder, capfd):
    prefix = tmp_path / "two"
    # The worker processes import bert_tf afresh (they inherit the environment, PYTHONPATH included)
    # and write to the same stderr: capfd sees what they print.
    code = main(["beam-embed", "--input", str(awkward_file[0]), "--output", str(prefix), "--checkpoint",
                 str(beam_checkpoint), "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    err = capfd.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"bert-tf: wrote 7 text(s) to {prefix}-00000-of-00002.parquet") and \
        "; 2 to dead letters" in lines[-1]
    assert not [line for line in lines if not line.startswith("bert-tf:")]  # the workers' logging stays quiet
    one, two = read_parquet(first_run[0]), read_parquet(prefix)
    assert sorted(one) == sorted(two)
    assert sorted(read_dead_letters(first_run[0])) == sorted(read_dead_letters(prefix))
    for record_id, row in one.items():
        assert two[record_id]["words"] == row["words"] and two[record_id]["starts"] == row["starts"]
        for key in ("word_vectors", "sentence_vector"):
            reference = np.array(row[key], np.float32)
            assert_float32_close(np.array(two[record_id][key], np.float32), reference,
                                 encoder_bound(embedder.config, reference) if reference.size else 1.0, record_id)


def test_cli_help_shows_examples_and_the_pass_through(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["beam-embed", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--runner DataflowRunner" in out and "Every other option is passed to Beam" in out
    assert "--precision" in out and "--format {parquet,tfrecord,jsonl}" in out
    assert "--extra_package" in out and "--setup_file" not in out  # the project has no setup.py


def test_num_shards_spreads_the_rows_over_the_shards(tmp_path, beam_checkpoint):
    source = tmp_path / "in.txt"
    source.write_text("".join(f"Sentence {n} about the bank of the river.\n" for n in range(30)))
    prefix = tmp_path / "corpus"
    summary = embed_corpus(str(source), str(prefix), EmbedSpec(str(beam_checkpoint)), num_shards=3)
    import pyarrow.parquet as pq

    counts = [pq.read_metadata(f).num_rows for f in summary.files]
    assert len(counts) == 3 and sum(counts) == 30
    assert min(counts) > 0, counts  # Beam's WriteToParquet put a bundle's rows, here all, into one shard
    assert all(records.read_metadata(f) == records.read_metadata(summary.files[0]) for f in summary.files)


@pytest.mark.parametrize("workers", [[], ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]],
                         ids=["in-process", "two-workers"])
def test_every_line_of_a_mixed_folder_is_read_as_its_own_format_and_counted_once(tmp_path, beam_checkpoint,
                                                                                 workers):
    corpus = tmp_path / "inputs"
    corpus.mkdir()
    (corpus / "a.txt").write_text('a mouse\n{"id": "x", "text": "read as prose"}\n\n')
    (corpus / "b.jsonl").write_bytes(b'{"id": "j1", "text": "a rat"}\n\n{"id": 17, "text": "a"}\n'
                                     b'{"id": "17", "text": "seventeen"}\n{"id": "j2", "text": ["x"]}\n'
                                     b'{"id": "j3", "text": "\xff"}\nnot json\n   \n')
    prefix = tmp_path / "out"
    embed_corpus(str(corpus / "*"), str(prefix), EmbedSpec(str(beam_checkpoint)), output_format="jsonl",
                 pipeline_args=workers)
    rows = {}
    for f in glob.glob(f"{prefix}-0*.jsonl"):
        rows.update((json.loads(line)["id"], json.loads(line)) for line in open(f, encoding="utf-8"))
    dead = read_dead_letters(prefix)
    text = str(corpus / "a.txt")
    assert sorted(rows) == sorted([f"{text}:1", f"{text}:2", f"{text}:3", "j1", "17"])
    assert rows[f"{text}:2"]["text"] == '{"id": "x", "text": "read as prose"}'  # a .txt line is text
    assert rows["17"]["text"] == "seventeen"  # the quoted id; the number 17 is a dead letter
    jsonl = str(corpus / "b.jsonl")
    assert set(dead) == {f"{jsonl}:2", f"{jsonl}:3", "j2", f"{jsonl}:6", f"{jsonl}:7", f"{jsonl}:8"}
    assert len(rows) + len(dead) == 3 + 8  # every input line exactly once
