"""What `OccurrenceIndex` queries return: hits, neighbouring words, senses and their shares by group.

Each result type has `to_json()`, the form the CLI's `--json` prints.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Hit:
    """One result: a text, or one word occurrence in it, and its cosine score.

    Attributes:
        id: the text's id (its line number, or the id of a Beam output row).
        text: the whole text.
        word: the word as the model sees it (None for a whole-text result).
        start, end: the word's character offsets: `text[start:end]` (None for a whole text).
        score: cosine similarity with the query, after the index's scoring (1 is identical).
        text_id: the text's row in the index.
        occurrence: the occurrence's row in the index (None for a whole text).
        fields: the text's fields (`source`, `date`, ...: see `bert_tf.index.fields`).
        percentile: for `search_word`, the share of the word's own occurrence pairs in the index less
            alike than this one (`OccurrenceIndex.word_baseline`); None elsewhere, or for a word of
            fewer than 3 occurrences.
    """

    id: str
    text: str
    word: str | None
    start: int | None
    end: int | None
    score: float
    text_id: int
    occurrence: int | None = None
    fields: dict = dataclasses.field(default_factory=dict)
    percentile: float | None = None

    def to_json(self) -> dict:
        out = {"text": self.text, "word": self.word, "start": self.start, "end": self.end,
               "score": round(float(self.score), 6), "id": self.id, "occurrence": self.occurrence,
               "fields": self.fields}
        if self.percentile is not None:
            out["percentile"] = round(float(self.percentile), 6)
        return out


@dataclasses.dataclass(frozen=True)
class Neighbor:
    """Another word used like the query's word: its best score, how many of its occurrences came close, the best one."""

    word: str
    score: float
    count: int
    example: Hit

    def to_json(self) -> dict:
        return {"word": self.word, "score": round(float(self.score), 6), "count": self.count,
                "example": self.example.to_json()}


@dataclasses.dataclass(frozen=True)
class Sense:
    """One cluster of a word's occurrences: its size and its most central examples (score: cosine to its centre)."""

    label: int
    size: int
    examples: list[Hit]

    def to_json(self) -> dict:
        # Numbered from 1, as the text output, the plot and the projector number senses.
        return {"sense": self.label + 1, "size": self.size, "examples": [e.to_json() for e in self.examples]}


@dataclasses.dataclass(frozen=True)
class GroupShares:
    """One group's use of a word (`senses(by=...)`): how many of its clustered occurrences fall in each sense.

    Attributes:
        group: the group (a field's value, or a year / month).
        counts: per sense, in the report's sense order (sense 1 first).
        examples: per sense, this group's most central occurrences of it.
    """

    group: str
    counts: list[int]
    examples: list[list[Hit]]

    @property
    def occurrences(self) -> int:
        return int(sum(self.counts))

    @property
    def shares(self) -> list[float]:
        """Each sense's share of the group's occurrences (they sum to 1)."""
        total = max(self.occurrences, 1)
        return [c / total for c in self.counts]

    def to_json(self) -> dict:
        return {"group": self.group, "occurrences": self.occurrences, "counts": self.counts,
                "shares": [round(x, 6) for x in self.shares],
                "examples": [[e.to_json() for e in sense] for sense in self.examples]}


@dataclasses.dataclass
class SenseReport:
    """`OccurrenceIndex.senses`: the clusters, largest first, and what they were made from."""

    word: str
    senses: list[Sense]
    chosen_by: str
    occurrences: int  # of the word in the index (in the texts `where` selects)
    clustered: np.ndarray  # the occurrence rows clustered
    labels: np.ndarray  # their sense labels
    vectors: np.ndarray  # their unit vectors
    clusters: object  # the `SenseClusters`
    by: str | None = None  # the grouping of `groups` (`--by`)
    groups: list[GroupShares] = dataclasses.field(default_factory=list)

    @property
    def n_senses(self) -> int:
        return len(self.senses)
