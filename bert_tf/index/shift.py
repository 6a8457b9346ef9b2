"""How differently two groups use each word: `shift`, ranked by a semantic-change measure with a permutation control.

For every word with at least `min_count` occurrences in both groups (a field's values,
or years / months of a date, see `bert_tf.index.fields`), up to `SAMPLE_CAP` occurrences
per group are drawn and compared with the measures of the lexical semantic change
literature (SemEval-2020 Task 1), on the index's unit vectors:

* `apd`: average pairwise cosine distance between the groups' occurrences. The mean over
  all cross pairs of `a . b` is the dot product of the two groups' mean vectors, so it
  needs no pair matrix: `1 - mean(A) . mean(B)`.
* `prt`: cosine distance between the groups' mean vectors (prototypes).
* `jsd`: Jensen-Shannon divergence (base 2, 0..1) of the groups' shares of the word's
  senses, the senses clustered over both groups together (`cluster_senses`).

Raw, each measure grows with things other than a change of use: APD with how varied a
word is in both groups, JSD and PRT with how few occurrences it has (two small samples
of one distribution differ by chance). So each word is also scored on `PERMUTATIONS`
random relabellings of the same occurrences into groups of the same sizes, and its score
is the measure minus the mean of those: the change beyond what the same occurrences,
split at random with the same counts, would show. A frequent word cannot win by count
alone, nor a polysemous one by its spread. Which measure ranks by default was chosen on
the labelled drift set (bench/index_shift.py; docs/index.md gives the figures).

The index is read as a stream: the occurrences' words in index order, a word at a time,
and only the sampled rows' vectors.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bert_tf.embed.options import check_choice
from bert_tf.errors import InvalidValue
from bert_tf.index.fields import group_order

MEASURES = ("apd", "prt", "jsd")
#: The measure `shift` ranks by, chosen on the labelled drift set (bench/index_shift.py, docs/index.md).
DEFAULT_MEASURE = "prt"
#: Occurrences drawn per group and word at most (more add little but time).
SAMPLE_CAP = 200
#: Random relabellings each word's measures are compared with.
PERMUTATIONS = 20
#: The fewest occurrences per group by default.
DEFAULT_MIN_COUNT = 10


@dataclasses.dataclass(frozen=True)
class WordShift:
    """One word's difference of use between the two groups.

    Attributes:
        word: the word (as the model sees it).
        counts: its occurrences in each group (all of them, not only the sampled).
        measures: `{measure: value}` of the sampled occurrences.
        baselines: `{measure: mean over random relabellings}`: what chance gives at these counts.
        score: the ranking measure minus its baseline.
        shares: each group's share of each sense (when `jsd` was computed), else None.
        examples: per group, the occurrences most typical of that group against the other (`Hit`s;
            only for the top words).
    """

    word: str
    counts: tuple[int, int]
    measures: dict
    baselines: dict
    score: float
    shares: tuple[list[float], list[float]] | None = None
    examples: tuple[list, list] | None = None

    def to_json(self, groups: tuple[str, str]) -> dict:
        out = {"word": self.word, "score": round(self.score, 6),
               "counts": dict(zip(groups, self.counts)),
               "measures": {m: round(v, 6) for m, v in self.measures.items()},
               "baselines": {m: round(v, 6) for m, v in self.baselines.items()}}
        if self.shares is not None:
            out["shares"] = {g: [round(x, 6) for x in s] for g, s in zip(groups, self.shares)}
        if self.examples is not None:
            out["examples"] = {g: [h.to_json() for h in e] for g, e in zip(groups, self.examples)}
        return out


@dataclasses.dataclass
class ShiftReport:
    """`OccurrenceIndex.shift`: the words ranked by `measure` (beyond chance), most changed first."""

    by: str
    groups: tuple[str, str]
    measure: str
    min_count: int
    words: list[WordShift]
    candidates: int  # words with at least min_count occurrences in both groups


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence, base 2 (0..1), between distributions along the last axis."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    m = (p + q) / 2

    def kl(a):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(m > 0, m, 1)), 0.0).sum(axis=-1)

    return (kl(p) + kl(q)) / 2


def _mean_measures(x: np.ndarray, in_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """APD and PRT of `x` ([n, d] unit rows) for each labelling `in_b` ([r, n] bool: True = group B)."""
    weights_b = in_b / in_b.sum(axis=1, keepdims=True)
    weights_a = ~in_b / (~in_b).sum(axis=1, keepdims=True)
    mean_a, mean_b = weights_a @ x, weights_b @ x  # [r, d]
    dot = np.einsum("rd,rd->r", mean_a, mean_b)
    norms = np.linalg.norm(mean_a, axis=1) * np.linalg.norm(mean_b, axis=1)
    return 1.0 - dot, 1.0 - dot / np.maximum(norms, 1e-12)


def _shares(labels: np.ndarray, in_b: np.ndarray, n_senses: int) -> tuple[np.ndarray, np.ndarray]:
    """Each group's share of each sense, per labelling: two `[r, n_senses]` arrays."""
    onehot = np.eye(n_senses)[labels]  # [n, s]
    b = in_b.astype(np.float64) @ onehot
    a = (~in_b).astype(np.float64) @ onehot
    return a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True)


