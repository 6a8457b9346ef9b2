"""`IndexMeta`: the read side of an index's `meta.sqlite` (texts, occurrences, fields).

`builder.py` writes the tables; everything a query reads from them is here, as bound SQL
parameters (`--where` included: `fields.where_query`), in chunks under SQLite's limit on them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from bert_tf.index import fields as text_fields, layout
from bert_tf.index.results import Hit

#: Bound parameters per statement (SQLite's default limit is 999 on older builds).
CHUNK = 500
#: Rows fetched at a time when reading every occurrence.
FETCH_ROWS = 50_000


class IndexMeta:
    """An index folder's `meta.sqlite`, opened read-only."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.db = sqlite3.connect(f"{(directory / layout.META).resolve().as_uri()}?mode=ro", uri=True,
                                  check_same_thread=False)
        self._field_types = None

    def close(self) -> None:
        self.db.close()

    def _in_chunks(self, template: str, ids: Sequence[int], params: Sequence = ()) -> Iterator[tuple]:
        """The rows of `template` (with `{}` where the `?, ?, ...` of an `IN` list goes) for all of `ids`."""
        for start in range(0, len(ids), CHUNK):
            part = list(ids[start:start + CHUNK])
            yield from self.db.execute(template.format(",".join("?" * len(part))), [*params, *part])

    # ------------------------------------------------------------------ fields

    @property
    def field_types(self) -> dict[str, str]:
        """`{name: type}` of the texts' fields ("str", "int", "float", "bool" or "mixed"); an index of
        format version 1 or 2 has none."""
        if self._field_types is None:
            try:
                rows = self.db.execute("SELECT name, type FROM field_types ORDER BY name").fetchall()
            except sqlite3.OperationalError:  # built before fields were kept (format version 1 or 2)
                rows = []
            self._field_types = dict(rows)
        return self._field_types

    def where_sql(self, where: str | None) -> tuple[str, list] | None:
        """`(sql, params)` selecting the ids of the texts `where` selects (None for None)."""
        if where is None:
            return None
        return text_fields.where_query(text_fields.parse_where(where), self.field_types)

    def restricted(self, query: str, params: list, where: str | None, column: str = "text_id") -> tuple[str, list]:
        """`query` and `params` with ` AND column IN (the texts where selects)` added (unchanged for None)."""
        selected = self.where_sql(where)
        if selected is None:
            return query, params
        return f"{query} AND {column} IN ({selected[0]})", [*params, *selected[1]]

    def texts_where(self, where: str) -> np.ndarray:
        """The rows of the texts whose fields satisfy `where`, in order."""
        sql, params = self.where_sql(where)
        return np.array(sorted(r[0] for r in self.db.execute(sql, params)), np.int64)

    def fields_of(self, text_ids: Iterable[int]) -> dict[int, dict]:
        """`{text_id: {name: value}}` (bools as bools) of the given texts."""
        types = self.field_types
        out: dict[int, dict] = {int(t): {} for t in text_ids}
        if not types:
            return out
        for text_id, name, value in self._in_chunks("SELECT text_id, name, value FROM fields WHERE text_id IN ({})",
                                                    list(out)):
            out[text_id][name] = bool(value) if types.get(name) == "bool" else value
        return {t: dict(sorted(f.items())) for t, f in out.items()}

    def groups_of_texts(self, grouping: text_fields.Grouping, text_ids=None) -> dict[int, str]:
        """`{text_id: group}` for the texts that have one; all texts when `text_ids` is None."""
        bool_field = self.field_types.get(grouping.field) == "bool"
        if text_ids is None:
            rows = self.db.execute("SELECT text_id, value FROM fields WHERE name = ?", (grouping.field,))
        else:
            ids = [int(t) for t in np.unique(np.asarray(text_ids, np.int64))]
            rows = self._in_chunks("SELECT text_id, value FROM fields WHERE name = ? AND text_id IN ({})", ids,
                                   [grouping.field])
        out = {}
        for text_id, value in rows:
            label = grouping.label(bool(value) if bool_field else value)
            if label is not None:
                out[text_id] = label
        return out

    # ------------------------------------------------------------------ occurrences

    def text_ids_of(self, rows) -> np.ndarray:
        """The text of each occurrence row, in the order given."""
        rows = [int(r) for r in rows]
        found = dict(self._in_chunks("SELECT id, text_id FROM occurrences WHERE id IN ({})", rows))
        return np.array([found[r] for r in rows], np.int64)

    def text_of_every_occurrence(self, count: int) -> np.ndarray:
        """`[count]`: the text of occurrence row i, for every row."""
        rows = self.db.execute("SELECT text_id FROM occurrences ORDER BY id")
        return np.fromiter((r[0] for r in rows), np.int64, count=count)

    def occurrences_of(self, word: str, where: str | None = None) -> np.ndarray:
        """The rows of every occurrence of `word` (as the model sees it), in corpus order; with `where`,
        only those in the texts it selects."""
        query, params = self.restricted("SELECT id FROM occurrences WHERE word = ?", [word], where)
        rows = self.db.execute(query + " ORDER BY id", params).fetchall()
        return np.array([r[0] for r in rows], np.int64)

    def occurrences_where(self, where: str) -> np.ndarray:
        """The rows of every occurrence in the texts `where` selects, in corpus order."""
        sql, params = self.where_sql(where)
        rows = self.db.execute(f"SELECT id FROM occurrences WHERE text_id IN ({sql}) ORDER BY id", params)
        return np.fromiter((r[0] for r in rows), np.int64)

    def occurrences_by_word(self, *, words=None, chunk: int = FETCH_ROWS) -> Iterator[tuple[str, np.ndarray]]:
        """`(word, rows)` for every word of the index (or of `words`), in word order, read a chunk at a time."""
        if words is not None:
            for word in sorted(set(words)):
                rows = self.occurrences_of(word)
                if len(rows):
                    yield word, rows
            return
        cursor = self.db.execute("SELECT word, id FROM occurrences ORDER BY word, id")  # the (word, id) index: no sort
        current, ids = None, []
        while batch := cursor.fetchmany(chunk):
            for word, row in batch:
                if word != current:
                    if current is not None:
                        yield current, np.array(ids, np.int64)
                    current, ids = word, []
                ids.append(row)
        if current is not None:
            yield current, np.array(ids, np.int64)

    def phrase_rows(self, targets: Sequence[str], where: str | None = None) -> np.ndarray:
        """The first occurrence row of every run of the words `targets` (as the model sees them) in one text."""
        n = len(targets)
        # The query's shape follows only the number of words; the words and any --where are bound parameters.
        joins = "".join(f" JOIN occurrences o{j} ON o{j}.id = o0.id + {j} AND o{j}.text_id = o0.text_id"
                        for j in range(1, n))
        words = " AND ".join(f"o{j}.word = ?" for j in range(n))
        query, params = self.restricted(f"SELECT o0.id FROM occurrences o0{joins} WHERE {words}", list(targets),
                                        where, column="o0.text_id")
        return np.array(sorted(r[0] for r in self.db.execute(query, params)), np.int64)

    # ------------------------------------------------------------------ hits

    def occurrence_hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """`Hit`s of occurrence rows, in the order given."""
        rows = [int(r) for r in rows]
        found = {row[0]: row for row in self._in_chunks(
            "SELECT o.id, o.text_id, o.word, o.start, o.\"end\", t.key, t.text FROM occurrences o "
            "JOIN texts t ON t.id = o.text_id WHERE o.id IN ({})", rows)}
        self._check_found("occurrence", rows, found)
        fields = self.fields_of(found[r][1] for r in rows)
        out = []
        for r, score in zip(rows, scores):
            _, text_id, word, start, end, key, text = found[r]
            out.append(Hit(key, text, word, start, end, float(score), text_id, r, fields[text_id]))
        return out

    def text_hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """`Hit`s of text rows (sentence vectors), in the order given."""
        rows = [int(r) for r in rows]
        found = {row[0]: row for row in self._in_chunks("SELECT id, key, text FROM texts WHERE id IN ({})", rows)}
        self._check_found("text", rows, found)
        fields = self.fields_of(rows)
        return [Hit(found[r][1], found[r][2], None, None, None, float(s), r, None, fields[r])
                for r, s in zip(rows, scores)]

    def _check_found(self, what: str, rows: list[int], found: dict) -> None:
        missing = [r for r in rows if r not in found]
        if missing:
            raise layout.CorruptIndexError(f"{self.directory} is damaged: {what} {missing[0]} has a vector but no "
                                           "row in meta.sqlite; rebuild it")
