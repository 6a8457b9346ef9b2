"""`bert-tf index build`, `search`, `senses`, `neighbors`: output for people and for machines, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tf.cli.main import main
from tests.index.test_index_store import write_checkpoint

WORDS = "river bank water money loan stone tree house rate fish boat".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]
CORPUS = ["river bank water", "money bank loan", "stone tree house", "fish boat river", "rate money loan bank",
          "tree bank river"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One index for the module (the commands only read it): `(index, checkpoint, corpus)`."""
    tmp = tmp_path_factory.mktemp("cli")
    checkpoint = write_checkpoint(tmp / "tiny", vocab=VOCAB)
    corpus = tmp / "corpus.txt"
    corpus.write_bytes("\n".join(CORPUS[:3]).encode() + b"\n\xff\xfe\n" + "\n".join(CORPUS[3:]).encode() + b"\n")
    out = tmp / "ix"
    code = main(["index", "build", "--input", str(corpus), "--out", str(out), "--checkpoint", str(checkpoint),
                 "--no-progress"])
    return out, checkpoint, corpus, code


def test_build_skips_undecodable_lines_and_keeps_line_numbers(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "tiny", vocab=VOCAB)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"river bank\n\xff\xfe\nfish boat\n")
    assert main(["index", "build", "--input", str(corpus), "--out", str(tmp_path / "ix"), "--checkpoint",
                 str(checkpoint), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped line 2: not valid UTF-8" in err and "2 texts, 4 occurrences" in err
    assert main(["search", str(tmp_path / "ix"), "fish boat", "--json", "-k", "2"]) == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert sorted(ids) == ["1", "3"]


@pytest.fixture
def index_dir(built):
    out, checkpoint, _, code = built
    assert code == 0
    return out, checkpoint


def test_search_word_prints_the_word_highlighted_with_its_score(index_dir, capsys):
    out, _ = index_dir
    assert main(["search", str(out), "--word", "bank", "river bank water", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "1." and lines[1].split()[0] == "2."
    by_text = {line.split(None, 2)[2].rsplit("  (id ", 1)[0]: line.rsplit("(id ", 1)[1] for line in lines}
    assert set(by_text) <= {"river [bank] water", "money [bank] loan", "rate money loan [bank]", "tree [bank] river"}
    assert {"river [bank] water": "1)", "money [bank] loan": "2)", "rate money loan [bank]": "6)",
            "tree [bank] river": "7)"}.items() >= by_text.items()
    float(lines[0].split()[1])  # the score


def test_search_json_is_one_object_per_result_with_the_documented_fields(index_dir, capsys):
    out, _ = index_dir
    assert main(["search", str(out), "--word", "bank", "money bank loan", "-k", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert {"text", "word", "start", "end", "score", "id"} <= set(row)
        assert row["text"][row["start"]:row["end"]] == "bank" and row["word"] == "bank"
    # A random tiny model barely tells contexts apart, so only the sorting is pinned, not the winner.
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    ids = {r["id"] for r in rows}
    assert "4" not in ids  # line 4 was the undecodable one: ids stay the file's line numbers
    assert main(["search", str(out), "money bank loan", "--json", "-k", "1"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["text"] == "money bank loan" and row["word"] is None


def test_neighbors_and_senses(index_dir, capsys):
    out, _ = index_dir
    assert main(["neighbors", str(out), "--word", "bank", "river bank water", "-k", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 0 < len(rows) <= 3 and all(r["word"] != "bank" for r in rows)
    assert main(["senses", str(out), "bank", "--n-senses", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("'bank': 4 occurrences, 2 senses") and text.count("sense ") == 2


@pytest.mark.parametrize("argv, message", [
    (["search", "{missing}", "x"], "no index at"),
    (["search", "{tmp}", "x"], "is not a complete index"),
    (["search", "{index}", "--word", "loan", "river bank water"], "'loan' is not in the query sentence"),
    (["search", "{index}", "--word", "boat", "river bank water boat", "--checkpoint", "{other}"], "fingerprint"),
    (["senses", "{index}", "boat house"], "is 2 words to the model"),
    (["index", "build", "--parquet", "{tmp}", "--out", "{tmp}/x", "--combine", "mean"], "apply to --input only"),
    (["senses", "{index}", "water", "--n-senses", "0"], "n_senses"),
])
def test_errors_are_one_line(index_dir, tmp_path, capsys, argv, message):
    out, _ = index_dir
    other = write_checkpoint(tmp_path / "other", seed=3, vocab=VOCAB)
    (tmp_path / "empty").mkdir()
    argv = [a.format(missing=tmp_path / "nope", tmp=tmp_path / "empty", index=out, other=other) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bert-tf: error: ") and message in err[0], err


def test_build_refuses_an_existing_index_before_loading_the_model(index_dir, built, capsys):
    out, _ = index_dir
    before = (out / "manifest.json").read_bytes()
    assert main(["index", "build", "--input", str(built[2]), "--out", str(out),
                 "--checkpoint", str(out.parent / "no-such-checkpoint")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before


def test_senses_plot_and_projector_files(index_dir, tmp_path, capsys):
    out, _ = index_dir
    plot, projector = tmp_path / "bank.png", tmp_path / "projector"
    assert main(["senses", str(out), "bank", "--n-senses", "2", "--plot", str(plot), "--projector",
                 str(projector)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metadata = next(projector.glob("**/*metadata*.tsv")).read_text(encoding="utf-8").splitlines()
    assert metadata[0] == "word\tsense\tsentence" and len(metadata) == 1 + 4
    assert all(row.startswith("bank\t") for row in metadata[1:])
    before = plot.read_bytes()
    assert main(["senses", str(out), "bank", "--plot", str(plot)]) == 1  # no --force: the plot is kept
    assert "already exists" in capsys.readouterr().err and plot.read_bytes() == before
    assert main(["search", str(out), "--word", "bank", "river bank water", "-k", "2", "--projector",
                 str(tmp_path / "p2")]) == 0
    rows = next((tmp_path / "p2").glob("**/*metadata*.tsv")).read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 2 and "rank 1" in rows[1]


@pytest.mark.parametrize("argv, said", [
    (["--word", "", "river bank water"], "word is empty"),
    (["--word", "bank", "   "], "sentence is empty"),
    (["   "], "sentence is empty"),
    (["--occurrence", "2", "river bank"], "give --word too"),
    (["--word", "bank", "--occurrence", "3", "bank river bank"], "occurrence must be from 1 to 2"),
    (["--word", "bank", "--occurrence", "1", "[[bank]] river bank"], "not both"),
    (["--word", "bank", "the [[river]] bank"], "not an occurrence of 'bank'"),
])
def test_empty_and_impossible_queries_are_one_line(index_dir, capsys, argv, said):
    out, _ = index_dir
    assert main(["search", str(out), *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and said in captured.err and captured.err.count("\n") == 1, captured.err


def test_the_occurrence_used_is_said_and_can_be_chosen(index_dir, capsys):
    from bert_tf.index.occurrence_index import OccurrenceIndex

    out, _ = index_dir
    index = OccurrenceIndex.open(out)
    sentence = "money bank loan river bank water"
    first, second = (index.search_word("bank", sentence, k=4, occurrence=n) for n in (1, 2))
    assert [h.score for h in first] != [h.score for h in second]  # the two contexts give other rankings
    marked = index.search_word("bank", "money bank loan river [[bank]] water", k=4)
    assert [(h.id, h.score) for h in marked] == [(h.id, h.score) for h in second]
    assert main(["search", str(out), "--word", "bank", sentence, "-k", "1"]) == 0
    err = capsys.readouterr().err
    assert "occurrence 1 of 2" in err and "--occurrence N" in err and "[[bank]]" in err
    assert main(["search", str(out), "--word", "bank", "--occurrence", "2", sentence, "-k", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert "occurrence 1 of 2" not in captured.err
    assert json.loads(captured.out)["id"] == second[0].id
    assert main(["neighbors", str(out), "--word", "bank", "--occurrence", "2", sentence, "-k", "1"]) == 0


def test_an_index_of_blank_texts_has_no_texts_to_search(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "tiny", vocab=VOCAB)
    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n  \n\n")
    assert main(["index", "build", "--input", str(corpus), "--out", str(tmp_path / "ix"), "--checkpoint",
                 str(checkpoint), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", str(tmp_path / "ix"), "river bank"]) == 1
    err = capsys.readouterr().err
    assert "no texts to search" in err and err.count("\n") == 1


def test_a_hit_in_a_long_text_prints_a_window_around_its_word(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "tiny", vocab=VOCAB)
    long_text = "river " * 400 + "bank" + " water" * 400
    corpus = tmp_path / "long.txt"
    corpus.write_text(long_text + "\nmoney bank loan\n")
    ix = str(tmp_path / "ix")
    assert main(["index", "build", "--input", str(corpus), "--out", ix, "--checkpoint", str(checkpoint),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", ix, "--word", "bank", "river bank water", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    window = next(line for line in lines if "river river" in line)
    assert "…" + ("river " * 14)[-80:] + "[bank]" + (" water" * 14)[:80] + "…" in window
    assert len(window) < 250
    assert main(["search", ix, "--word", "bank", "river bank water", "-k", "2", "--full"]) == 0
    assert any(long_text.replace("bank", "[bank]", 1) in line for line in capsys.readouterr().out.splitlines())
    assert main(["search", ix, "--word", "bank", "river bank water", "-k", "2", "--json"]) == 0
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert long_text in texts
    assert main(["search", ix, "river water", "-k", "2"]) == 0  # a text hit: its beginning
    out = capsys.readouterr().out
    assert ("river " * 27)[:160] + "…" in out and len(out) < 300


def test_senses_are_numbered_from_one_everywhere_and_a_lone_occurrence_is_its_own_centre(index_dir, capsys):
    from bert_tf.index.senses import cluster_senses

    out, _ = index_dir
    assert main(["senses", str(out), "bank", "--n-senses", "2", "--json"]) == 0
    numbers = [json.loads(line)["sense"] for line in capsys.readouterr().out.splitlines()]
    assert numbers == [1, 2]
    assert main(["senses", str(out), "bank", "--n-senses", "2"]) == 0
    text = capsys.readouterr().out
    assert "sense 1:" in text and "sense 2:" in text and "sense 0" not in text
    rng = np.random.default_rng(0)
    alone = cluster_senses(rng.normal(size=(1, 8)), n_senses=1)
    assert alone.similarity.tolist() == [1.0]
    apart = cluster_senses(np.concatenate([rng.normal(size=(5, 8)) + 5, rng.normal(size=(1, 8)) - 5]), n_senses=2)
    assert apart.similarity[apart.labels == 1].tolist() == [pytest.approx(1.0)]


def test_index_build_reads_stdin_as_embed_does(tmp_path, capsys, monkeypatch):
    import io
    import sys

    checkpoint = write_checkpoint(tmp_path / "tiny", vocab=VOCAB)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"river bank water\n\xff\nmoney bank loan\n")))
    assert main(["index", "build", "--input", "-", "--out", str(tmp_path / "ix"), "--checkpoint", str(checkpoint),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped line 2: not valid UTF-8" in err and "2 texts, 6 occurrences" in err
    assert main(["search", str(tmp_path / "ix"), "money bank loan", "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "3"
    assert main(["index", "build", "--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "iy"),
                 "--checkpoint", str(checkpoint)]) == 1
    assert "cannot read" in capsys.readouterr().err