def word_measures(vectors: np.ndarray, in_b: np.ndarray, *, measures=MEASURES, permutations: int = PERMUTATIONS,
                  seed: int = 0) -> tuple[dict, dict, tuple | None]:
    """`(measures, baselines, shares)` of one word's sampled occurrences split into two groups.

    Args:
        vectors: `[n, d]` unit rows, both groups' occurrences.
        in_b: `[n]` bool, True for group B.
        measures: which of `MEASURES` to compute.
        permutations: random relabellings (same group sizes) the baselines are the mean of.

    Returns:
        `{measure: value}`, `{measure: baseline}`, and `(shares of A, shares of B)` when `jsd` is computed.
    """
    x = np.asarray(vectors, np.float64)
    in_b = np.asarray(in_b, bool)
    rng = np.random.default_rng(seed)
    labellings = np.stack([in_b] + [rng.permutation(in_b) for _ in range(permutations)])  # [1 + r, n]
    values, baselines, shares = {}, {}, None
    if "apd" in measures or "prt" in measures:
        apd, prt = _mean_measures(x, labellings)
        for name, v in (("apd", apd), ("prt", prt)):
            if name in measures:
                values[name], baselines[name] = float(v[0]), float(v[1:].mean()) if permutations else 0.0
    if "jsd" in measures:
        from bert_tf.index.senses import cluster_senses

        clusters = cluster_senses(x, seed=seed)
        a, b = _shares(np.asarray(clusters.labels), labellings, clusters.n_senses)
        jsd = jensen_shannon(a, b)
        values["jsd"], baselines["jsd"] = float(jsd[0]), float(jsd[1:].mean()) if permutations else 0.0
        shares = (a[0].tolist(), b[0].tolist())
    return values, baselines, shares


def check_measure(measure: str) -> None:
    check_choice("measure", measure, MEASURES)


