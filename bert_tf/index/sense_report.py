"""A word's senses in an index (`OccurrenceIndex.senses`): its occurrences clustered, each sense's
most central examples, and with a grouping each group's share of each sense and its examples of it.

The clustering itself is `senses.cluster_senses`; this module turns its clusters over an index's
rows into a `SenseReport` of hits, as `shift.rank_words` does for a change of use.
"""

from __future__ import annotations

import numpy as np

from bert_tf.index import fields as text_fields
from bert_tf.index.results import GroupShares, Sense, SenseReport

#: Occurrences clustered at most by `senses` (a random sample of a more frequent word).
MAX_SENSE_OCCURRENCES = 2000


def sense_report(index, word: str, rows: np.ndarray, *, grouping=None, n_senses: int | None = None,
                 max_senses: int = 8, examples: int = 3, max_occurrences: int = MAX_SENSE_OCCURRENCES,
                 seed: int = 0) -> SenseReport:
    """`word`'s occurrences `rows` of `index` clustered into senses (`OccurrenceIndex.senses` says what
    each argument means), largest first; with a `fields.Grouping`, its groups' shares."""
    from bert_tf.index.senses import cluster_senses  # on first use: opening an index loads no clustering

    total = len(rows)
    if len(rows) > max_occurrences:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_occurrences, replace=False))
    vectors = index.words.rows(rows)
    clusters = cluster_senses(vectors, n_senses=n_senses, max_senses=max_senses, seed=seed)
    labels = np.asarray(clusters.labels)
    central = clusters.central(examples)
    senses = []
    for label, size in enumerate(clusters.sizes):
        picked = np.asarray(central[label], np.int64)
        senses.append(Sense(label, size, index.occurrence_hits(rows[picked], clusters.similarity[picked])))
    senses.sort(key=lambda s: (-s.size, s.label))
    report = SenseReport(word, senses, clusters.chosen_by, total, rows, labels, vectors, clusters)
    if grouping is not None:
        report.by = grouping.name
        report.groups = group_shares(index, report, grouping, examples)
    return report


def group_shares(index, report: SenseReport, grouping, examples: int) -> list[GroupShares]:
    """Each group's count of each of `report`'s senses and its `examples` most central occurrences of it."""
    texts = index.text_ids_of(report.clustered)
    group_of = index.groups_of_texts(grouping, texts)
    labels = np.asarray(report.labels)
    similarity = np.asarray(report.clusters.similarity)
    groups = np.array([group_of.get(int(t)) for t in texts], object)
    out = []
    for group in sorted({g for g in groups if g is not None}, key=text_fields.group_order):
        members = np.flatnonzero(groups == group)
        counts = np.bincount(labels[members], minlength=report.n_senses).tolist()
        picked = []
        for sense in range(report.n_senses):
            own = members[labels[members] == sense]
            own = own[np.argsort(-similarity[own], kind="stable")[:examples]]
            picked.append(index.occurrence_hits(report.clustered[own], similarity[own]))
        out.append(GroupShares(group, counts, picked))
    return out
