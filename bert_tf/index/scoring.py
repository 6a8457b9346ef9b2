"""Similarity scores that mean something: a corpus's vector statistics, and the normalisation they allow.

Raw BERT word vectors share a large common component, so every cosine between them
is high and small differences carry the meaning. Subtracting the corpus mean
("center"), and optionally dividing each dimension by its spread ("standardize"),
removes it. `normalize` returns unit rows either way, so a score is a dot product
and the nearest-neighbour search needs no other arithmetic.

`VectorStats` gathers the mean and spread in one streaming pass (Chan et al.'s
pairwise update, in float64), so an index can keep them while it is built,
and two partial builds can be merged.
"""

from __future__ import annotations

import numpy as np

from bert_tf.embed.options import check_choice
from bert_tf.errors import InvalidValue

#: How scores are computed: cosine of the raw vectors, of the vectors minus the corpus mean, or of
#: the vectors minus the mean divided per dimension by the corpus's standard deviation.
SCORING_MODES = ("none", "center", "standardize")

#: The default of `normalize` and of the index's queries, chosen by measurement on the labelled
#: sense set (bench/senses_eval.py).
DEFAULT_SCORING = "standardize"


class VectorStats:
    """The count, mean and per-dimension standard deviation of a stream of vectors.

    Example:
        >>> stats = VectorStats()
        >>> for batch in batches:
        ...     stats.update(batch)
        >>> stats.mean.shape, stats.std.shape
        ((384,), (384,))
    """

    def __init__(self, dim: int | None = None):
        """Args:
            dim: the vectors' width; None takes it from the first `update`.
        """
        self.count = 0
        self._mean = None if dim is None else np.zeros(dim, np.float64)
        self._m2 = None if dim is None else np.zeros(dim, np.float64)  # sum of squared deviations

    @property
    def dim(self) -> int | None:
        return None if self._mean is None else len(self._mean)

    def update(self, vectors) -> "VectorStats":
        """Adds a batch of vectors `[n, dim]` (any float dtype); returns self.

        Raises:
            ValueError: not 2-D, a width other than the earlier batches', or NaN / infinity.
        """
        x = np.asarray(vectors)
        if x.ndim != 2:
            raise ValueError(f"VectorStats.update takes a [n, dim] array; got shape {x.shape}")
        if len(x) == 0:
            return self
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise InvalidValue("the vectors hold NaN or infinity; they cannot be summarised")
        mean = x.mean(axis=0)
        m2 = np.square(x - mean).sum(axis=0)
        return self._merge(len(x), mean, m2)

    def merge(self, other: "VectorStats") -> "VectorStats":
        """Adds everything `other` has seen (the statistics of the concatenation); returns self."""
        if other.count == 0:
            return self
        return self._merge(other.count, other._mean, other._m2)

    def _merge(self, n: int, mean: np.ndarray, m2: np.ndarray) -> "VectorStats":
        if self._mean is None:
            self._mean, self._m2 = np.zeros_like(mean), np.zeros_like(m2)
        if len(mean) != len(self._mean):
            raise ValueError(f"vectors of width {len(mean)} cannot join statistics of width {len(self._mean)}")
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + np.square(delta) * (self.count * n / total)
        self.count = total
        return self

    @property
    def mean(self) -> np.ndarray:
        """The mean vector, float64 `[dim]`."""
        self._check_seen()
        return self._mean.copy()

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation per dimension (ddof=0), float64 `[dim]`."""
        self._check_seen()
        return np.sqrt(self._m2 / self.count)

    def _check_seen(self) -> None:
        if self.count == 0:
            raise ValueError("no vectors have been added to these statistics yet")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """`{"count", "mean", "m2"}` as numpy arrays, exact (for `np.savez`); `from_arrays` reads them back."""
        self._check_seen()
        return {"count": np.array(self.count, np.int64), "mean": self._mean.copy(), "m2": self._m2.copy()}

    @classmethod
    def from_arrays(cls, arrays) -> "VectorStats":
        """The statistics `to_arrays` wrote (a dict or an open `.npz`).

        Raises:
            ValueError: a missing array, mismatched shapes or impossible values (a corrupt file).
        """
        try:
            count, mean, m2 = (np.asarray(arrays[key]) for key in ("count", "mean", "m2"))
        except KeyError as e:
            raise InvalidValue(f"vector statistics lack the array {e.args[0]!r}") from None
        if (count.shape != () or not np.issubdtype(count.dtype, np.integer) or int(count) <= 0
                or mean.ndim != 1 or m2.shape != mean.shape
                or not np.isfinite(mean).all() or not np.isfinite(m2).all() or (m2 < 0).any()):
            raise InvalidValue("vector statistics are corrupt: need a positive integer count and finite mean "
                             f"and m2 >= 0 of one width; got count {count!r}, shapes {mean.shape} and {m2.shape}")
        stats = cls()
        stats.count, stats._mean, stats._m2 = int(count), mean.astype(np.float64), m2.astype(np.float64)
        return stats


def normalize(vectors, stats: VectorStats | None = None, mode: str = DEFAULT_SCORING) -> np.ndarray:
    """Vectors as float32 unit rows under a scoring mode: the dot product of two rows is their score.

    Args:
        vectors: `[n, dim]` (or one `[dim]` vector), any float dtype.
        stats: the corpus statistics; required for "center" and "standardize".
        mode: one of `SCORING_MODES`. "standardize" leaves a dimension with no spread in the
            corpus unscaled (it is only centred), so it can never divide by zero.

    Returns:
        float32 of the same shape; a row that is zero after centring (or was zero) stays zero,
        so it scores 0 against everything, never NaN.

    Raises:
        ValueError: an unknown mode, missing statistics, a width other than theirs, NaN or infinity.

    Example:
        >>> unit = normalize(vectors, stats, "center")
        >>> scores = unit @ normalize(query, stats, "center")
    """
    check_choice("scoring", mode, SCORING_MODES)
    x = np.array(vectors, dtype=np.float32, copy=True)
    if x.ndim not in (1, 2):
        raise ValueError(f"normalize takes a [n, dim] array or one vector; got shape {x.shape}")
    if mode != "none":
        if stats is None or stats.count == 0:
            raise ValueError(f"scoring {mode!r} needs the corpus's vector statistics")
        if x.shape[-1] != stats.dim:
            raise ValueError(f"vectors of width {x.shape[-1]} cannot be scored with statistics of width {stats.dim}")
        x -= stats.mean.astype(np.float32)
        if mode == "standardize":
            std = stats.std
            x /= np.where(std > 0, std, 1.0).astype(np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.isfinite(norms).all():
        raise InvalidValue("the vectors hold NaN or infinity; they cannot be scored")
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
