"""The embedding head against a plain-Python reference of the same rules, on random features."""

import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf.embed import head
from bert_tf.testing import assert_float32_close, float32_bound


def reference_windows(n, span):
    """Google's run_squad.py: windows overlapping by half, each piece from its max-context window."""
    stride = max(1, span // 2)
    starts = [0] if n <= span else [*range(0, n - span, stride), n - span]
    best = []
    for i in range(n):
        scores = []
        for s in starts:
            end = min(s + span, n)
            scores.append(min(i - s, end - 1 - i) + 0.01 * (end - s) if s <= i < end else -np.inf)
        best.append(int(np.argmax(scores)))
    return starts, best


def reference(texts, span, features_of, how, strategy, pooled_of):
    """texts: [(n_pieces, pieces_per_word)]; features_of(t, w) -> [len(window) + 2, d] rows of window w."""
    words, sentences = [], []
    for t, (n, ppw) in enumerate(texts):
        starts, best = reference_windows(n, span)
        windows = [features_of(t, w) for w in range(len(starts))]
        rows = [windows[0][0]] + [windows[best[i]][1 + i - starts[best[i]]] for i in range(n)] + [windows[-1][-1]]
        rows = np.array(rows)
        bounds = np.concatenate([[0], np.cumsum(ppw)]).astype(int)
        for k in range(len(ppw)):
            pieces = rows[1 + bounds[k]:1 + bounds[k + 1]]
            words.append({"mean": pieces.mean(0), "first": pieces[0], "last": pieces[-1]}[how])
        sentences.append({"mean": rows.mean(0), "max": rows.max(0), "cls": rows[0],
                          "pooled": pooled_of(t, 0)}[strategy])
    return np.array(words), np.array(sentences)


@pytest.mark.parametrize("span", [6, 7, 30])
@pytest.mark.parametrize("how, strategy", [("mean", "mean"), ("first", "max"), ("last", "cls"), ("mean", "pooled")])
def test_head_follows_the_reference_rules(span, how, strategy):
    rng = np.random.default_rng(span)
    lengths = [0, 1, span, span + 1, 3 * span + 2, 5, 40]
    texts = []
    for n in lengths:
        ppw = []
        while sum(ppw) < n:
            ppw.append(int(min(rng.integers(1, 4), n - sum(ppw))))
        texts.append((n, ppw))
    # Features of each segment, laid out as token_states lays them out: segment after segment.
    segments, pooled = [], []
    for n, _ in texts:
        starts, _ = reference_windows(n, span)
        for s in starts:
            segments.append(rng.standard_normal((min(span, n - s) + 2, 5)).astype(np.float32))
            pooled.append(rng.standard_normal(5).astype(np.float32))
    offsets = np.cumsum([0] + [len(reference_windows(n, span)[0]) for n, _ in texts])

    expected_words, expected_sentences = reference(
        texts, span, lambda t, w: segments[offsets[t] + w], how, strategy, lambda t, w: pooled[offsets[t] + w])
    n = tf.constant([n for n, _ in texts])
    rows, plan = head.stitch(tf.constant(np.concatenate(segments)), n, span)
    words = head.pool_words(rows, n, tf.constant([c for _, ppw in texts for c in ppw], tf.int64), how)
    sentences = head.sentence_vectors(rows, n, tf.constant(np.stack(pooled)), plan, strategy)
    # One stage of rounding: a mean over at most the longest text's rows.
    width = max(lengths) + 2
    assert_float32_close(words.numpy(), expected_words, float32_bound(expected_words, depth=1, width=width), "words")
    assert_float32_close(sentences.numpy(), expected_sentences,
                         float32_bound(expected_sentences, depth=1, width=width), "sentences")


def test_window_plan_is_run_squads_windows():
    for span in (6, 7, 62, 510):
        for n in (0, 1, span - 1, span, span + 1, 2 * span, 7 * span + 3):
            plan = head.window_plan(tf.constant([n]), span)
            assert plan["seg_start"].numpy().tolist() == reference_windows(n, span)[0]


@pytest.mark.parametrize("span", [6, 7, 9, 62, 510])
def test_every_piece_is_placed_in_its_max_context_window(span):
    ns = list(range(0, 4 * span + 3)) if span < 100 else [0, 1, 509, 510, 511, 765, 766, 1020, 1021, 1531, 2049]
    n = tf.constant(ns, tf.int64)
    plan = head.window_plan(n, span)
    index = head.piece_positions(n, plan, span).numpy()
    seg_splits, lengths = plan["seg_splits"].numpy(), plan["seg_len"].numpy()
    splits = np.concatenate([[0], np.cumsum(ns)])
    for t, count in enumerate(ns):
        starts, best = reference_windows(count, span)
        assert lengths[seg_splits[t]:seg_splits[t + 1]].tolist() == [min(span, count - s) for s in starts]
        rows = index[splits[t]:splits[t + 1]]
        assert (rows[:, 0] - seg_splits[t]).tolist() == best, (span, count)
        # position inside the window: [CLS] first, so piece i of window w sits at 1 + i - start_w
        assert (rows[:, 1] == 1 + np.arange(count) - np.array(starts)[best]).all()


@pytest.mark.parametrize("trailing", [(24,), (3, 8)])
def test_segment_mean_is_tensorflows_to_float32_rounding(trailing):
    """The head's means (a word's pieces, a text's rows) are a sum over a count, so that LiteRT runs them too
    (`litert.LiteFunction`): `tf.math.segment_mean` but for the order of the sum, on rows of any rank."""
    rng = np.random.default_rng(len(trailing))
    counts = rng.integers(1, 60, 40)
    ids = np.repeat(np.arange(len(counts)), counts)
    rows = rng.standard_normal((len(ids), *trailing)).astype(np.float32)
    want = tf.math.segment_mean(rows, ids).numpy()
    got = head.segment_mean(rows, ids, counts).numpy()
    # One rounding stage, a sum of up to 59 rows; scaled by the rows' magnitude, which a mean can fall below.
    assert_float32_close(got, want, float32_bound(rows, depth=1, width=int(counts.max())), "segment mean")
