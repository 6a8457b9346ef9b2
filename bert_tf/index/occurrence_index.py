"""`OccurrenceIndex`: an index folder opened for queries: its vectors, texts and fields, and the queries on them.

Every query sentence is embedded with the model and options the index was built with and
normalised with the index's own corpus statistics (`query_model.QueryModel`: another checkpoint,
casing, precision or options is refused), then compared by cosine with the stored unit vectors.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.embed.space import VectorSpace, space_of_identity
from bert_tf.errors import InvalidValue
from bert_tf.index import fields as text_fields, layout
from bert_tf.index.meta import IndexMeta
from bert_tf.index.query import check_k, check_query
from bert_tf.index.query_model import QueryModel, load_stats
from bert_tf.index.results import Hit, Neighbor, SenseReport
from bert_tf.index.sense_report import MAX_SENSE_OCCURRENCES
from bert_tf.index.search import open_search, search_rows, top_k
from bert_tf.index.vectors import VectorStore

#: Occurrences `neighbors` aggregates per word asked for.
NEIGHBOR_CANDIDATES_PER_RESULT = 50


class OccurrenceIndex:
    """Every word occurrence of a corpus with its vector, searchable by sense.

    Example:
        >>> index = OccurrenceIndex.open("corpus.index")
        >>> for hit in index.search_word("bank", "I sat on the bank of the river.", k=3):
        ...     print(f"{hit.score:.2f} {hit.text}")
    """

    def __init__(self, directory: Path, manifest: dict, *, embedder=None, checkpoint=None):
        self.directory = directory
        self.manifest = manifest
        try:
            self.space = space_of_identity(manifest.get("identity"), manifest.get("options")) \
                if manifest.get("version") == 1 else VectorSpace.from_dict(manifest.get("space"))
        except ValueError as e:
            raise layout.CorruptIndexError(f"{directory} cannot be read: {e}; rebuild it with `bert-tf index build "
                                           f"... --out {directory} --force`") from None
        dtype = manifest["vector_dtype"]
        self.words = VectorStore(directory, layout.WORDS, dtype)
        self.sentences = VectorStore(directory, layout.SENTENCES, dtype)
        counts = manifest["counts"]
        if len(self.words) != counts["occurrences"] or len(self.sentences) != counts["texts"]:
            raise layout.CorruptIndexError(f"{directory} is damaged: its vector files do not hold the "
                                           f"{counts['occurrences']} occurrences and {counts['texts']} texts of "
                                           "its manifest; rebuild it")
        self.stats = {name: load_stats(directory, name) for name in (layout.WORDS, layout.SENTENCES)}
        self.meta = IndexMeta(directory)
        self._searchers: dict[str, object] = {}
        self.query_model = QueryModel(directory, self.space, self.stats, self.scoring, embedder=embedder,
                                      checkpoint=checkpoint)

    @classmethod
    def open(cls, directory: str | os.PathLike, *, embedder=None, checkpoint: str | os.PathLike | None = None,
             options: EmbeddingOptions | None = None, verify: bool = True) -> "OccurrenceIndex":
        """Opens a complete index for queries.

        Args:
            directory: the index folder.
            embedder: the `BertEmbedder` queries are embedded with; it must be the index's model.
                Default: loaded from `checkpoint`, or from the path the index records, when
                the first sentence query comes.
            checkpoint: where the index's checkpoint is now, if it has moved.
            options: `EmbeddingOptions` the caller expects; refused unless they make the index's vectors.
            verify: compare every file with its checksum (sizes are always compared).

        Raises:
            FileNotFoundError: no such folder.
            CorruptIndexError: a build that did not finish, or a damaged file.
            IndexMismatchError: `embedder` or `options` differ from the index's.
        """
        directory = Path(directory)
        manifest = layout.read_manifest(directory, verify=verify)
        index = cls(directory, manifest, embedder=embedder, checkpoint=checkpoint)
        if options is not None:
            index.check_options(options)
        return index

    # ------------------------------------------------------------------ what it holds

    @property
    def db(self):
        """The read-only connection to meta.sqlite (`meta.IndexMeta`)."""
        return self.meta.db

    @property
    def options(self) -> EmbeddingOptions:
        """The embedding options of the index's vectors (queries are embedded with them): `space.options()`."""
        return self.query_model.options

    @property
    def scoring(self) -> str:
        return self.manifest["scoring"]

    @property
    def n_texts(self) -> int:
        return len(self.sentences)

    @property
    def n_occurrences(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return (f"OccurrenceIndex({str(self.directory)!r}: {self.n_texts} texts, {self.n_occurrences} occurrences, "
                f"{self.space.name}, scoring={self.scoring})")

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> "OccurrenceIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the query model (`query_model.QueryModel`)

    def check_embedder(self, embedder) -> None:
        """Raises `IndexMismatchError` unless `embedder` makes this index's vectors (with the index's options)."""
        self.query_model.check_embedder(embedder)

    def check_options(self, options: EmbeddingOptions) -> None:
        """Raises `IndexMismatchError` unless `options` make this index's vectors (with its model)."""
        self.query_model.check_options(options)

    def check_space(self, space: VectorSpace) -> None:
        """Raises `IndexMismatchError`, naming every difference, unless vectors of `space` compare with the index's."""
        self.query_model.check_space(space)

    @property
    def embedder(self):
        """The model queries are embedded with, loaded on first use (see `QueryModel.embedder`)."""
        return self.query_model.embedder

    def embed(self, sentence: str):
        """`(words, sentence_vector)` of a query sentence, embedded as the index's texts were."""
        return self.query_model.embed(sentence)

    def model_word(self, word: str) -> str:
        """`word` as the model sees it; needs no model (see `QueryModel.model_word`)."""
        return self.query_model.model_word(word)

    def model_words(self, text: str) -> list[str]:
        """The words of `text` as the model sees them (`Big Apple` -> `['big', 'apple']` for an uncased model)."""
        return self.query_model.model_words(text)

    @property
    def word_tokenizer(self):
        """A tokenizer that gives the index's words, not its pieces (see `QueryModel.word_tokenizer`)."""
        return self.query_model.word_tokenizer

    def query_occurrence(self, word: str, sentence: str, occurrence: int | None = None) -> tuple[str, np.ndarray]:
        """`(word as the model sees it, its unit vector)` at one occurrence of it in `sentence` (`QueryModel`)."""
        return self.query_model.query_occurrence(word, sentence, occurrence)

    def span_vector(self, sentence: str, start: int, end: int) -> np.ndarray:
        """The model's vector of the words at `sentence[start:end]`, pooled as one word's are (`QueryModel`)."""
        return self.query_model.span_vector(sentence, start, end)

    # ------------------------------------------------------------------ lookups

    def searcher(self, name: str = layout.WORDS):
        """The nearest-neighbour search over word (`"words"`) or sentence (`"sentences"`) vectors."""
        if name not in self._searchers:
            store = self.words if name == layout.WORDS else self.sentences
            self._searchers[name] = open_search(self.directory / layout.approximate_file(name), store,
                                                (self.manifest.get("approximate") or {}).get(name))
        return self._searchers[name]

    # ------------------------------------------------------------------ fields, groups, rows (`meta.IndexMeta`)

    @property
    def field_types(self) -> dict[str, str]:
        """`{name: type}` of the texts' fields ("str", "int", "float", "bool" or "mixed"); an index of
        format version 1 or 2 has none."""
        return self.meta.field_types

    def texts_where(self, where: str) -> np.ndarray:
        """The rows of the texts whose fields satisfy `where` (`"source = 'nyt' and year >= 2000"`), in order.

        Raises:
            ValueError: `where` is not of the grammar of `bert_tf.index.fields.parse_where`, names a
                field the index does not have (the message lists those it has), or compares a field
                with a value of another type.
        """
        return self.meta.texts_where(where)

    def grouping(self, by: str) -> text_fields.Grouping:
        """What `by` names (FIELD, year, month, FIELD:year, FIELD:month), checked against the index's fields."""
        return text_fields.parse_by(by, self.field_types)

    def groups_of_texts(self, by: str | text_fields.Grouping, text_ids=None) -> dict[int, str]:
        """`{text_id: group}` for the texts that have one (`by` as `grouping`); all texts when `text_ids` is None."""
        return self.meta.groups_of_texts(by if isinstance(by, text_fields.Grouping) else self.grouping(by), text_ids)

    def text_ids_of(self, rows) -> np.ndarray:
        """The text of each occurrence row, in the order given."""
        return self.meta.text_ids_of(rows)

    def occurrences_of(self, word: str, where: str | None = None) -> np.ndarray:
        """The rows of every occurrence of `word` (as the model sees it), in corpus order; with `where`,
        only those in the texts it selects (see `texts_where`)."""
        return self.meta.occurrences_of(word, where)

    def phrase_rows(self, targets: Sequence[str], where: str | None = None) -> np.ndarray:
        """The first occurrence row of every run of the words `targets` (as the model sees them) in one text."""
        return self.meta.phrase_rows(targets, where)

    def occurrence_hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """`Hit`s of occurrence rows, in the order given."""
        return self.meta.occurrence_hits(rows, scores)

    def text_hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """`Hit`s of text rows, in the order given."""
        return self.meta.text_hits(rows, scores)

    # ------------------------------------------------------------------ queries

    def search(self, sentence: str, k: int = 10, *, where: str | None = None) -> list[Hit]:
        """The `k` texts whose sentence vectors are closest to `sentence`'s, best first.

        Args:
            where: only texts whose fields satisfy it (`"source = 'nyt'"`; see `texts_where`): exact search
                over them.
        """
        check_k(k)
        check_query(sentence=sentence)
        if not self.n_occurrences:
            why = f" (its {self.n_texts} texts are all empty)" if self.n_texts else ""
            raise InvalidValue(f"the index {self.directory} has no texts to search{why}")
        selected = self._selected_texts(where)  # before the query: a bad --where needs no model run
        query = self.query_model.query_sentence(sentence)
        if selected is None:
            scores, rows = self.searcher(layout.SENTENCES).search(query, k)
        else:
            scores, rows = search_rows(self.sentences, selected, query, k)
        return self.text_hits(rows, scores)

    def _selected_texts(self, where: str | None) -> np.ndarray | None:
        if where is None:
            return None
        selected = self.texts_where(where)
        if not len(selected):
            raise InvalidValue(f"no text of the index {self.directory} matches --where {where!r}")
        return selected

    def search_word(self, word: str, sentence: str, k: int = 10, *, occurrence: int | None = None,
                    where: str | None = None) -> list[Hit]:
        """The `k` occurrences of `word` closest to its occurrence in `sentence`: the same sense first.

        Exact: every occurrence of the word is scored.

        Args:
            where: only occurrences in texts whose fields satisfy it (see `texts_where`).

        Raises:
            ValueError: `word` is not in `sentence`, or not in the index (in the texts `where` selects).
        """
        check_k(k)
        check_query(word=word, sentence=sentence)
        targets = self.model_words(word)
        if len(targets) > 1:
            return self._search_phrase(targets, sentence, k, occurrence=occurrence, where=where)
        rows = self._rows_of(self.model_word(word), where)  # before the query: an unknown word needs no model run
        target, query = self.query_occurrence(word, sentence, occurrence)
        scores, best = top_k(self.words.rows(rows) @ query, rows, k)
        hits = self.occurrence_hits(best, scores)
        baseline = self.word_baseline(target)
        if baseline is None:
            return hits
        return [dataclasses.replace(h, percentile=float(p)) for h, p in zip(hits, baseline.percentile(scores))]

    def _search_phrase(self, targets: list[str], sentence: str, k: int, *, occurrence, where) -> list[Hit]:
        """`search_word` for a multi-word expression (see `bert_tf.index.spans`)."""
        from bert_tf.index.spans import pool_span, unit

        phrase = " ".join(targets)
        rows = self.phrase_rows(targets, where)
        if not len(rows):
            among = f" in the texts --where {where!r} selects" if where is not None else ""
            raise InvalidValue(f"the index {self.directory} has no occurrence of {phrase!r} (its words in a row, as the "
                             f"model sees them){among}")
        counts, query = self.query_model.query_phrase(targets, sentence, occurrence)
        offsets = np.arange(len(targets))
        stored = self.words.rows((rows[:, None] + offsets).ravel()).reshape(len(rows), len(targets), -1)
        scores, best = top_k(unit(pool_span(stored, counts, self.options.subword_pooling)) @ query, rows, k)
        firsts = self.occurrence_hits(best, scores)
        lasts = self.occurrence_hits(best + len(targets) - 1, scores)
        return [dataclasses.replace(f, word=phrase, end=last.end) for f, last in zip(firsts, lasts)]

    def word_baseline(self, word: str, *, seed: int = 0):
        """The cosines of the pairs of `word`'s occurrences (a sample of `BASELINE_OCCURRENCES` of a more
        frequent word), which percentiles are read against; None for a word of fewer than 3 occurrences.

        Example:
            >>> index.word_baseline("bank").percentile([0.6])  # more alike than this share of bank's pairs
        """
        from bert_tf.index.calibration import WordBaseline

        target = self.model_word(word)
        cache = self.__dict__.setdefault("_baselines", {})
        if (target, seed) not in cache:
            cache[(target, seed)] = WordBaseline.sampled(target, self.occurrences_of(target), self.words, seed=seed)
        return cache[(target, seed)]

    def _rows_of(self, word: str, where: str | None = None) -> np.ndarray:
        rows = self.occurrences_of(word, where)
        if not len(rows):
            among = f" in the texts --where {where!r} selects" if where is not None else ""
            raise InvalidValue(f"the index {self.directory} has no occurrence of {word!r} (as the model sees it)"
                             f"{among}")
        return rows

    def neighbors(self, word: str, sentence: str, k: int = 10, *, words_only: bool = True,
                  occurrence: int | None = None, where: str | None = None) -> list[Neighbor]:
        """Other words whose occurrences lie closest to `word` in `sentence` (keyword expansion).

        The nearest occurrences of any word are gathered (`NEIGHBOR_CANDIDATES_PER_RESULT` per
        result), those of `word` itself left out, and grouped by word: each word scores its best
        occurrence, and `count` says how many of its occurrences were among the nearest.

        Args:
            words_only: leave out tokens without a letter or digit (punctuation).
            where: only occurrences in texts whose fields satisfy it (see `texts_where`): exact search over them.
        """
        check_k(k)
        if not self.n_occurrences:
            raise InvalidValue(f"the index {self.directory} has no word occurrences (its texts are all empty)")
        selected = None if where is None else self.meta.occurrences_where(where)
        if selected is not None and not len(selected):
            raise InvalidValue(f"no word occurrence of the index {self.directory} is in a text --where {where!r} "
                             "selects")
        target, query = self.query_occurrence(word, sentence, occurrence)
        if selected is None:
            scores, rows = self.searcher(layout.WORDS).search(query, NEIGHBOR_CANDIDATES_PER_RESULT * k)
        else:
            scores, rows = search_rows(self.words, selected, query, NEIGHBOR_CANDIDATES_PER_RESULT * k)
        hits = self.occurrence_hits(rows, scores)
        grouped: dict[str, list[Hit]] = {}
        for hit in hits:  # best first, so a word's first hit is its best
            if hit.word == target or (words_only and not any(ch.isalnum() for ch in hit.word)):
                continue
            grouped.setdefault(hit.word, []).append(hit)
        ranked = sorted(grouped.values(), key=lambda g: (-g[0].score, g[0].word))
        return [Neighbor(g[0].word, g[0].score, len(g), g[0]) for g in ranked[:k]]

    def senses(self, word: str, *, n_senses: int | None = None, max_senses: int = 8, examples: int = 3,
               max_occurrences: int = MAX_SENSE_OCCURRENCES, seed: int = 0, where: str | None = None,
               by: str | None = None) -> SenseReport:
        """The occurrences of `word` clustered into senses, largest first, each with its most central examples.

        Args:
            word: the word (as typed; compared as the model sees it).
            n_senses: the number of senses; None chooses it from the data (up to `max_senses`).
            examples: central examples per sense (and per group with `by`).
            max_occurrences: a more frequent word is clustered on a random sample of this many.
            seed: for the sample and the clustering.
            where: only occurrences in texts whose fields satisfy it (see `texts_where`).
            by: a field (or `year`, `month`, `FIELD:year`, `FIELD:month`): the senses are clustered over all
                groups together, then `report.groups` gives each group's count of each sense and its most
                central examples of it (texts without the field are clustered but in no group).

        Raises:
            ValueError: the word is not in the index, or has too few occurrences for `n_senses`; a bad
                `where` or `by` (an unknown field is named with the fields the index has).

        Example:
            >>> report = index.senses("bank", by="source")
            >>> {g.group: [round(s, 2) for s in g.shares] for g in report.groups}
            {'nyt': [0.8, 0.2], 'wsj': [0.1, 0.9]}
        """
        from bert_tf.index.sense_report import sense_report

        target = self.model_word(word)
        grouping = self.grouping(by) if by is not None else None  # refused before any work
        return sense_report(self, target, self._rows_of(target, where), grouping=grouping, n_senses=n_senses,
                            max_senses=max_senses, examples=examples, max_occurrences=max_occurrences, seed=seed)

    def shift(self, by: str, *, between: tuple[str, str] | None = None, min_count: int | None = None,
              measure: str | None = None, words=None, top: int = 10, examples: int = 3,
              words_only: bool = True, sample_cap: int | None = None, permutations: int | None = None,
              seed: int = 0):
        """Every word used in both groups, ranked by how differently the two use it (`bert_tf.index.shift`).

        Args:
            by: the grouping (a field, `year`, `month`, `FIELD:year`, `FIELD:month`).
            between: the two groups compared (as `senses(by=...)` names them); None when `by` has
                exactly two.
            min_count: the fewest occurrences a word needs in each group (default
                `shift.DEFAULT_MIN_COUNT`).
            measure: what ranks: "apd", "prt" or "jsd" (default `shift.DEFAULT_MEASURE`), less its
                permutation baseline.
            words: only these words (default: every word of the index).
            top: how many of the first words get examples and sense shares.
            examples: per group, the occurrences most typical of it against the other.
            words_only: leave out tokens without a letter or digit.
            sample_cap: occurrences drawn per group and word at most (default `shift.SAMPLE_CAP`).
            permutations: random relabellings of the baseline (default `shift.PERMUTATIONS`).

        Returns:
            A `ShiftReport`, most changed first.

        Raises:
            ValueError: an unknown field, bucket, group or measure; `by` with other than two groups and
                no `between`.

        Example:
            >>> report = index.shift("source", min_count=20)
            >>> [(w.word, round(w.score, 3)) for w in report.words[:3]]
        """
        from bert_tf.index.shift import rank_words

        return rank_words(self, by, between=between, min_count=min_count, measure=measure, words=words, top=top,
                          examples=examples, words_only=words_only, sample_cap=sample_cap,
                          permutations=permutations, seed=seed)
