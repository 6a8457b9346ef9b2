"""Sense clustering (`bert_tf.index.senses`) and the labelled sense set it is measured on."""

from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from tests.index.conftest import SENSE_SET, load_sense_set


# ---------------------------------------------------------------------- the labelled set


def test_sense_set_is_well_formed(sense_set):
    assert len(sense_set.vocabulary) >= 24
    per_word = collections.defaultdict(collections.Counter)
    for word, sense in zip(sense_set.words, sense_set.senses):
        per_word[word][sense] += 1
    for word, senses in per_word.items():
        assert len(senses) >= 2, word
        assert min(senses.values()) >= 5, (word, senses)
    assert len(set(sense_set.sentences)) == len(sense_set), "a sentence is listed twice"
    for word, sentence in zip(sense_set.words, sense_set.sentences):
        assert len(re.findall(rf"\b{re.escape(word)}\b", sentence, flags=re.IGNORECASE)) == 1, (word, sentence)


def test_load_sense_set_names_a_bad_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("word\tsense\tsentence\nbank\triver\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        load_sense_set(bad)
    assert len(load_sense_set(SENSE_SET)) > 0


def test_sense_set_words_are_single_pieces(sense_vectors, sense_set):
    # embed_sense_set refuses a row whose word is not exactly one whole-word occurrence
    assert sense_vectors.vectors.shape == (len(sense_set), 384)
    for word, sentence, start, end in zip(sense_set.words, sense_set.sentences, sense_vectors.starts,
                                          sense_vectors.ends):
        assert sentence[start:end].lower() == word


# ---------------------------------------------------------------------- clustering

from sklearn.metrics import adjusted_rand_score  # noqa: E402

from bert_tf.files.output import OutputError  # noqa: E402
from bert_tf.index.scoring import DEFAULT_SCORING, VectorStats, normalize  # noqa: E402
from bert_tf.index.senses import (MIN_OCCURRENCES, SenseClusters, cluster_senses, find_word,  # noqa: E402
                                  plot_senses, prepare, snippet)


def blobs(sizes, *, dim=32, spread=0.15, seed=0):
    """Well-separated clusters: points around random orthogonal directions, plus a shared offset."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((dim, len(sizes))))[0].T * 3.0
    offset = rng.standard_normal(dim) * 5.0  # what every occurrence of a word shares
    points = [offset + d + spread * rng.standard_normal((n, dim)) for d, n in zip(directions, sizes)]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return np.concatenate(points).astype(np.float32), labels


@pytest.mark.parametrize("sizes", [(12, 9), (20, 14, 8), (6, 6, 6, 6, 6)])
def test_well_separated_clusters_are_recovered_with_their_number(sizes):
    vectors, labels = blobs(sizes)
    clusters = cluster_senses(vectors)
    assert clusters.chosen_by == "silhouette"
    assert clusters.n_senses == len(sizes)
    assert adjusted_rand_score(labels, clusters.labels) == 1.0
    assert clusters.sizes == sorted(sizes, reverse=True)  # numbered by size, largest first
    assert set(clusters.scores) == set(range(2, min(8, sum(sizes) - 1) + 1))


def test_a_large_word_chooses_its_senses_on_a_sample_and_clusters_all(monkeypatch):
    from bert_tf.index import senses

    monkeypatch.setattr(senses, "SMALL_PROBLEM", 20)
    vectors, labels = blobs((30, 25, 12), seed=5)
    clusters = cluster_senses(vectors)
    assert clusters.n_senses == 3 and len(clusters.labels) == len(vectors)
    assert adjusted_rand_score(labels, clusters.labels) == 1.0
    assert sorted(clusters.scores) == list(range(2, 9))  # every k up to max_senses was tried on the sample


def test_one_blob_is_one_sense():
    rng = np.random.default_rng(1)
    vectors = 4.0 + rng.standard_normal((60, 32))  # one isotropic cloud: no split is convincing
    clusters = cluster_senses(vectors)
    assert (clusters.n_senses, clusters.chosen_by) == (1, "one-sense")
    assert (clusters.labels == 0).all() and clusters.scores


def test_the_number_of_senses_can_be_given_and_the_seed_decides():
    vectors, labels = blobs((15, 10))
    given = cluster_senses(vectors, n_senses=3)
    assert (given.n_senses, given.chosen_by, given.scores) == (3, "given", {})
    one = cluster_senses(vectors, n_senses=1)
    assert one.n_senses == 1 and (one.labels == 0).all()
    rng = np.random.default_rng(2)
    noisy = rng.standard_normal((40, 16))
    a, b = cluster_senses(noisy, n_senses=4, seed=7), cluster_senses(noisy, n_senses=4, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_central_examples_are_the_closest_to_their_centroid():
    vectors, _ = blobs((10, 7), spread=0.4, seed=3)
    clusters = cluster_senses(vectors)
    x = prepare(vectors)
    central = clusters.central(3)
    assert [len(c) for c in central] == [3, 3]
    for sense, members in enumerate(central):
        inside = np.flatnonzero(clusters.labels == sense)
        centroid = x[inside].mean(axis=0)
        similarity = x[inside] @ (centroid / np.linalg.norm(centroid))
        np.testing.assert_array_equal(members, inside[np.argsort(-similarity, kind="stable")[:3]])
    assert [len(c) for c in clusters.central(50)] == clusters.sizes


def test_cluster_senses_refuses_what_it_cannot_cluster():
    with pytest.raises(ValueError, match=f"at least {MIN_OCCURRENCES} occurrences"):
        cluster_senses(np.ones((MIN_OCCURRENCES - 1, 4)))
    with pytest.raises(ValueError, match="cannot split 3 occurrence"):
        cluster_senses(np.eye(3), n_senses=4)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_senses must be a positive integer"):
            cluster_senses(np.eye(3), n_senses=bad)
    with pytest.raises(ValueError, match="max_senses"):
        cluster_senses(np.eye(5), max_senses=1)
    with pytest.raises(ValueError, match="NaN"):
        cluster_senses(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match=r"\[n, dim\]"):
        cluster_senses(np.ones(5))
    identical = cluster_senses(np.ones((5, 3)))  # nothing to split: one sense, never an error or NaN
    assert identical.n_senses == 1 and np.isfinite(identical.similarity).all()


@pytest.mark.slow
def test_senses_of_the_labelled_set_with_the_real_model(sense_set, sense_vectors):
    # Measured with bench/senses_eval.py (all-MiniLM-L6-v2, default options, scoring standardize
    # with the statistics of every word occurrence): mean ARI 0.722, the true number of senses
    # chosen for 23 of 28 words. The floors leave room for k-means to settle a few points
    # differently where another CPU rounds the vectors differently: 0.6 is about three of the
    # 28 words falling from a perfect split to none.
    stats = VectorStats().update(sense_vectors.background)
    unit = normalize(sense_vectors.vectors, stats, DEFAULT_SCORING)
    aris, exact = [], []
    for word in sense_set.vocabulary:
        rows, labels = sense_set.rows_of(word), sense_set.labels_of(word)
        clusters = cluster_senses(unit[rows])
        aris.append(adjusted_rand_score(labels, clusters.labels))
        exact.append(clusters.n_senses == labels.max() + 1)
    one_cluster = np.mean([adjusted_rand_score(sense_set.labels_of(w), np.zeros(len(sense_set.rows_of(w))))
                           for w in sense_set.vocabulary])
    assert one_cluster == 0.0
    assert np.mean(aris) >= 0.6 > one_cluster, aris
    assert np.mean(exact) >= 0.7, exact


# ---------------------------------------------------------------------- the figure


PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def _plot_inputs():
    vectors, labels = blobs((6, 5), seed=4)
    sentences = [f"Sentence {i} has the word bank\tin it." for i in range(len(vectors))]
    return vectors, cluster_senses(vectors), sentences


def test_plot_senses_writes_a_complete_png_and_refuses_to_clobber(tmp_path):
    vectors, clusters, sentences = _plot_inputs()
    path = tmp_path / "bank.png"
    points = plot_senses(path, vectors, clusters, sentences, word="bank")
    data = path.read_bytes()
    assert data.startswith(PNG_START) and data.endswith(PNG_END)
    assert points.shape == (len(vectors), 2)
    with pytest.raises(FileExistsError, match="force=True"):
        plot_senses(path, vectors, clusters, sentences, word="bank")
    assert path.read_bytes() == data
    plot_senses(path, vectors, clusters, sentences, word="bank", examples=1, force=True)
    assert path.read_bytes() != data and path.read_bytes().endswith(PNG_END)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.png"]
    with pytest.raises(ValueError, match=r"\.png"):
        plot_senses(tmp_path / "bank.jpg", vectors, clusters, sentences, word="bank")
    with pytest.raises(ValueError, match="one vector, label and sentence"):
        plot_senses(tmp_path / "other.png", vectors, clusters, sentences[:-1], word="bank")


def test_the_sense_plots_examples_are_listed_beside_it_without_overlapping():
    from bert_tf.files.figures import pyplot
    from bert_tf.index.senses import senses_figure

    vectors, clusters, sentences = _plot_inputs()
    # Central examples lie close together: drawn at their points, their snippets covered one another.
    fig, _ = senses_figure(prepare(vectors), clusters, sentences, word="bank", examples=4)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        shown = [t for t in fig.findobj(lambda a: a.get_gid() == "bert_tf_example")]
        assert len(shown) == sum(len(c) for c in clusters.central(4)) > 2
        boxes = [t.get_window_extent(renderer) for t in shown]
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        figure_box = fig.bbox
        assert all(figure_box.x0 <= b.x0 and b.y0 >= figure_box.y0 and b.y1 <= figure_box.y1 for b in boxes)
    finally:
        pyplot().close(fig)


def test_a_failed_plot_leaves_nothing(tmp_path, monkeypatch):
    import matplotlib.figure

    vectors, clusters, sentences = _plot_inputs()
    old = tmp_path / "old.png"
    plot_senses(old, vectors, clusters, sentences, word="bank")  # an earlier plot: --force may replace it
    earlier = old.read_bytes()

    def half_then_fail(self, f, **kwargs):
        f.write(PNG_START)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    with pytest.raises(OutputError, match="bank.png: No space left"):
        plot_senses(tmp_path / "bank.png", vectors, clusters, sentences, word="bank")
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]
    with pytest.raises(OutputError):
        plot_senses(old, vectors, clusters, sentences, word="bank", force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"] and old.read_bytes() == earlier


def test_force_replaces_only_a_plot_bert_tf_saved(tmp_path):
    vectors, clusters, sentences = _plot_inputs()
    users = tmp_path / "users.png"
    users.write_bytes(PNG_START + b"a figure from elsewhere" + PNG_END)
    with pytest.raises(FileExistsError, match="not a file bert_tf wrote"):
        plot_senses(users, vectors, clusters, sentences, word="bank", force=True)
    assert users.read_bytes() == PNG_START + b"a figure from elsewhere" + PNG_END


def test_snippets_show_the_word_on_one_line():
    sentence = "We had a picnic on the grassy bank of the river\tnear the old mill."
    start, end = find_word(sentence, "BANK")
    assert sentence[start:end] == "bank"
    text = snippet(sentence, start, end, width=10)
    assert text == "… grassy bank of the…" and "\t" not in snippet(sentence, start, end, width=30)
    assert find_word("Bankers bank on banks.", "bank") == (8, 12)
    assert isinstance(cluster_senses(np.eye(4), n_senses=2), SenseClusters)
