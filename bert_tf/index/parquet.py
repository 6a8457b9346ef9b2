"""Building an index from the Parquet output of `bert-tf beam-embed`, without the model.

The files hold, per text, the columns of `bert_tf.embed.corpus_format.COLUMNS`; their
schema metadata records the `VectorSpace` of the vectors (the model and the options
that made them). Every file of one source must record the same space: vectors of two
models in one index would give scores that mean nothing.

The `fields` column (format version 3 on) becomes the index's per-text fields, for
`--where` and `--by`: a JSON object per row, so a field comes back with the type it had
in the JSON Lines input (as `bert-tf index build --input` would give it). Files of
version 2 have no such column, and their texts no fields.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from bert_tf.embed.corpus_format import COLUMNS, FIELDS_COLUMN, METADATA_KEY, columns_of, decode_fields, space_of
from bert_tf.embed.options import check_choice
from bert_tf.embed.space import VectorSpace
from bert_tf.errors import InvalidValue
from bert_tf.files.atomic import staged_directory
from bert_tf.files.owned import INDEX
from bert_tf.index.builder import IndexWriter, progress_bar
from bert_tf.index.fields import check_fields
from bert_tf.index.scoring import DEFAULT_SCORING, SCORING_MODES
from bert_tf.index.vectors import VECTOR_DTYPES

#: Rows read from a file at a time.
ROWS_PER_BATCH = 512


def parquet_files(source: str | os.PathLike) -> list[str]:
    """The files a `--parquet` argument names: a file, a glob, or a Beam output prefix (`PREFIX-*-of-*.parquet`).

    Raises:
        FileNotFoundError: nothing matches (the message says what was looked for).
    """
    source = os.fspath(source)
    if os.path.isfile(source):
        return [source]
    if glob.has_magic(source):
        files = sorted(f for f in glob.glob(source) if os.path.isfile(f))
        looked = source
    else:
        # Beam's shard names only: a prefix `out` must not take in `out2-...` of another run.
        looked = f"{source}-*-of-*.parquet"
        files = sorted(f for f in glob.glob(glob.escape(source) + "-*-of-*.parquet") if os.path.isfile(f))
    if not files:
        raise FileNotFoundError(f"no Parquet file matches {looked}: give the --output prefix of "
                                "`bert-tf beam-embed`, a glob, or a file")
    return files


def read_header(path: str) -> tuple[VectorSpace, tuple[str, ...]]:
    """`(VectorSpace, columns)` of one file: the space its schema metadata records, and the columns its
    format version holds (`fields` from version 3).

    Raises:
        ValueError: the file is not Parquet, lacks a column, or was not written by this bert_tf's
            `beam-embed` (the message says to run it again).
    """
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid, OSError...
        raise InvalidValue(f"{path} cannot be read as Parquet: {e}") from None
    metadata = (schema.metadata or {}).get(METADATA_KEY)
    base = [c for c in COLUMNS if c != FIELDS_COLUMN]
    missing = [c for c in base if c not in schema.names]
    if missing:
        raise InvalidValue(f"{path} lacks the column(s) {', '.join(missing)}: it is not an output of "
                         "`bert-tf beam-embed --format parquet`")
    try:
        space, columns = space_of(metadata), columns_of(metadata)
    except ValueError as e:
        raise InvalidValue(f"{path}: {e}; an index needs to know which model made the vectors: write them with "
                         "this bert_tf's `bert-tf beam-embed`") from None
    if FIELDS_COLUMN in columns and FIELDS_COLUMN not in schema.names:
        raise InvalidValue(f"{path} lacks the column {FIELDS_COLUMN}, which its format version has: it is not an "
                         "output of `bert-tf beam-embed --format parquet`")
    return space, columns


def build_index_from_parquet(source: str | os.PathLike, out: str | os.PathLike, *,
                             scoring: str = DEFAULT_SCORING, vector_dtype: str = "float16", force: bool = False,
                             progress: bool | None = None):
    """Writes the occurrence index of a `beam-embed` Parquet output to the folder `out`.

    Args:
        source: a Parquet file, a glob, or the output prefix given to `bert-tf beam-embed`.
        out, scoring, vector_dtype, force, progress: as for `build_index`.

    Returns:
        The new index, opened (its query model is loaded when first needed).

    Raises:
        FileNotFoundError: no file matches `source`.
        ValueError: a file without bert_tf metadata, files of different models or options, or
            rows whose vectors do not match their words.
    """
    import pyarrow.parquet as pq

    from bert_tf.index.occurrence_index import OccurrenceIndex

    check_choice("scoring", scoring, SCORING_MODES)
    check_choice("vector_dtype", vector_dtype, VECTOR_DTYPES)
    files = parquet_files(source)
    headers = [read_header(f) for f in files]
    spaces = [space for space, _ in headers]
    for f, space in zip(files[1:], spaces[1:]):
        if not spaces[0].compatible(space):
            raise InvalidValue(f"{f} holds other vectors than {files[0]} "
                             f"({spaces[0].describe_differences(space, this='the first', that='this one')}): "
                             "index the outputs of one run at a time")
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    if not total:
        raise InvalidValue(f"{source} holds no rows: nothing to index")
    width, sentence_width = _widths(files)
    with staged_directory(out, replace=force, owner=INDEX,
                          inputs=[("the Parquet input", f) for f in files]) as staging:
        writer = IndexWriter(staging, space=spaces[0], width=width,
                             sentence_width=sentence_width, scoring=scoring, vector_dtype=vector_dtype)
        bar = progress_bar(total, progress, "indexing")
        try:
            for path, (_, columns) in zip(files, headers):
                for batch in _batches(path, columns):
                    for key, text, words, word_vectors, sentence, fields in _rows(batch, path):
                        writer.add(key, text, words, word_vectors, sentence, fields)
                    bar.update(batch.num_rows)
            writer.finish(source={"kind": "parquet", "files": [os.path.basename(f) for f in files],
                                  "texts": writer.n_texts})
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
    return OccurrenceIndex.open(out)


def _batches(path: str, columns):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_BATCH, columns=list(columns))


def _widths(files: list[str]) -> tuple[int, int]:
    """The widths of word and sentence vectors, from the first row that has words (read as a stream)."""
    for path in files:
        for batch in _batches(path, ("word_vectors", "sentence_vector")):
            inner = batch.column("word_vectors").flatten()
            if len(inner):
                sentence = batch.column("sentence_vector").value_lengths()
                return int(inner.value_lengths()[0].as_py()), int(sentence[0].as_py())
    raise InvalidValue(f"{files[0]}: no row has any word, so there is nothing to index")


def _rows(batch, path: str):
    """`(id, text, [(word, start, end)], word_vectors [n, width], sentence_vector, fields)` per row of a record
    batch (fields `{}` in a file without the column)."""
    columns = {name: batch.column(name) for name in COLUMNS if name in batch.schema.names}
    ids = columns["id"].to_pylist()
    texts = columns["text"].to_pylist()
    words = columns["words"].to_pylist()
    starts = columns["starts"].to_pylist()
    ends = columns["ends"].to_pylist()
    vectors = columns["word_vectors"]
    word_counts = vectors.value_lengths().to_numpy(zero_copy_only=False)
    inner = vectors.flatten()
    components = inner.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    widths = inner.value_lengths().to_numpy(zero_copy_only=False)
    sentences = columns["sentence_vector"].to_pylist()
    fields = columns[FIELDS_COLUMN].to_pylist() if FIELDS_COLUMN in columns else [None] * batch.num_rows
    w = c = 0
    for r in range(batch.num_rows):
        n = int(word_counts[r])
        width = int(widths[w]) if n else 0
        if n and np.any(widths[w:w + n] != width):
            raise InvalidValue(f"{path}: row id {ids[r]!r} has word vectors of different widths")
        if not (len(words[r]) == len(starts[r]) == len(ends[r]) == n):
            raise InvalidValue(f"{path}: row id {ids[r]!r} has {len(words[r])} words but {n} word vectors")
        block = components[c:c + n * width].reshape(n, width)
        try:
            text_fields = check_fields(decode_fields(fields[r]))
        except (ValueError, TypeError) as e:
            raise InvalidValue(f"{path}: row id {ids[r]!r}: {e}") from None
        yield (ids[r], texts[r], list(zip(words[r], starts[r], ends[r])), block,
               np.asarray(sentences[r], np.float32), text_fields)
        w += n
        c += n * width
