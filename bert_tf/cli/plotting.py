"""PNG figures: the similarity heatmap and a word's senses in 2-D (PCA).

Each figure is rendered into a temporary beside its target and renamed over it
when complete, so an existing image is never left half-written.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from bert_tf.files.figures import check_png_path, pyplot, save_png


def save_heatmap(labels: Sequence[str], matrix: np.ndarray, path: str | os.PathLike, *, title: str = "") -> None:
    """Saves a similarity matrix as an annotated heatmap PNG (replacing `path` only once it is complete).

    Raises:
        ValueError: `path` does not end in `.png`.
        FileNotFoundError: its folder does not exist.
        bert_tf.files.output.OutputError: it cannot be written (names `path` and the reason).
    """
    path = check_png_path(path)
    plt = pyplot()
    n = len(labels)
    size = 1.6 + 0.9 * n
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=100)
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(np.min(matrix))), vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                    color="white" if matrix[i, j] < 0.6 else "black", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        save_png(fig, path)
    finally:
        plt.close(fig)


def save_projection(word: str, vectors: np.ndarray, labels: Sequence[str], path: str | os.PathLike) -> np.ndarray:
    """Projects a word's contextual vectors to 2-D with PCA and saves a labelled scatter plot.

    Returns:
        The `[n, 2]` projected points.

    Raises:
        ValueError: fewer than two vectors (nothing to project), or `path` does not end in `.png`.
        FileNotFoundError: the folder of `path` does not exist.
        bert_tf.files.output.OutputError: `path` cannot be written (names it and the reason).
    """
    from sklearn.decomposition import PCA

    from bert_tf.errors import InvalidValue

    path = check_png_path(path)
    if len(vectors) < 2:
        raise InvalidValue(f"need the word {word!r} in at least two sentences to plot, found {len(vectors)}")
    pca = PCA(n_components=2)
    points = pca.fit_transform(np.asarray(vectors, np.float64))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    ax.scatter(points[:, 0], points[:, 1], s=40, c=np.arange(len(points)), cmap="tab10")
    for (x, y), label in zip(points, labels):
        ax.annotate(label if len(label) <= 48 else label[:45] + "...", (x, y), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.set_title(f"'{word}' in {len(points)} contexts (PCA of its contextual vectors)")
    fig.tight_layout()
    try:
        save_png(fig, path)
    finally:
        plt.close(fig)
    return points
