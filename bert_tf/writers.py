"""Reading text lines and writing embeddings as JSON Lines or `.npz`, in bounded memory.

Both writers take results a batch at a time. JSON Lines is written as it comes.
`.npz` needs every array whole, so batches go to temporary `.npy` files beside
the output and are streamed into the final zip at the end: memory holds one
batch, whatever the input length.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import zipfile
from typing import IO, Iterator

import numpy as np


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
    for number, raw in enumerate(source, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        try:
            yield Line(number, raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield Line(number, None, f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r})")


def count_lines(path: str) -> int:
    """Counts lines quickly (for the progress bar's total)."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


@dataclasses.dataclass
class Record:
    """What the embedder produced for one line."""

    line: int
    text: str
    words: list  # list[WordVector]
    sentence_vector: np.ndarray


#: Decimal places written to JSON: float32 vectors of BERT (values of order 1) keep about
#: seven significant digits, so 8 places lose nothing of substance (error < 5e-9) and keep lines short.
JSON_DECIMALS = 8


def _floats(vector: np.ndarray) -> list[float]:
    return np.round(vector.astype(np.float64), JSON_DECIMALS).tolist()


class JsonLinesWriter:
    """One JSON object per input line: text, words (text, offsets, pieces, vector), sentence vector."""

    def __init__(self, stream: IO[str], *, owns_stream: bool = False):
        self.stream = stream
        self.owns_stream = owns_stream
        self.count = 0

    def write(self, records: list[Record]) -> None:
        for r in records:
            obj = {
                "line": r.line,
                "text": r.text,
                "words": [{"text": w.text, "start": w.start, "end": w.end, "pieces": list(w.pieces),
                           "vector": _floats(w.vector)} for w in r.words],
                "sentence_vector": _floats(r.sentence_vector),
            }
            self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.stream.flush()
        self.count += len(records)

    def close(self) -> None:
        self.stream.flush()
        if self.owns_stream:
            self.stream.close()

    def abort(self) -> None:
        self.close()


class NpzWriter:
    """Writes one `.npz` with flat arrays and an index.

    Arrays:
        `sentence_vectors` [n_lines, hidden], `line` [n_lines] (1-based input line numbers),
        `text` [n_lines] str, `word_vectors` [n_words, dim], `word_text` [n_words] str,
        `word_start`, `word_end` [n_words] (character offsets into the line),
        `word_line_index` [n_words] (row of `sentence_vectors` each word belongs to),
        `word_splits` [n_lines + 1] (words of line i are `word_splits[i]:word_splits[i+1]`).
    """

    NUMERIC = ("sentence_vectors", "line", "word_vectors", "word_start", "word_end", "word_line_index")
    STRINGS = ("text", "word_text")

    def __init__(self, path: str):
        self.path = path
        self.tmp = tempfile.mkdtemp(prefix=".npz-parts.", dir=os.path.dirname(os.path.abspath(path)) or ".")
        self.parts: dict[str, list[str]] = {name: [] for name in self.NUMERIC + self.STRINGS}
        self.count = 0
        self.words_per_line: list[int] = []

    def write(self, records: list[Record]) -> None:
        if not records:
            return
        words = [w for r in records for w in r.words]
        arrays = {
            "sentence_vectors": np.stack([r.sentence_vector for r in records]).astype(np.float32),
            "line": np.array([r.line for r in records], np.int64),
            "text": np.array([r.text for r in records], dtype=object),
            "word_vectors": (np.stack([w.vector for w in words]).astype(np.float32) if words
                             else np.zeros((0, 0), np.float32)),  # width comes from parts with words
            "word_text": np.array([w.text for w in words], dtype=object),
            "word_start": np.array([w.start for w in words], np.int64),
            "word_end": np.array([w.end for w in words], np.int64),
            "word_line_index": np.repeat(np.arange(self.count, self.count + len(records)),
                                         [len(r.words) for r in records]).astype(np.int64),
        }
        for name, array in arrays.items():
            part = os.path.join(self.tmp, f"{name}.{len(self.parts[name]):06d}.npy")
            np.save(part, array, allow_pickle=array.dtype == object)
            self.parts[name].append(part)
        self.words_per_line.extend(len(r.words) for r in records)
        self.count += len(records)

    def _stream_array(self, archive: zipfile.ZipFile, name: str) -> None:
        """Streams the parts of one array into the zip as a single `.npy`, one part in memory at a time."""
        parts = self.parts[name]
        strings = name in self.STRINGS
        shapes = [np.load(p, mmap_mode=None if strings else "r", allow_pickle=strings).shape for p in parts]
        if strings:
            # Fixed-width unicode (readable without pickle); the width of the longest entry.
            width = max([1] + [max((len(x) for x in np.load(p, allow_pickle=True)), default=0) for p in parts])
            dtype, tail = np.dtype(f"<U{width}"), ()
        else:
            first = next((np.load(p, mmap_mode="r") for p, shape in zip(parts, shapes) if shape[0]),
                         np.load(parts[0], mmap_mode="r"))
            dtype, tail = first.dtype, first.shape[1:]
        total = sum(shape[0] for shape in shapes)
        with archive.open(name + ".npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_2_0(
                out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": (total, *tail)})
            for p, shape in zip(parts, shapes):
                if shape[0]:
                    array = np.load(p, allow_pickle=strings).astype(dtype)
                    out.write(np.ascontiguousarray(array.reshape((-1, *tail))).tobytes())

    def close(self) -> None:
        try:
            tmp_zip = os.path.join(self.tmp, "out.npz")
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name in self.NUMERIC + self.STRINGS:
                    if self.parts[name]:
                        self._stream_array(archive, name)
                with archive.open("word_splits.npy", "w") as out:
                    splits = np.concatenate([[0], np.cumsum(self.words_per_line, dtype=np.int64)])
                    np.lib.format.write_array(out, splits.astype(np.int64))
            os.replace(tmp_zip, self.path)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_output(path: str | None, fmt: str):
    """A writer for `path` ('-' or None: stdout, JSON Lines only)."""
    if fmt == "npz":
        if path in (None, "-"):
            raise ValueError("--format npz needs --output FILE.npz (a zip cannot stream to stdout)")
        return NpzWriter(path)
    if path in (None, "-"):
        return JsonLinesWriter(sys.stdout)
    return JsonLinesWriter(open(path, "w", encoding="utf-8"), owns_stream=True)
