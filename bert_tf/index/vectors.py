"""Unit vectors stored compactly on disk: float16, or int8 with one scale per row.

The index keeps its vectors already normalised (`bert_tf.index.scoring.normalize`),
so a score is a dot product. Both codecs are read through a memory map: a query that
needs a few rows reads only those rows, whatever the size of the index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bert_tf.embed.options import check_choice

VECTOR_DTYPES = ("float16", "int8")
#: Rows decoded at a time when the whole matrix is read (bounds memory on big indexes).
CHUNK_ROWS = 16384


def vector_file(name: str) -> str:
    return f"{name}.npy"


def scale_file(name: str) -> str:
    return f"{name}.scales.npy"


class VectorWriter:
    """Writes `[n, width]` unit rows, chunk by chunk, into `DIR/NAME.npy` (and `NAME.scales.npy` for int8)."""

    def __init__(self, directory: str | os.PathLike, name: str, n_rows: int, width: int, dtype: str = "float16"):
        check_choice("vector_dtype", dtype, VECTOR_DTYPES)
        directory = Path(directory)
        self.dtype = dtype
        self.codes = np.lib.format.open_memmap(directory / vector_file(name), mode="w+", dtype=dtype,
                                               shape=(n_rows, width))
        self.scales = None
        if dtype == "int8":
            self.scales = np.lib.format.open_memmap(directory / scale_file(name), mode="w+", dtype=np.float32,
                                                    shape=(n_rows,))
        self.row = 0

    def write(self, unit_rows: np.ndarray) -> None:
        n = len(unit_rows)
        if self.dtype == "float16":
            self.codes[self.row:self.row + n] = unit_rows.astype(np.float16)
        else:
            codes, scales = encode_int8(unit_rows)
            self.codes[self.row:self.row + n] = codes
            self.scales[self.row:self.row + n] = scales
        self.row += n

    def close(self) -> None:
        for array in (self.codes, self.scales):
            if array is not None:
                array.flush()
        del self.codes, self.scales


def encode_int8(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8: `rows ~ codes * scales[:, None]`, the largest component maps to +-127."""
    rows = np.asarray(rows, np.float32)
    peak = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows), np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


class VectorStore:
    """The stored rows of one matrix, read through a memory map and decoded to float32 on demand."""

    def __init__(self, directory: str | os.PathLike, name: str, dtype: str):
        check_choice("vector_dtype", dtype, VECTOR_DTYPES)
        directory = Path(directory)
        self.dtype = dtype
        self.codes = np.load(directory / vector_file(name), mmap_mode="r")
        self.scales = np.load(directory / scale_file(name), mmap_mode="r") if dtype == "int8" else None

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def width(self) -> int:
        return self.codes.shape[1]

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """`[len(ids), width]` float32 rows, in the order of `ids`."""
        ids = np.asarray(ids, np.int64)
        if not len(ids):
            return np.zeros((0, self.width), np.float32)
        order = np.argsort(ids, kind="stable")  # sorted reads are sequential on disk
        out = np.empty((len(ids), self.width), np.float32)
        out[order] = self._decode(self.codes[ids[order]], None if self.scales is None else self.scales[ids[order]])
        return out

    def all(self) -> np.ndarray:
        """Every row as float32 (for exact search and for training an approximate index)."""
        out = np.empty((len(self), self.width), np.float32)
        for start in range(0, len(self), CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, len(self))
            out[start:stop] = self._decode(self.codes[start:stop],
                                           None if self.scales is None else self.scales[start:stop])
        return out

    @staticmethod
    def _decode(codes: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
        out = np.asarray(codes, np.float32)
        return out if scales is None else out * np.asarray(scales, np.float32)[:, None]
