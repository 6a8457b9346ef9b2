"""`shift`: the measures against their definitions, refusals, the CLI; on a labelled drift set with the real model,
changed words ranked above unchanged ones and `senses --by` recovering the shares."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tf.cli.main import main
from bert_tf.index import build_index
from bert_tf.index.shift import DEFAULT_MEASURE, MEASURES, jensen_shannon, word_measures
from tests.index.conftest import make_drift_set
from tests.index.test_index_store import corpus, module_dir, tiny  # noqa: F401  (the module's tiny model)

#: On the drift set of seed 0 (tests/index/conftest.py `make_drift_set`), with the default measure (prt):
#: measured Spearman 0.812 with the true change, 10 of the top 10 changed (bench/index_shift.py: mean
#: 0.831 over ten drift sets, worst 0.744; docs/index.md has every measure).
MIN_SPEARMAN = 0.75
MIN_PRECISION_AT_10 = 0.9
#: `senses --by source` (senses chosen from the data), each sense read as the labelled sense most of its
#: occurrences have: absolute error of a group's share of the word's first sense. Measured on seed 0:
#: mean 0.017, median 0, 90th percentile 0.054, max 0.267 over 56 word-groups.
MAX_MEAN_SHARE_ERROR = 0.05
MAX_90TH_PERCENTILE_SHARE_ERROR = 0.15


def unit_rows(n, d=16, seed=0, shift=0.0):
    x = np.random.default_rng(seed).normal(size=(n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_measures_are_their_definitions_computed_by_hand():
    a, b = unit_rows(30, seed=1), unit_rows(20, seed=2, shift=0.7)
    x = np.concatenate([a, b])
    in_b = np.arange(50) >= 30
    values, baselines, shares = word_measures(x, in_b, permutations=10)
    assert values["apd"] == pytest.approx(1 - np.mean(a @ b.T), abs=1e-9)  # the mean over every cross pair
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    assert values["prt"] == pytest.approx(1 - ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb)), abs=1e-9)
    assert values["jsd"] == pytest.approx(float(jensen_shannon(np.array(shares[0]), np.array(shares[1]))))
    assert sum(shares[0]) == pytest.approx(1) and sum(shares[1]) == pytest.approx(1)
    # Groups drawn from different distributions differ more than random relabellings of them.
    for m in MEASURES:
        assert values[m] > baselines[m]
    # One distribution split in two: the measures are what chance gives.
    same = unit_rows(50, seed=3)
    values, baselines, _ = word_measures(same, in_b, measures=("apd", "prt"), permutations=50)
    assert abs(values["apd"] - baselines["apd"]) < 0.05  # APD's chance level is high: the spread of the word
    assert abs(values["prt"] - baselines["prt"]) < 0.5 * baselines["prt"]


def test_jensen_shannon_is_0_for_the_same_shares_and_1_for_disjoint_ones():
    assert jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0)
    assert jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1)
    assert 0 < jensen_shannon([0.8, 0.2], [0.3, 0.7]) < 1


@pytest.fixture(scope="module")
def grouped(tiny, module_dir):  # noqa: F811
    texts = corpus(60, seed=7)
    fields = [{"source": ("nyt", "wsj", "ap")[i % 3], "date": f"{2019 + i % 2}-03-01"} for i in range(60)]
    return build_index(texts, module_dir / "grouped", embedder=tiny, fields=fields), texts, fields


def test_shift_ranks_every_word_with_enough_occurrences_in_both_groups(grouped):
    index, texts, fields = grouped
    report = index.shift("source", between=("nyt", "wsj"), min_count=3, top=2, examples=1)
    counted = {}
    for text, f in zip(texts, fields):
        for w in text.split():
            counted.setdefault(w, {"nyt": 0, "wsj": 0, "ap": 0})[f["source"]] += 1
    expected = {w for w, c in counted.items() if c["nyt"] >= 3 and c["wsj"] >= 3}
    assert {w.word for w in report.words} == expected and report.candidates == len(expected)
    assert [w.score for w in report.words] == sorted((w.score for w in report.words), reverse=True)
    for w in report.words:
        assert w.counts == (counted[w.word]["nyt"], counted[w.word]["wsj"])
        assert w.score == pytest.approx(w.measures[DEFAULT_MEASURE] - w.baselines[DEFAULT_MEASURE])
    top = report.words[0]
    assert [h.fields["source"] for h in top.examples[0]] == ["nyt"]
    assert [h.fields["source"] for h in top.examples[1]] == ["wsj"]
    assert report.words[2].examples is None  # only the top words get examples
    by_year = index.shift("year", min_count=3, words=["bank", "river"])
    assert by_year.groups == ("2019", "2020") and {w.word for w in by_year.words} <= {"bank", "river"}


def test_shift_refuses_an_unclear_grouping_in_one_line(grouped):
    index, _, _ = grouped
    with pytest.raises(ValueError, match=r"--by source makes 3 group\(s\): ap \(20 texts\), nyt \(20 texts\), "
                                         r"wsj \(20 texts\); choose two with --between A B"):
        index.shift("source")
    with pytest.raises(ValueError, match="--by source has no group 'guardian'; its groups are ap"):
        index.shift("source", between=("nyt", "guardian"))
    with pytest.raises(ValueError, match="measure must be one of apd, prt, jsd"):
        index.shift("source", between=("nyt", "wsj"), measure="cosine")
    with pytest.raises(ValueError, match="--by: the index has no field 'party'"):
        index.shift("party")


def test_cli_shift_prints_json_per_word(grouped, capsys):
    index, _, _ = grouped
    assert main(["shift", str(index.directory), "--by", "source", "--between", "wsj", "nyt", "--min-count", "3",
                 "-k", "3", "--json", "--measure", "jsd"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["measure"] == "jsd" for r in rows)
    assert set(rows[0]["counts"]) == {"wsj", "nyt"} and set(rows[0]["shares"]) == {"wsj", "nyt"}
    assert main(["shift", str(index.directory), "--by", "source"]) == 1
    assert "choose two with --between A B" in capsys.readouterr().err


# ---------------------------------------------------------------------- the labelled drift set, real model


@pytest.fixture(scope="module")
def drift(sense_set):
    return make_drift_set(sense_set, seed=0)


@pytest.fixture(scope="module")
def drift_index(minilm_embedder, drift, tmp_path_factory):
    return build_index(list(drift.texts), tmp_path_factory.mktemp("drift") / "ix", embedder=minilm_embedder,
                       fields=list(drift.fields))


@pytest.mark.slow
def test_shift_ranks_the_words_whose_sense_shares_changed_first(drift_index, drift, sense_set):
    from scipy.stats import spearmanr

    report = drift_index.shift("source", min_count=5, words=sense_set.vocabulary)
    assert report.measure == DEFAULT_MEASURE and len(report.words) == len(sense_set.vocabulary)
    truth = np.array([drift.change[w.word] for w in report.words])
    rho = spearmanr([w.score for w in report.words], truth).statistic
    precision = np.mean(truth[:10] > 0)
    print(f"shift ({DEFAULT_MEASURE}): Spearman {rho:.3f} with the true change, precision of the top 10 "
          f"{precision:.2f}")
    assert rho >= MIN_SPEARMAN and precision >= MIN_PRECISION_AT_10
    # By the year of the date field: the same two groups, the same ranking.
    by_year = drift_index.shift("year", min_count=5, words=sense_set.vocabulary)
    assert by_year.groups == ("2019", "2021")
    assert [w.word for w in by_year.words] == [w.word for w in report.words]


@pytest.mark.slow
def test_senses_by_recovers_each_groups_shares(drift_index, drift, sense_set):
    errors = []
    for word in sense_set.vocabulary:
        report = drift_index.senses(word, by="source")
        texts = drift_index.text_ids_of(report.clustered)
        first = np.array([sense_set.senses[sense_set.sentences.index(drift.texts[t])] == drift.senses[word][0]
                          for t in texts])
        labels = np.asarray(report.labels)
        # each sense found stands for the labelled sense most of its occurrences have
        is_first = [first[labels == sense].mean() > 0.5 for sense in range(report.n_senses)]
        assert [g.group for g in report.groups] == ["A", "B"]
        for group, true in zip(report.groups, drift.shares[word]):
            estimate = sum(share for share, f in zip(group.shares, is_first) if f)
            errors.append(abs(estimate - true))
    print(f"senses --by: share error mean {np.mean(errors):.3f}, 90th percentile {np.quantile(errors, 0.9):.3f}, "
          f"max {np.max(errors):.3f}")
    assert np.mean(errors) <= MAX_MEAN_SHARE_ERROR
    assert np.quantile(errors, 0.9) <= MAX_90TH_PERCENTILE_SHARE_ERROR
