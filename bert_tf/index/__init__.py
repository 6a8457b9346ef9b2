"""The occurrence index: every word occurrence of a corpus with its vector, searchable by sense."""

from bert_tf.index.builder import IndexWriter, build_index
from bert_tf.index.layout import CorruptIndexError, IndexMismatchError
from bert_tf.index.occurrence_index import OccurrenceIndex
from bert_tf.index.results import GroupShares, Hit, Neighbor, Sense, SenseReport
from bert_tf.index.parquet import build_index_from_parquet
from bert_tf.index.shift import ShiftReport, WordShift

__all__ = [
    "CorruptIndexError",
    "GroupShares",
    "Hit",
    "IndexMismatchError",
    "IndexWriter",
    "Neighbor",
    "OccurrenceIndex",
    "Sense",
    "SenseReport",
    "ShiftReport",
    "WordShift",
    "build_index",
    "build_index_from_parquet",
]
