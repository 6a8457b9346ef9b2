"""Building an index: `build_index` (texts through the embedder) and `IndexWriter`, which both sources feed.

Memory stays flat in the corpus size: texts and occurrences go to SQLite as they come
and the raw vectors are appended to a scratch file in the staging folder. Mean-centring
needs the whole corpus's mean before the first vector can be normalised, so the vectors
are normalised and compacted in a second pass over that file, a chunk at a time; then
the approximate index is trained (large indexes only), and the manifest is written last.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from bert_tf.embed.options import EmbeddingOptions, check_choice
from bert_tf.embed.space import VectorSpace
from bert_tf.errors import InvalidValue
from bert_tf.files.atomic import staged_directory
from bert_tf.files.owned import INDEX
from bert_tf.index import fields as text_fields, layout
from bert_tf.index.scoring import DEFAULT_SCORING, SCORING_MODES, VectorStats, normalize
from bert_tf.index.search import EXACT_LIMIT, build_approximate
from bert_tf.index.vectors import CHUNK_ROWS, VECTOR_DTYPES, VectorStore, VectorWriter
from bert_tf.text.inputs import iter_texts

logger = logging.getLogger("bert_tf")

#: Texts embedded per call of the embedder (it sorts them by length inside a call).
TEXTS_PER_CALL = 256
#: Occurrences buffered before they are inserted into SQLite.
ROWS_PER_INSERT = 20_000

_SCHEMA = """
CREATE TABLE texts (id INTEGER PRIMARY KEY, key TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE occurrences (id INTEGER PRIMARY KEY, text_id INTEGER NOT NULL, word TEXT NOT NULL,
                          start INTEGER NOT NULL, "end" INTEGER NOT NULL);
"""


class IndexWriter:
    """Writes one index into an empty staging folder; `finish()` makes it complete.

    Args:
        directory: the staging folder (see `bert_tf.files.atomic.staged_directory`).
        space: the `VectorSpace` of the vectors (`BertEmbedder.space(options)`): the model and the options
            queries are embedded with, and what they are checked against.
        width, sentence_width: the widths of word and sentence vectors.
        scoring: how vectors are normalised (`bert_tf.index.scoring.SCORING_MODES`).
        vector_dtype: "float16" or "int8" (with a scale per row).
    """

    def __init__(self, directory: str | os.PathLike, *, space: VectorSpace, width: int,
                 sentence_width: int, scoring: str = DEFAULT_SCORING, vector_dtype: str = "float16"):
        check_choice("scoring", scoring, SCORING_MODES)
        check_choice("vector_dtype", vector_dtype, VECTOR_DTYPES)
        self.directory = Path(directory)
        self.space = space
        self.widths = {layout.WORDS: int(width), layout.SENTENCES: int(sentence_width)}
        self.scoring, self.vector_dtype = scoring, vector_dtype
        self.db = sqlite3.connect(self.directory / layout.META)
        # A staging file: a crash loses it whole anyway, so no journal and no syncs until the end.
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(_SCHEMA + text_fields.SCHEMA)
        self.raw = {name: open(self.directory / f".{name}.raw", "wb") for name in self.widths}
        self.stats = {name: VectorStats() for name in self.widths}
        self.counts = {layout.WORDS: 0, layout.SENTENCES: 0}
        self._texts: list[tuple] = []
        self._occurrences: list[tuple] = []
        self._fields: list[tuple] = []
        self.field_types: dict[str, str] = {}
        self.field_counts: dict[str, int] = {}
        self.started = time.perf_counter()

    @property
    def n_texts(self) -> int:
        return self.counts[layout.SENTENCES]

    @property
    def n_occurrences(self) -> int:
        return self.counts[layout.WORDS]

    def add(self, key: str, text: str, words: Sequence[tuple[str, int, int]], word_vectors: np.ndarray,
            sentence_vector: np.ndarray, fields: dict | None = None) -> None:
        """One text: its id, the text, its words `(word, start, end)` and their vectors, its sentence vector,
        and its fields (`{name: str | int | float | bool}`, see `bert_tf.index.fields`)."""
        fields = text_fields.check_fields(fields)
        word_vectors = np.asarray(word_vectors, np.float32).reshape(len(words), self.widths[layout.WORDS])
        sentence_vector = np.asarray(sentence_vector, np.float32).reshape(1, self.widths[layout.SENTENCES])
        text_id = self.n_texts
        self._texts.append((text_id, str(key), text))
        for name, value in fields.items():
            self.field_types[name] = text_fields.merge_types(self.field_types.get(name),
                                                             text_fields.type_name(value))
            self.field_counts[name] = self.field_counts.get(name, 0) + 1
            self._fields.append((text_id, name, int(value) if isinstance(value, bool) else value))
        first = self.n_occurrences
        self._occurrences.extend((first + i, text_id, w, int(s), int(e)) for i, (w, s, e) in enumerate(words))
        for name, vectors in ((layout.WORDS, word_vectors), (layout.SENTENCES, sentence_vector)):
            if len(vectors):
                self.raw[name].write(vectors.tobytes())
                self.stats[name].update(vectors)
                self.counts[name] += len(vectors)
        if len(self._occurrences) >= ROWS_PER_INSERT:
            self._insert()

    def _insert(self) -> None:
        with self.db:
            self.db.executemany("INSERT INTO texts VALUES (?, ?, ?)", self._texts)
            self.db.executemany("INSERT INTO occurrences VALUES (?, ?, ?, ?, ?)", self._occurrences)
            self.db.executemany("INSERT INTO fields VALUES (?, ?, ?)", self._fields)
        self._texts, self._occurrences, self._fields = [], [], []

    def finish(self, *, source: dict) -> dict:
        """Normalises and compacts the vectors, builds the approximate index if large, writes the manifest.

        Returns:
            The manifest.
        """
        self._insert()
        with self.db:
            self.db.execute("CREATE INDEX occurrences_word ON occurrences (word, id)")
            self.db.execute(text_fields.INDEXES)
            self.db.executemany("INSERT INTO field_types VALUES (?, ?, ?)",
                                [(name, kind, self.field_counts[name]) for name, kind in self.field_types.items()])
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.close()
        for name, width in self.widths.items():
            self.raw[name].close()
            self._compact(name, width)
            if self.stats[name].count:  # no statistics without vectors (a corpus of empty texts)
                np.savez(self.directory / f"{name}_stats.npz", **self.stats[name].to_arrays())
        approximate = {}
        for name in self.widths:
            if self.counts[name] > EXACT_LIMIT:
                started = time.perf_counter()
                approximate[name] = build_approximate(VectorStore(self.directory, name, self.vector_dtype),
                                                      self.directory / layout.approximate_file(name))
                approximate[name]["seconds"] = round(time.perf_counter() - started, 3)
        manifest = {
            "space": self.space.to_dict(), "scoring": self.scoring,
            "vector_dtype": self.vector_dtype, "widths": self.widths,
            "counts": {"texts": self.n_texts, "occurrences": self.n_occurrences},
            "approximate": approximate, "source": source, "fields": dict(sorted(self.field_types.items())),
            "build_seconds": round(time.perf_counter() - self.started, 3),
        }
        _fsync_files(self.directory)
        layout.write_manifest(self.directory, manifest)
        return manifest

    def _compact(self, name: str, width: int) -> None:
        raw_path = self.directory / f".{name}.raw"
        n = self.counts[name]
        out = VectorWriter(self.directory, name, n, width, self.vector_dtype)
        if n:
            raw = np.memmap(raw_path, dtype=np.float32, mode="r", shape=(n, width))
            for start in range(0, n, CHUNK_ROWS):
                out.write(normalize(np.asarray(raw[start:start + CHUNK_ROWS]), self.stats[name], self.scoring))
            del raw
        out.close()
        os.unlink(raw_path)

    def abort(self) -> None:
        """Closes what is open (the staging folder itself is removed by its owner)."""
        for f in self.raw.values():
            f.close()
        try:
            self.db.close()
        except sqlite3.Error:
            pass


def _fsync_files(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def build_index(texts: Iterable[str], out: str | os.PathLike, *, embedder=None, checkpoint=None,
                options: EmbeddingOptions | None = None, ids: Iterable | None = None,
                fields: Iterable[dict] | None = None, scoring: str = DEFAULT_SCORING, vector_dtype: str = "float16", force: bool = False,
                progress: bool | None = None, total: int | None = None):
    """Embeds `texts` and writes their occurrence index to the folder `out`.

    Args:
        texts: the corpus, any iterable of str (read once, as a stream).
        out: the index folder to create; it appears only when the build is complete.
        embedder: a `BertEmbedder`; default: one loaded from `checkpoint`.
        checkpoint: a checkpoint directory when no `embedder` is given (default as `get_embedder`).
        options: the `EmbeddingOptions` (default: the embedder's); they need a `sentence_strategy`.
        ids: one id per text (default: 1, 2, ...: line numbers of a file).
        fields: one dict per text of its fields (`{"source": "nyt", "year": 2019}`: str, int, float or
            bool values; None for none), queryable with `where=` and `by=` (see `bert_tf.index.fields`).
        scoring: how vectors are normalised before cosine (`SCORING_MODES`; default `DEFAULT_SCORING`).
        vector_dtype: "float16" (default) or "int8".
        force: replace an existing index at `out` (only once the new one is complete); a folder that
            is not an index written by bert_tf is never replaced (`bert_tf.files.owned`).
        progress: a progress bar on stderr (None: on a terminal).
        total: the number of texts, for the progress bar, when `texts` has no len().

    Returns:
        The new index, opened (`OccurrenceIndex`).

    Raises:
        FileExistsError: `out` exists and `force` is false, or it is not an index of ours.
        ValueError: `out` is the current folder or holds it.
        ValueError: a bad option, `sentence_strategy=None`.
        TypeError: a text that is not a str (before it is embedded), or a field value that is not a scalar.

    Example:
        >>> index = build_index(["I sat on the bank of the river.", "The bank raised its rates."], "bank.index")
        >>> index.search_word("bank", "We fished from the bank.", k=1)[0].text
        'I sat on the bank of the river.'
    """
    from bert_tf.embed.api import get_embedder
    from bert_tf.index.occurrence_index import OccurrenceIndex

    check_choice("scoring", scoring, SCORING_MODES)
    check_choice("vector_dtype", vector_dtype, VECTOR_DTYPES)
    if embedder is None:
        embedder = get_embedder(checkpoint)
    options = embedder.options(options)
    if options.sentence_strategy is None:
        raise InvalidValue("an index needs sentence vectors: give a sentence_strategy (mean, max, cls, pooled)")
    resolved = embedder.resolve(options)
    total = total if total is not None else (len(texts) if hasattr(texts, "__len__") else None)
    ids = iter(ids) if ids is not None else None
    fields = iter(fields) if fields is not None else None
    with staged_directory(out, replace=force, owner=INDEX) as staging:
        writer = IndexWriter(staging, space=embedder.space(options), width=resolved.vector_size,
                             sentence_width=embedder.hidden_size, scoring=scoring, vector_dtype=vector_dtype)
        bar = progress_bar(total, progress, "indexing")
        try:
            number = 0
            for chunk in _chunks(iter_texts(texts), TEXTS_PER_CALL):
                batch = embedder.embed(chunk, ("word_vectors", "sentence_vectors"), options, progress=False)
                for t, text in enumerate(chunk):
                    number += 1
                    key = next(ids) if ids is not None else number
                    w0, w1 = batch.word_splits[t], batch.word_splits[t + 1]
                    writer.add(key, text, list(zip(batch.words[w0:w1], batch.starts[w0:w1], batch.ends[w0:w1])),
                               batch.word_vectors[w0:w1], batch.sentence_vectors[t],
                               next(fields) if fields is not None else None)
                bar.update(len(chunk))
                bar.set_postfix_str(f"{writer.n_occurrences} occurrences")
            writer.finish(source={"kind": "texts", "texts": writer.n_texts})
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
    return OccurrenceIndex.open(out, embedder=embedder)


def _chunks(items, size):
    items = iter(items)
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def progress_bar(total: int | None, progress: bool | None, desc: str):
    """A tqdm bar on stderr (disabled off a terminal unless `progress` is True)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="text", desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=(not progress) if progress is not None else None)
