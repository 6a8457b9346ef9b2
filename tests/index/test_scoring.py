"""Corpus statistics and score normalisation (`bert_tf.index.scoring`)."""

from __future__ import annotations

import numpy as np
import pytest

from bert_tf.index.scoring import DEFAULT_SCORING, SCORING_MODES, VectorStats, normalize


def _data(seed=0, n=500, dim=24):
    rng = np.random.default_rng(seed)
    # a large common offset and very different spreads: what makes naive sums lose precision
    return (1e3 + rng.standard_normal((n, dim)) * rng.uniform(1e-2, 1e2, dim)).astype(np.float32)


@pytest.mark.parametrize("sizes", [(500,), (1, 499), (7, 0, 100, 1, 392), (250, 250)])
def test_streaming_stats_equal_numpy_over_the_concatenation(sizes):
    data = _data()
    stats = VectorStats()
    for part in np.split(data, np.cumsum(sizes)[:-1]):
        stats.update(part)
    reference = data.astype(np.float64)
    assert stats.count == len(data)
    # float64 throughout: the streaming result differs from numpy's two-pass one by rounding only
    np.testing.assert_allclose(stats.mean, reference.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, reference.std(axis=0), rtol=1e-9)


def test_merge_equals_one_stream_and_arrays_round_trip(tmp_path):
    data = _data(seed=1)
    a, b = VectorStats().update(data[:123]), VectorStats().update(data[123:])
    whole = VectorStats().update(data)
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.std, whole.std, rtol=1e-9)
    np.savez(tmp_path / "stats.npz", **merged.to_arrays())
    with np.load(tmp_path / "stats.npz") as arrays:
        back = VectorStats.from_arrays(arrays)
    assert back.count == merged.count
    np.testing.assert_array_equal(back.mean, merged.mean)
    np.testing.assert_array_equal(back.std, merged.std)


def test_stats_refuse_bad_input():
    stats = VectorStats()
    with pytest.raises(ValueError, match="no vectors"):
        stats.mean
    with pytest.raises(ValueError, match=r"\[n, dim\]"):
        stats.update(np.zeros(3))
    stats.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="width 4"):
        stats.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.array([[0.0, np.nan, 0.0]]))
    assert stats.count == 2  # a refused batch changes nothing
    arrays = stats.to_arrays()
    with pytest.raises(ValueError, match="'m2'"):
        VectorStats.from_arrays({"count": arrays["count"], "mean": arrays["mean"]})
    with pytest.raises(ValueError, match="corrupt"):
        VectorStats.from_arrays({**arrays, "m2": -np.ones(3)})
    with pytest.raises(ValueError, match="corrupt"):
        VectorStats.from_arrays({**arrays, "count": np.array(0)})


@pytest.mark.parametrize("mode", SCORING_MODES)
def test_normalize_gives_float32_unit_rows(mode):
    data = _data(seed=2)
    stats = VectorStats().update(data)
    unit = normalize(data.astype(np.float16), stats, mode)
    assert unit.dtype == np.float32 and unit.shape == data.shape
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=4 * np.finfo(np.float32).eps * 24)
    # one vector is scored exactly like its row in a batch
    np.testing.assert_array_equal(normalize(data[5].astype(np.float16), stats, mode), unit[5])


def test_normalize_modes_are_what_they_say():
    data = _data(seed=3).astype(np.float64)
    stats = VectorStats().update(data)
    centred = data - data.mean(axis=0)
    standardized = centred / data.std(axis=0)
    eps = np.finfo(np.float32).eps
    for mode, expected, scale in (("none", data, 1.0), ("center", centred, 1.0),
                                  ("standardize", standardized, data.std(axis=0))):
        norms = np.linalg.norm(expected, axis=1, keepdims=True)
        # normalize works in float32: rounding the raw values (up to |data|) before subtracting the
        # mean, relative to the row's length after it, bounds each coordinate's error
        bound = 8 * eps * np.abs(data).max() / (scale * norms).min() + 8 * eps
        np.testing.assert_allclose(normalize(data, stats, mode), expected / norms, rtol=0, atol=bound)
    # centring makes the corpus's mean direction disappear: the average score falls to about zero
    raw = normalize(data, stats, "none")
    centred_unit = normalize(data, stats, "center")
    assert (raw @ raw.T).mean() > 0.9
    assert abs((centred_unit @ centred_unit.T).mean()) < 0.01


def test_a_zero_row_stays_zero_never_nan():
    data = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 0.0]], np.float32)
    constant = np.array([[1.0, 5.0], [3.0, 5.0]], np.float32)  # the second dimension has no spread
    stats = VectorStats().update(constant)
    assert (normalize(data, stats, "none")[2] == 0).all()
    at_mean = normalize(np.array([[2.0, 5.0]]), stats, "center")
    assert (at_mean == 0).all()
    standardized = normalize(np.array([[2.0, 5.0], [3.0, 6.0]]), stats, "standardize")
    assert np.isfinite(standardized).all() and (standardized[0] == 0).all()
    np.testing.assert_allclose(standardized[1], np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)


def test_normalize_refuses_what_it_cannot_score():
    stats = VectorStats().update(np.ones((2, 3)))
    with pytest.raises(ValueError, match="scoring must be one of none, center, standardize; got 'cosine'"):
        normalize(np.ones((1, 3)), stats, "cosine")
    with pytest.raises(ValueError, match="needs the corpus"):
        normalize(np.ones((1, 3)), None, "center")
    with pytest.raises(ValueError, match="width 4"):
        normalize(np.ones((1, 4)), stats, "center")
    with pytest.raises(ValueError, match="NaN"):
        normalize(np.array([[np.inf, 0.0, 0.0]]), None, "none")
    assert DEFAULT_SCORING in SCORING_MODES
