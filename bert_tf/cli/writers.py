"""Reading text lines and writing embeddings as JSON Lines or `.npz`, in bounded memory.

Both writers take results a batch at a time. JSON Lines is written as it comes.
`.npz` needs every array whole, so batches go to temporary `.npy` files beside
the output and are streamed into the final zip at the end: memory holds one
batch, whatever the input length.

A file output is built in a temporary beside it and renamed into place by
`close()`; `abort()` (or any failure) leaves an existing file as it was
(see `bert_tf.files.output`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import sys
import zipfile
from typing import IO, TYPE_CHECKING, Iterator, Sequence

import numpy as np

from bert_tf.errors import InvalidValue
from bert_tf.files.output import AtomicFile, OutputError, commit, is_regular_or_missing, make_temp_dir, output_errors

if TYPE_CHECKING:
    from bert_tf.embed.results import Embeddings


@dataclasses.dataclass(frozen=True)
class Line:
    """One input line: its 1-based number and its text, or why it cannot be embedded."""

    number: int
    text: str | None
    problem: str | None = None


def read_lines(source: IO[bytes]) -> Iterator[Line]:
    """Yields the lines of a binary stream, one at a time (a file of any size).

    Lines are split on `\\n` only (a `\\r\\n` ending is stripped too), so a stray
    `\\r`, form feed or U+2028 inside a line never splits it. A line that is not
    valid UTF-8 is yielded with `problem` set instead of text.
    """
    from bert_tf.text.inputs import decode_line, split_line

    for number, raw in enumerate(source, start=1):
        text, problem = decode_line(split_line(raw))
        yield Line(number, text, problem)


def count_lines(path: str) -> int | None:
    """Counts lines quickly (for the progress bar's total); None unless `path` is a regular file.

    A pipe, FIFO or terminal (`<(...)`, `/dev/stdin`) can be read only once: counting it
    first would consume the very lines that are to be embedded.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        return None
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


#: Decimal places written to JSON: float32 vectors of BERT (values of order 1) keep about
#: seven significant digits, so 8 places lose nothing of substance (error < 5e-9) and keep lines short.
JSON_DECIMALS = 8


def _floats(vector: np.ndarray) -> list[float]:
    return np.round(vector.astype(np.float64), JSON_DECIMALS).tolist()


class JsonLinesWriter:
    """One JSON object per input line: text, words (text, offsets, pieces, vector), sentence vector.

    Args:
        stream: where the lines go (stdout, or the temporary of `atomic`).
        name: the output as the user knows it, for error messages.
        atomic: the file `close()` commits and `abort()` discards; None for a stream.
    """

    def __init__(self, stream: IO[str], *, name: str = "stdout", atomic: AtomicFile | None = None):
        self.stream = stream
        self.name = name
        self.atomic = atomic
        self.count = 0

    def write(self, lines: Sequence[int], texts: Sequence[str], batch: Embeddings) -> None:
        """Writes `batch` (`BertEmbedder.embed` of `texts`, word and sentence vectors), text t as line `lines[t]`."""
        starts, ends = batch.starts.tolist(), batch.ends.tolist()
        piece_bounds = np.concatenate([[0], np.cumsum(batch.pieces_per_word)]).tolist()
        with output_errors(self.name):
            for t, (line, text) in enumerate(zip(lines, texts)):
                obj = {
                    "line": line,
                    "text": text,
                    "words": [{"text": batch.words[w], "start": starts[w], "end": ends[w],
                               "pieces": batch.pieces[piece_bounds[w]:piece_bounds[w + 1]].tolist(),
                               "vector": _floats(batch.word_vectors[w])}
                              for w in range(batch.word_splits[t], batch.word_splits[t + 1])],
                    "sentence_vector": _floats(batch.sentence_vectors[t]),
                }
                self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.stream.flush()
        self.count += len(texts)

    def close(self) -> None:
        if self.atomic is not None:
            self.atomic.commit()
            return
        with output_errors(self.name):
            self.stream.flush()

    def abort(self) -> None:
        if self.atomic is not None:
            self.atomic.abort()
            return
        try:
            self.stream.flush()
        except OSError:
            pass  # the run is failing already; its own error is the one to report


class NpzWriter:
    """Writes one `.npz` with flat arrays and an index.

    Arrays:
        `sentence_vectors` [n_lines, hidden] float32, `line` [n_lines] int64 (1-based input line
        numbers), `text` [n_lines] str, `word_vectors` [n_words, dim] float32, `word_text`
        [n_words] str, `word_start`, `word_end` [n_words] int64 (character offsets into the line),
        `word_line_index` [n_words] int64 (row of `sentence_vectors` each word belongs to),
        `word_splits` [n_lines + 1] int64 (words of line i are `word_splits[i]:word_splits[i+1]`).
        All of them are present even when there are no lines or no words (then with length 0).

    Args:
        path: the `.npz` to write (replaced only by a successful `close()`).
        widths: `(dim, hidden)`, the widths of word and sentence vectors; they give the empty
            arrays their shapes when the output has no words or no lines (0 when not given).
    """

    NUMERIC = ("sentence_vectors", "line", "word_vectors", "word_start", "word_end", "word_line_index")
    STRINGS = ("text", "word_text")
    _FLOAT = ("sentence_vectors", "word_vectors")

    def __init__(self, path: str | os.PathLike,
                 widths: tuple[int, int] | None = None):
        self.path = os.fspath(path)
        self.final = os.path.realpath(self.path)
        self.widths = widths
        with output_errors(self.path):
            self.tmp = make_temp_dir(self.final)
        self.parts: dict[str, list[str]] = {name: [] for name in self.NUMERIC + self.STRINGS}
        self.count = 0
        self.words_per_line: list[int] = []

    def write(self, lines: Sequence[int], texts: Sequence[str], batch: Embeddings) -> None:
        """Writes `batch` (`BertEmbedder.embed` of `texts`, with word and sentence vectors) as lines `lines`."""
        if not len(texts):
            return
        words_per_line = np.diff(batch.word_splits)
        arrays = {
            "sentence_vectors": batch.sentence_vectors.astype(np.float32, copy=False),
            "line": np.asarray(lines, np.int64),
            "text": np.array(list(texts), dtype=object),
            "word_vectors": batch.word_vectors.astype(np.float32, copy=False),
            "word_text": np.array(batch.words, dtype=object),
            "word_start": batch.starts.astype(np.int64),
            "word_end": batch.ends.astype(np.int64),
            "word_line_index": np.repeat(np.arange(self.count, self.count + len(texts)),
                                         words_per_line).astype(np.int64),
        }
        with output_errors(self.path):
            for name, array in arrays.items():
                part = os.path.join(self.tmp, f"{name}.{len(self.parts[name]):06d}.npy")
                np.save(part, array, allow_pickle=array.dtype == object)
                self.parts[name].append(part)
        self.words_per_line.extend(words_per_line.tolist())
        self.count += len(texts)

    def _empty_shape(self, name: str) -> tuple[int, ...]:
        if name not in self._FLOAT:
            return (0,)
        word, sentence = self.widths or (0, 0)
        return (0, word if name == "word_vectors" else sentence)

    def _stream_array(self, archive: zipfile.ZipFile, name: str) -> None:
        """Streams the parts of one array into the zip as a single `.npy`, one part in memory at a time."""
        parts = self.parts[name]
        strings = name in self.STRINGS
        shapes = [np.load(p, mmap_mode=None if strings else "r", allow_pickle=strings).shape for p in parts]
        total = sum(shape[0] for shape in shapes)
        if strings:
            # Fixed-width unicode (readable without pickle); the width of the longest entry.
            width = max([1] + [max((len(x) for x in np.load(p, allow_pickle=True)), default=0) for p in parts])
            dtype, tail = np.dtype(f"<U{width}"), ()
        elif total == 0:
            # No rows anywhere (no lines, or lines without words): the parts' (0, 0) says nothing
            # of the width, which is asked for instead.
            dtype = np.dtype(np.float32 if name in self._FLOAT else np.int64)
            tail = self._empty_shape(name)[1:]
        else:
            first = next(np.load(p, mmap_mode="r") for p, shape in zip(parts, shapes) if shape[0])
            dtype, tail = first.dtype, first.shape[1:]
        with archive.open(name + ".npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_2_0(
                out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (total, *tail)})
            for p, shape in zip(parts, shapes):
                if shape[0]:
                    array = np.load(p, allow_pickle=strings).astype(dtype)
                    out.write(np.ascontiguousarray(array.reshape((-1, *tail))).tobytes())

    def close(self) -> None:
        """Writes the `.npz` and puts it in place of `path`; the temporary parts are removed either way."""
        try:
            with output_errors(self.path):
                tmp_zip = os.path.join(self.tmp, "out.npz")
                with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    for name in self.NUMERIC + self.STRINGS:
                        self._stream_array(archive, name)
                    with archive.open("word_splits.npy", "w") as out:
                        splits = np.concatenate([[0], np.cumsum(self.words_per_line, dtype=np.int64)])
                        np.lib.format.write_array(out, splits.astype(np.int64))
                if is_regular_or_missing(self.final):
                    with open(tmp_zip, "rb") as f:
                        os.fsync(f.fileno())
                    commit(tmp_zip, self.final)
                else:  # /dev/null, a FIFO: write into it rather than rename over it
                    with open(tmp_zip, "rb") as src, open(self.final, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        """Removes the temporary parts; an existing `path` stays as it was."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_output(path: str | None, fmt: str, *, widths=None):
    """A writer for `path` ('-' or None: stdout, JSON Lines only); `widths` as for `NpzWriter`.

    Raises:
        ValueError: `npz` to stdout.
        OutputError: stdout is closed, or the output cannot be created (names `path` and why).
    """
    if fmt == "npz":
        if path in (None, "-"):
            raise InvalidValue("--format npz needs --output FILE.npz (a zip cannot stream to stdout)")
        return NpzWriter(path, widths)
    if path in (None, "-"):
        if sys.stdout is None:  # started with stdout closed (`>&-`)
            raise OutputError("stdout", "it is closed; give --output FILE")
        return JsonLinesWriter(sys.stdout)
    atomic = AtomicFile(path, "w", encoding="utf-8")
    return JsonLinesWriter(atomic.file, name=os.fspath(path), atomic=atomic)
