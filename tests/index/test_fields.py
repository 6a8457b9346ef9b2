"""Per-text fields in the index: `--where` selects exactly what a Python filter selects, `--by` groups, refusals."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from bert_tf.cli.main import main
from bert_tf.index import OccurrenceIndex, build_index
from bert_tf.index.fields import Condition, parse_where
from bert_tf.index.layout import file_records
from tests.index.test_index_store import corpus, tiny  # noqa: F401  (the module's tiny model)
from tests.index.test_index_store import module_dir  # noqa: F401


def fields_for(n, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f = {"source": str(rng.choice(["nyt", "wsj", "o'hare"])), "year": int(rng.integers(2000, 2006)),
             "score": float(np.round(rng.normal(), 3)), "flag": bool(rng.integers(2)),
             "date": f"{rng.integers(2000, 2003)}-{rng.integers(1, 13):02d}-15"}
        if i % 7 == 3:
            del f["year"]  # a text without the field matches no condition on it
        out.append(f)
    return out


@pytest.fixture(scope="module")
def fielded(tiny, module_dir):  # noqa: F811
    texts, fields = corpus(50), fields_for(50)
    return build_index(texts, module_dir / "fielded", embedder=tiny, fields=fields), texts, fields


#: `--where` expressions and the plain Python filter each must equal.
CASES = [
    ("source = 'nyt'", lambda f: f["source"] == "nyt"),
    ("source != 'nyt'", lambda f: f["source"] != "nyt"),
    ("year >= 2003", lambda f: "year" in f and f["year"] >= 2003),
    ("year < 2002 and source = 'wsj'", lambda f: "year" in f and f["year"] < 2002 and f["source"] == "wsj"),
    ("score > -0.25 AND score <= 1", lambda f: -0.25 < f["score"] <= 1),
    ("flag = true", lambda f: f["flag"]),
    ("flag != true and year > 2001", lambda f: not f["flag"] and "year" in f and f["year"] > 2001),
    ("source = 'o''hare'", lambda f: f["source"] == "o'hare"),
    ('source = "o\'hare"', lambda f: f["source"] == "o'hare"),
    ("date >= '2001-06' and date < '2002'", lambda f: "2001-06" <= f["date"] < "2002"),
    ("year != 2004", lambda f: "year" in f and f["year"] != 2004),
]


@pytest.mark.parametrize("where, keep", CASES, ids=[c[0] for c in CASES])
def test_where_selects_exactly_the_texts_a_python_filter_selects(fielded, where, keep):
    index, _, fields = fielded
    expected = [i for i, f in enumerate(fields) if keep(f)]
    assert 0 < len(expected) < len(fields)  # each case splits the corpus, so a wrong query shows
    assert index.texts_where(where).tolist() == expected
    # Condition.matches is the library's own Python reading of a condition: the same answer.
    conditions = parse_where(where)
    assert [i for i, f in enumerate(fields) if all(c.matches(f) for c in conditions)] == expected


def test_the_field_types_are_recorded_and_values_read_back_typed(fielded):
    index, texts, fields = fielded
    assert index.field_types == {"date": "str", "flag": "bool", "score": "float", "source": "str", "year": "int"}
    assert index.manifest["version"] == 3 and index.manifest["fields"] == index.field_types
    hits = index.search_word("bank", next(t for t in texts if "bank" in t.split()), k=50)
    for hit in hits:
        assert hit.fields == dict(sorted(fields[hit.text_id].items()))
        assert isinstance(hit.fields["flag"], bool)
        assert hit.to_json()["fields"] == hit.fields


def test_where_restricts_search_word_search_neighbors_and_senses(fielded):
    index, texts, fields = fielded
    wsj = {i for i, f in enumerate(fields) if f["source"] == "wsj"}
    query = next(t for t in texts if "bank" in t.split())
    hits = index.search_word("bank", query, k=100, where="source = 'wsj'")
    assert hits and {h.text_id for h in hits} <= wsj
    assert len(hits) == sum(t.split().count("bank") for i, t in enumerate(texts) if i in wsj)
    assert {h.text_id for h in index.search(query, k=100, where="source = 'wsj'")} == wsj
    for n in index.neighbors("bank", query, k=5, where="source = 'wsj'"):
        assert n.example.text_id in wsj
    report = index.senses("bank", n_senses=2, where="source = 'wsj'")
    assert set(index.text_ids_of(report.clustered).tolist()) <= wsj and report.occurrences == len(hits)


def test_an_unknown_field_is_refused_in_one_line_naming_the_fields(fielded):
    index, _, _ = fielded
    with pytest.raises(ValueError) as e:
        index.texts_where("sauce = 'nyt'")
    message = str(e.value)
    assert "\n" not in message
    assert message == ("--where: the index has no field 'sauce'; its fields are date (str), flag (bool), "
                       "score (float), source (str), year (int)")
    with pytest.raises(ValueError, match="--by: the index has no field 'sauce'; its fields are date"):
        index.senses("bank", by="sauce")
    with pytest.raises(ValueError, match="source holds strings: quote the value"):
        index.texts_where("source = 5")
    with pytest.raises(ValueError, match="the value 'nyt' must be quoted"):
        index.texts_where("source = nyt")
    with pytest.raises(ValueError, match="expected 'and' before 'or'"):
        index.texts_where("source = 'nyt' or year = 2001")
    with pytest.raises(ValueError, match="no text of the index .* matches --where"):
        index.search("river bank", where="source = 'guardian'")


@pytest.mark.parametrize("where", [
    "source = 'x'' OR 1=1 --'",
    "source = 'nyt'' ; DROP TABLE texts; --'",
    "source = '); DELETE FROM fields; --'",
    "source = 'nyt' UNION SELECT id FROM texts",
    "source = 'nyt'; DROP TABLE texts",
    '"source = \'nyt\' OR 1" = \'1\'',
    "year >= 2000 OR 1=1",
])
def test_injection_in_values_and_names_is_inert(fielded, where):
    index, _, fields = fielded
    try:
        selected = index.texts_where(where)
    except ValueError as e:  # refused as outside the grammar or naming no field: fine, nothing ran
        assert "\n" not in str(e)
    else:
        assert len(selected) == 0  # a value is only ever compared, never executed
    # Nothing was changed: every text and field is still there.
    assert index.db.execute("SELECT count(*) FROM texts").fetchone()[0] == len(fields)
    assert index.texts_where("source != ''").tolist() == list(range(len(fields)))


def test_parse_where_reads_the_small_grammar():
    assert parse_where("a = 'x' and b >= 2.5 and c != false and \"odd name\" <= -3") == [
        Condition("a", "=", "x"), Condition("b", ">=", 2.5), Condition("c", "!=", False),
        Condition("odd name", "<=", -3)]
    for bad in ("", "a", "a =", "a = 'x' and", "= 'x'", "a ~ 'x'", "'a' = 'x'", "a = 'x' b = 'y'"):
        with pytest.raises(ValueError, match="--where"):
            parse_where(bad)


def test_senses_by_gives_each_groups_share_of_the_senses_clustered_together(fielded):
    index, texts, fields = fielded
    report = index.senses("bank", n_senses=2, by="source")
    assert report.by == "source"
    text_of = index.text_ids_of(report.clustered)
    for group in report.groups:
        members = [i for i, t in enumerate(text_of) if fields[t]["source"] == group.group]
        assert group.counts == np.bincount(report.labels[members], minlength=2).tolist()
        assert sum(group.shares) == pytest.approx(1.0)
        for sense, examples in enumerate(group.examples):
            assert all(fields[h.text_id]["source"] == group.group for h in examples)
            assert all(report.labels[list(report.clustered).index(h.occurrence)] == sense for h in examples)
    assert [g.group for g in report.groups] == sorted({f["source"] for f in fields})
    assert sum(g.occurrences for g in report.groups) == len(report.clustered)
    by_year = index.senses("bank", n_senses=2, by="year")  # `year` is a field here: its values, not a bucket
    assert by_year.by == "year" and [g.group for g in by_year.groups] == sorted(
        {str(f["year"]) for f in fields if "year" in f})
    by_date = index.senses("bank", n_senses=2, by="date:month")
    months = {f["date"][:7] for t, f in enumerate(fields) if t in set(text_of.tolist())}
    assert {g.group for g in by_date.groups} == months


def test_an_index_without_fields_is_still_read(fielded, tmp_path):
    import shutil

    index, texts, _ = fielded
    shutil.copytree(index.directory, tmp_path / "v2")
    with sqlite3.connect(tmp_path / "v2" / "meta.sqlite") as db:
        db.executescript("DROP TABLE fields; DROP TABLE field_types;")
    path = tmp_path / "v2" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(version=2, files=file_records(tmp_path / "v2"))
    del manifest["fields"]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    old = OccurrenceIndex.open(tmp_path / "v2", embedder=index.embedder)
    assert old.field_types == {}
    assert old.search_word("bank", next(t for t in texts if "bank" in t.split()), k=1)[0].fields == {}
    with pytest.raises(ValueError, match="this index has no fields \\(build it from JSON Lines"):
        old.texts_where("source = 'nyt'")


def test_cli_builds_fields_from_json_lines_and_filters_with_where(tiny, tmp_path, capsys):  # noqa: F811
    texts, fields = corpus(12, seed=3), fields_for(12, seed=3)
    lines = [json.dumps({"id": f"doc{i}", "text": t, **f, "tags": ["a"]}) for i, (t, f) in enumerate(zip(texts, fields))]
    lines.insert(4, "not json")
    (tmp_path / "news.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ix"
    assert main(["index", "build", "--input", str(tmp_path / "news.jsonl"), "--out", str(out), "--checkpoint",
                 str(tiny.checkpoint), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped line 5: not valid JSON" in err and "'tags' holds a list or an object" in err
    assert "12 texts" in err
    query = next(t for t in texts if "bank" in t.split())
    assert main(["search", str(out), "--word", "bank", query, "-k", "50", "--json", "--where",
                 "source = 'nyt'"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    nyt = {f"doc{i}" for i, f in enumerate(fields) if f["source"] == "nyt"}
    assert rows and {r["id"] for r in rows} <= nyt and all(r["fields"]["source"] == "nyt" for r in rows)
    assert main(["search", str(out), query, "--where", "colour = 'red'"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no field 'colour'; its fields are date (str), flag (bool)" in err


def test_cli_text_input_keeps_the_file_name_and_senses_by_prints_and_plots(tiny, tmp_path, capsys):  # noqa: F811
    (tmp_path / "a.txt").write_text("\n".join(corpus(20, seed=5)) + "\n", encoding="utf-8")
    out = tmp_path / "ix"
    assert main(["index", "build", "--input", str(tmp_path / "a.txt"), "--out", str(out), "--checkpoint",
                 str(tiny.checkpoint), "--no-progress"]) == 0
    index = OccurrenceIndex.open(out)
    assert index.field_types == {"file": "str"}
    assert index.texts_where("file = 'a.txt'").tolist() == list(range(20))
    capsys.readouterr()
    assert main(["senses", str(out), "bank", "--by", "file", "--n-senses", "2", "--json",
                 "--plot", str(tmp_path / "shares.png")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    groups = [r for r in rows if "group" in r]
    assert [g["group"] for g in groups] == ["a.txt"] and sum(groups[0]["shares"]) == pytest.approx(1, abs=1e-5)
    assert (tmp_path / "shares.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lookups_of_more_rows_than_one_statement_binds_give_every_row_in_order(fielded, monkeypatch):
    """Hits, texts, fields and groups of many rows are read in chunks under SQLite's limit on bound
    parameters (`meta.CHUNK`): with chunks of 7 rows the answers equal those of one statement, row for row."""
    from bert_tf.index import meta

    index, texts, fields = fielded
    rows = np.random.default_rng(3).permutation(index.n_occurrences)  # every row, out of order
    text_rows = np.arange(index.n_texts)[::-1]
    scores = np.linspace(1.0, 0.0, len(rows))

    def lookups():
        return (index.occurrence_hits(rows, scores), index.text_hits(text_rows, scores[:len(text_rows)]),
                index.text_ids_of(rows).tolist(), index.groups_of_texts("source", index.text_ids_of(rows)),
                index.meta.fields_of(text_rows))

    whole = lookups()
    monkeypatch.setattr(meta, "CHUNK", 7)
    assert len(rows) > 10 * meta.CHUNK
    assert lookups() == whole
    hits, text_hits, text_ids, groups, by_text = whole
    assert [h.occurrence for h in hits] == rows.tolist() and [h.score for h in hits] == scores.tolist()
    assert [h.text for h in text_hits] == [texts[t] for t in text_rows]
    assert [h.text_id for h in hits] == text_ids
    assert all(hits[i].word in texts[t].split() for i, t in enumerate(text_ids))
    assert groups == {t: fields[t]["source"] for t in set(text_ids)}
    assert {t: f["source"] for t, f in by_text.items()} == {t: fields[t]["source"] for t in text_rows}
