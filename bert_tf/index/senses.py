"""A word's senses: its occurrences' vectors clustered, the number of clusters chosen from the data.

`cluster_senses` centres a word's occurrences on their own mean (what all of them
share says nothing about which sense each is), scales them to unit length (cosine
geometry) and runs k-means for every k from 2 to `max_senses`. It keeps the
fewest senses whose silhouette is within `SILHOUETTE_TOLERANCE` of the best: a
finer split must be clearly better to be believed. A word used in one sense has
no convincing split: when even the best silhouette stays under
`ONE_SENSE_SILHOUETTE`, it gets one cluster. `plot_senses`
draws the clusters in 2-D with a few central examples written beside them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.files.figures import check_png_path, pyplot, save_png
from bert_tf.files.output import check_output

#: The best silhouette a word's clustering must reach to be split into senses at all; below it, the
#: word is taken to have one sense (chosen on the labelled sense set, bench/senses_eval.py).
ONE_SENSE_SILHOUETTE = 0.1
#: How much lower a smaller number of senses may score than the best and still be chosen
#: (measured on the labelled sense set, bench/senses_eval.py).
SILHOUETTE_TOLERANCE = 0.05
#: The fewest occurrences `cluster_senses` chooses a number of senses for (a silhouette needs k < n).
MIN_OCCURRENCES = 3
#: Above this many occurrences the number of senses is chosen on a sample of this size (the
#: silhouette is quadratic in the occurrences), and k-means may use several threads.
SMALL_PROBLEM = 2000


@dataclasses.dataclass(frozen=True)
class SenseClusters:
    """The senses found among a word's occurrences.

    Attributes:
        labels: `[n]` int, the sense of each occurrence, 0..n_senses-1, numbered by size (0 the largest).
        n_senses: how many senses.
        chosen_by: "given" (the caller's `n_senses`), "silhouette" (chosen by silhouette) or
            "one-sense" (no split scored `ONE_SENSE_SILHOUETTE`).
        scores: the silhouette of each k tried, `{k: score}` (empty when `n_senses` was given).
        similarity: `[n]` cosine of each occurrence to its sense's centroid (how central it is).
    """

    labels: np.ndarray
    n_senses: int
    chosen_by: str
    scores: dict[int, float]
    similarity: np.ndarray

    @property
    def sizes(self) -> list[int]:
        """How many occurrences each sense has, in sense order (largest first)."""
        return np.bincount(self.labels, minlength=self.n_senses).tolist()

    def central(self, k: int = 3) -> list[np.ndarray]:
        """Per sense, the indices of its `k` most central occurrences, most central first."""
        out = []
        for sense in range(self.n_senses):
            members = np.flatnonzero(self.labels == sense)
            # stable sort on the negated score: ties keep input order, so the result is deterministic
            order = np.argsort(-self.similarity[members], kind="stable")
            out.append(members[order[:k]])
        return out


def _check_vectors(vectors) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidValue(f"cluster_senses takes a [n, dim] array of vectors; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidValue("the vectors hold NaN or infinity; they cannot be clustered")
    return x


def prepare(vectors) -> np.ndarray:
    """The geometry senses are found in: the occurrences minus their mean, as unit rows (float64)."""
    x = _check_vectors(vectors)
    return _unit_rows(x - x.mean(axis=0))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    from threadpoolctl import threadpool_limits

    # a word's few hundred occurrences cluster in milliseconds on one thread; OpenMP's threads
    # waiting for each other cost more than that, many times over on a busy machine
    threads = 1 if len(x) <= SMALL_PROBLEM else None
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        # duplicate occurrences can leave fewer distinct clusters than asked: the caller checks
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumbers clusters by size, largest first (ties: the one seen first), so numbering is stable."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = values[np.lexsort((first, -counts))]
    mapping = np.empty(values.max() + 1, np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[labels]


def cluster_senses(vectors, *, n_senses: int | None = None, max_senses: int = 8, seed: int = 0) -> SenseClusters:
    """Clusters a word's occurrence vectors into senses.

    Args:
        vectors: `[n, dim]`, one row per occurrence (normalised for scoring or raw; see
            `prepare` for what is done to them here).
        n_senses: the number of senses to find; None chooses it by silhouette (see the module).
        max_senses: the most senses considered when choosing.
        seed: k-means's seed; the same seed and vectors give the same clusters.

    Returns:
        A `SenseClusters`.

    Raises:
        ValueError: fewer than `MIN_OCCURRENCES` occurrences to choose from (or fewer than
            `n_senses`), a bad `n_senses` / `max_senses`, or vectors that are not finite.

    Example:
        >>> clusters = cluster_senses(vectors)
        >>> clusters.n_senses, clusters.sizes, clusters.central(3)
    """
    from sklearn.metrics import silhouette_score

    x = prepare(vectors)
    n = len(x)
    if n_senses is not None:
        if not isinstance(n_senses, (int, np.integer)) or isinstance(n_senses, bool) or n_senses < 1:
            raise InvalidValue(f"n_senses must be a positive integer; got {n_senses!r}")
        if n < n_senses:
            raise InvalidValue(f"cannot split {n} occurrence(s) into {n_senses} senses; "
                             "give fewer senses or a corpus with more occurrences of the word")
        labels = np.zeros(n, np.int64) if n_senses == 1 else _kmeans(x, n_senses, seed)
        return _finish(x, labels, "given", {})
    if not isinstance(max_senses, (int, np.integer)) or isinstance(max_senses, bool) or max_senses < 2:
        raise InvalidValue(f"max_senses must be an integer of at least 2; got {max_senses!r}")
    if n < MIN_OCCURRENCES:
        raise InvalidValue(f"need at least {MIN_OCCURRENCES} occurrences to tell a word's senses apart, found {n}; "
                         "index a larger corpus, or give the number of senses")
    # on a large word the number of senses is chosen on a sample, then everything is clustered once
    sample = x if n <= SMALL_PROBLEM else x[np.random.default_rng(seed).choice(n, SMALL_PROBLEM, replace=False)]
    scores, candidates = {}, {}
    for k in range(2, min(max_senses, len(sample) - 1) + 1):
        labels = _kmeans(sample, k, seed)
        if len(np.unique(labels)) < 2:  # identical vectors: k-means found one cluster only
            continue
        candidates[k] = labels
        scores[k] = float(silhouette_score(sample, labels, metric="cosine"))
    if not scores or max(scores.values()) < ONE_SENSE_SILHOUETTE:
        return _finish(x, np.zeros(n, np.int64), "one-sense", scores)
    best = min(k for k in scores if scores[k] >= max(scores.values()) - SILHOUETTE_TOLERANCE)
    return _finish(x, candidates[best] if sample is x else _kmeans(x, best, seed), "silhouette", scores)


def _finish(x: np.ndarray, labels: np.ndarray, chosen_by: str, scores: dict[int, float]) -> SenseClusters:
    labels = _by_size(labels)
    n_senses = int(labels.max()) + 1
    centroids = np.stack([x[labels == s].mean(axis=0) for s in range(n_senses)])
    centroids = _unit_rows(centroids)
    similarity = np.einsum("ij,ij->i", x, centroids[labels])
    # A sense of one occurrence is its own centre, whatever centring made of its vector (one occurrence
    # in all centres to zero): it scores 1, with --n-senses 1 as in any other clustering.
    sizes = np.bincount(labels, minlength=n_senses)
    similarity[sizes[labels] == 1] = 1.0
    return SenseClusters(labels, n_senses, chosen_by, scores, similarity)


# ---------------------------------------------------------------------- the figure


def snippet(sentence: str, start: int, end: int, *, width: int = 28) -> str:
    """The word at `sentence[start:end]` with about `width` characters either side, on one line.

    Example:
        >>> snippet("We had a picnic on the grassy bank of the river.", 30, 34, width=10)
        '… grassy bank of the…'
    """
    left = sentence[max(0, start - width):start]
    right = sentence[end:end + width]
    if start > width and " " in left:
        left = left[left.index(" "):]  # cut at a word boundary, not inside a word
    if end + width < len(sentence) and " " in right:
        right = right[:right.rindex(" ")]
    text = (("…" if start > width else "") + left + sentence[start:end] + right
            + ("…" if end + width < len(sentence) else ""))
    return " ".join(text.split())


def find_word(sentence: str, word: str) -> tuple[int, int]:
    """The character span of the first whole-word, case-insensitive occurrence of `word` (or (0, 0))."""
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", sentence, flags=re.IGNORECASE)
    return (match.start(), match.end()) if match else (0, 0)


def plot_senses(path: str | os.PathLike, vectors, clusters: SenseClusters, sentences: Sequence[str], *, word: str,
                spans: Sequence[tuple[int, int]] | None = None, examples: int = 3, force: bool = False,
                total: int | None = None) -> np.ndarray:
    """Saves a PNG of a word's occurrences in 2-D (PCA), coloured by sense, with central examples labelled.

    Args:
        path: where the PNG goes (written beside it and renamed into place when complete).
        vectors: `[n, dim]`, the vectors that were clustered.
        clusters: `cluster_senses`'s result for them.
        sentences: the sentence of each occurrence.
        word: the word, for the title and the snippets.
        spans: `(start, end)` of the word in each sentence; None finds it by searching the sentence.
        examples: how many of each sense's most central occurrences are labelled.
        force: replace an existing file.
        total: the word's occurrences in all, when `vectors` are a sample of them (the title says so).

    Returns:
        The `[n, 2]` projected points.

    Raises:
        ValueError: the path does not end in .png, or vectors, clusters and sentences disagree in number.
        FileExistsError: `path` exists and `force` is False.
        bert_tf.files.output.OutputError: it cannot be written (names it and why).
    """
    path = check_png_path(path, option="--plot")
    check_output(path, force=force, option="--plot")
    x = prepare(vectors)
    if not len(x) == len(clusters.labels) == len(sentences) or (spans is not None and len(spans) != len(x)):
        raise ValueError(f"plot_senses needs one vector, label and sentence per occurrence; got {len(x)} vectors, "
                         f"{len(clusters.labels)} labels and {len(sentences)} sentences")
    fig, points = senses_figure(x, clusters, sentences, word=word, spans=spans, examples=examples, total=total)
    plt = pyplot()
    try:
        save_png(fig, path)
    finally:
        plt.close(fig)
    return points


def senses_figure(x: np.ndarray, clusters: SenseClusters, sentences: Sequence[str], *, word: str,
                  spans: Sequence[tuple[int, int]] | None = None, examples: int = 3, total: int | None = None):
    """`plot_senses`' figure: the points by sense on the left, each sense's central examples listed on the right.

    The examples are ringed on the plot and written out, in their sense's colour, in a column
    beside it, one line each: central examples sit close together by definition, so snippets
    drawn at the points would cover one another.

    Returns:
        `(figure, points)`: the matplotlib figure (the caller saves and closes it) and the `[n, 2]` points.
    """
    from sklearn.decomposition import PCA

    if len(x) >= 2:
        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(x)
        ratio = pca.explained_variance_ratio_
    else:
        points, ratio = np.zeros((len(x), 2)), np.zeros(2)
    plt = pyplot()
    central = clusters.central(examples)
    listed = sum(len(c) for c in central) + clusters.n_senses + 2
    height = max(6.0, 1.0 + 0.2 * listed)  # inches: a line of the list is 0.2 inch
    fig = plt.figure(figsize=(13, height), dpi=100)
    grid = fig.add_gridspec(1, 2, width_ratios=(5, 3), wspace=0.03)
    ax, side = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    colours = plt.get_cmap("tab10")
    for sense, size in enumerate(clusters.sizes):
        members = clusters.labels == sense
        ax.scatter(points[members, 0], points[members, 1], s=36, color=colours(sense % 10), alpha=0.8,
                   label=f"sense {sense + 1} ({size})")
    side.set_axis_off()
    y, step = 1.0, 0.2 / (0.86 * height)  # the axes span 86% of the figure's height
    side.text(0.0, y, "each sense's most central examples (ringed)", fontsize=9, va="top", transform=side.transAxes)
    y -= 1.5 * step
    for sense, rows in enumerate(central):
        colour = colours(sense % 10)
        side.text(0.0, y, f"sense {sense + 1} ({clusters.sizes[sense]:,})", color=colour, fontsize=9,
                  fontweight="bold", va="top", transform=side.transAxes)
        y -= step
        for i in rows:
            start, end = spans[i] if spans is not None else find_word(sentences[i], word)
            ax.scatter(points[i, 0], points[i, 1], s=90, facecolors="none", edgecolors=colour, linewidths=1.2)
            side.text(0.02, y, snippet(sentences[i], start, end), color=colour, fontsize=8, va="top",
                      transform=side.transAxes, gid="bert_tf_example")
            y -= step
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    shown = f"{len(x):,} occurrences" if total is None or total == len(x) else \
        f"{len(x):,} of {total:,} occurrences clustered"
    ax.set_title(f"'{word}': {shown} in {clusters.n_senses} sense(s) (PCA of the contextual vectors)")
    ax.legend(loc="best", fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.94, bottom=0.08)  # 86% of the height
    return fig, points


def plot_shares(path: str | os.PathLike, report, *, force: bool = False) -> None:
    """Saves a PNG of each group's shares of a word's senses (`OccurrenceIndex.senses(by=...)`) as stacked bars.

    Each sense is named in the legend by its most central occurrence (a few words either
    side), the same example `senses` prints first, so the colours can be read without the text.

    Raises:
        ValueError: the path does not end in .png, or the report has no groups.
        FileExistsError: `path` exists and `force` is False.
        bert_tf.files.output.OutputError: it cannot be written.
    """
    path = check_png_path(path, option="--plot")
    check_output(path, force=force, option="--plot")
    if not report.groups:
        raise InvalidValue(f"no occurrence of {report.word!r} is in a text with a {report.by}: nothing to plot")
    groups = report.groups
    shares = np.array([g.shares for g in groups])  # [groups, senses]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.8 * len(groups)), 5.5), dpi=100)
    colours = plt.get_cmap("tab10")
    bottom = np.zeros(len(groups))
    x = np.arange(len(groups))
    for n, sense in enumerate(report.senses):
        central = sense.examples[0] if sense.examples else None
        label = f"sense {n + 1}" + (f": {snippet(central.text, central.start, central.end, width=18)}"
                                    if central is not None else "")
        ax.bar(x, shares[:, n], bottom=bottom, color=colours(n % 10), label=label, width=0.7)
        bottom += shares[:, n]
    ax.set_xticks(x, [f"{g.group}\n({g.occurrences})" for g in groups], fontsize=8,
                  rotation=0 if len(groups) <= 8 else 45)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the group's occurrences")
    ax.set_xlabel(report.by)
    ax.set_title(f"'{report.word}': senses by {report.by}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, ncol=1, frameon=False)
    fig.tight_layout()
    try:
        save_png(fig, path, bbox_inches="tight")
    finally:
        plt.close(fig)
