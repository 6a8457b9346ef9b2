"""Per-word baselines: percentiles by hand, `search --score percentile`, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tf.cli.main import main
from bert_tf.index import build_index
from bert_tf.index.calibration import WordBaseline
from tests.index.test_index_store import corpus, module_dir, tiny  # noqa: F401  (the module's tiny model)


def test_a_percentile_is_the_share_of_the_words_own_pairs_less_alike():
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    baseline = WordBaseline.from_vectors("w", x)
    pairs = np.array([x[i] @ x[j] for i in range(6) for j in range(i + 1, 6)], np.float32)
    assert len(baseline.pair_cosines) == 15
    for c in (-1.0, float(np.median(pairs)), 0.2, 1.0):
        assert baseline.percentile([c])[0] == pytest.approx(np.mean(pairs < np.float32(c)))


@pytest.fixture(scope="module")
def small(tiny, module_dir):  # noqa: F811
    texts = corpus(40, seed=11) + ["loan"]
    return build_index(texts, module_dir / "calibrated", embedder=tiny), texts


def test_cli_score_percentile_shows_the_hits_percentiles(small, capsys):
    index, texts = small
    query = next(t for t in texts if "bank" in t.split())
    hits = index.search_word("bank", query, k=4)
    assert all(h.percentile is not None and 0 <= h.percentile <= 1 for h in hits)
    assert main(["search", str(index.directory), "--word", "bank", query, "-k", "4", "--score", "percentile"]) == 0
    shown = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert shown == pytest.approx([round(h.percentile, 3) for h in hits], abs=1e-3)
    assert main(["search", str(index.directory), "--word", "bank", query, "-k", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["percentile"] for r in rows] == pytest.approx([h.percentile for h in hits[:2]], abs=1e-6)
    assert main(["search", str(index.directory), query, "--score", "percentile"]) == 1
    assert "give --word" in capsys.readouterr().err