def rank_words(index, by: str, *, between: tuple[str, str] | None = None, min_count: int | None = None,
               measure: str | None = None, words=None, top: int = 10, examples: int = 3,
               words_only: bool = True, sample_cap: int | None = None, permutations: int | None = None,
               seed: int = 0) -> ShiftReport:
    """Every word used in both groups of `index`, ranked: `OccurrenceIndex.shift` (its arguments)."""
    import zlib

    measure = DEFAULT_MEASURE if measure is None else measure
    check_measure(measure)
    min_count = DEFAULT_MIN_COUNT if min_count is None else min_count
    sample_cap = SAMPLE_CAP if sample_cap is None else sample_cap
    permutations = PERMUTATIONS if permutations is None else permutations
    for name, value in (("min_count", min_count), ("sample_cap", sample_cap), ("top", top),
                        ("examples", examples)):
        _check_count(name, value)
    grouping = index.grouping(by)
    group_of = index.groups_of_texts(grouping)
    pair = _two_groups(grouping, group_of, between)
    side = np.full(index.n_texts, -1, np.int8)
    for text_id, label in group_of.items():
        if label in pair:
            side[text_id] = pair.index(label)
    text_of = index.meta.text_of_every_occurrence(index.n_occurrences)
    wanted = None if words is None else [index.model_word(w) for w in words]
    needed = {"apd", "prt", measure}
    ranked, samples = [], {}
    for word, rows in index.meta.occurrences_by_word(words=wanted):
        if words_only and not any(ch.isalnum() for ch in word):
            continue
        sides = side[text_of[rows]]
        in_a, in_b = rows[sides == 0], rows[sides == 1]
        if len(in_a) < min_count or len(in_b) < min_count:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(word.encode("utf-8"))])
        a = np.sort(rng.choice(in_a, min(sample_cap, len(in_a)), replace=False))
        b = np.sort(rng.choice(in_b, min(sample_cap, len(in_b)), replace=False))
        picked = np.concatenate([a, b])
        labels = np.arange(len(picked)) >= len(a)
        values, baselines, shares = word_measures(index.words.rows(picked), labels, measures=needed,
                                                         permutations=permutations, seed=seed)
        ranked.append(WordShift(word, (len(in_a), len(in_b)), values, baselines,
                                       values[measure] - baselines[measure], shares))
        samples[word] = (picked, labels)
    ranked.sort(key=lambda w: (-w.score, w.word))
    for n, item in enumerate(ranked[:top]):
        ranked[n] = _shift_examples(index, item, *samples[item.word], examples=examples, seed=seed)
    return ShiftReport(grouping.name, pair, measure, min_count, ranked, len(ranked))



def _two_groups(grouping, group_of: dict, between) -> tuple[str, str]:
    counts: dict[str, int] = {}
    for label in group_of.values():
        counts[label] = counts.get(label, 0) + 1
    listed = ", ".join(f"{g} ({counts[g]} texts)" for g in sorted(counts, key=group_order)[:20]) or "none"
    if between is None:
        if len(counts) != 2:
            raise InvalidValue(f"--by {grouping.name} makes {len(counts)} group(s): {listed}; choose two with "
                             "--between A B")
        return tuple(sorted(counts, key=group_order))
    between = tuple(str(g) for g in between)
    if len(between) != 2 or between[0] == between[1]:
        raise InvalidValue(f"--between takes two different groups; got {' '.join(between)}")
    for g in between:
        if g not in counts:
            raise InvalidValue(f"--by {grouping.name} has no group {g!r}; its groups are {listed}")
    return between


def _shift_examples(index, item, picked: np.ndarray, in_b: np.ndarray, *, examples: int, seed: int):
    """The word's sense shares (if not computed yet) and each group's most typical occurrences."""
    x = index.words.rows(picked).astype(np.float64)
    shares = item.shares
    if shares is None:
        _, _, shares = word_measures(x, in_b, measures=("jsd",), permutations=0, seed=seed)
    mean_a, mean_b = x[~in_b].mean(axis=0), x[in_b].mean(axis=0)
    typical = x @ (mean_a - mean_b)  # high: like group A's use, unlike B's
    chosen = []
    for members, sign in ((np.flatnonzero(~in_b), 1.0), (np.flatnonzero(in_b), -1.0)):
        order = members[np.argsort(-sign * typical[members], kind="stable")]
        hits, seen = [], set()
        for start in range(0, len(order), 4 * examples):  # a corpus may hold one text many times: shown once
            part = order[start:start + 4 * examples]
            for hit in index.occurrence_hits(picked[part], sign * typical[part]):
                if (hit.text, hit.start) not in seen and len(hits) < examples:
                    seen.add((hit.text, hit.start))
                    hits.append(hit)
            if len(hits) == examples:
                break
        chosen.append(hits)
    return dataclasses.replace(item, shares=shares, examples=tuple(chosen))


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidValue(f"{name} must be a positive integer; got {value!r}")
