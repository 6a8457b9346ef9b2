"""What a corpus run produces, and its forms on disk: Parquet rows, `tf.train.Example`s, JSON Lines.

One `Embedding` per text that was embedded, one `DeadLetter` per record that could
not be (with its id and why). The columns, the same in every format:

    id               string
    text             string
    words            list<string>              the words as the model sees them
    starts, ends     list<int32>               character offsets into `text`
    word_vectors     list<list<float32>>       [n_words, vector_size]
    sentence_vector  list<float32>             [hidden] (null when no sentence strategy)
    fields           string                    the record's other fields, a JSON object (`{}`: none)

A `tf.train.Example` cannot nest lists, so there `word_vectors` is flattened row by
row and `vector_size` (int64) gives the width to reshape it by (`tfrecord_features`).
In JSON Lines `fields` is the object itself.
Parquet files carry what built them in their schema metadata under `b"bert_tf"`:
the `VectorSpace` of their vectors, as JSON (`bert_tf.embed.corpus_format`, which
readers without Beam import too).

Needs numpy; pyarrow and TensorFlow only for their own formats.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from bert_tf.embed.corpus_format import FORMAT_VERSION, METADATA_KEY, run_metadata  # noqa: F401 - re-exported
from bert_tf.embed.corpus_format import encode_fields


@dataclasses.dataclass(frozen=True, eq=False)
class Embedding:
    """One embedded text.

    Attributes:
        id: the record's id (`FILE:LINE` for text files).
        text: the text (lone surrogates replaced by U+FFFD, as everywhere in bert_tf).
        words: the words as the model sees them (lower-cased for uncased checkpoints).
        starts, ends: int32 character offsets of each word in `text`.
        word_vectors: float32 `[n_words, vector_size]`.
        sentence_vector: float32 `[hidden]`, or None when the options compute none.
        fields: the record's other fields (`{"source": "nyt", "year": 2019}`; `{"file": NAME}` for a
            line of a text file), which `bert-tf index build --parquet` keeps for `--where` and `--by`.
    """

    id: str
    text: str
    words: list[str]
    starts: np.ndarray
    ends: np.ndarray
    word_vectors: np.ndarray
    sentence_vector: np.ndarray | None
    fields: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A record that could not be embedded.

    Attributes:
        id: its id, or None when the record had none (not an `(id, text)` pair).
        reason: why, in one line.
        text: the text where it can be shown (invalid UTF-8 with the bad bytes escaped), else None.
    """

    id: str | None
    reason: str
    text: str | None = None

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "reason": self.reason, "text": self.text}, ensure_ascii=False)


# ---------------------------------------------------------------------- Parquet


def parquet_schema(metadata: dict | None = None):
    """The pyarrow schema of the Parquet output; `metadata` (see `run_metadata`) goes under `b"bert_tf"`."""
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string()),
        pa.field("text", pa.string()),
        pa.field("words", pa.list_(pa.string())),
        pa.field("starts", pa.list_(pa.int32())),
        pa.field("ends", pa.list_(pa.int32())),
        pa.field("word_vectors", pa.list_(pa.list_(pa.float32()))),
        pa.field("sentence_vector", pa.list_(pa.float32())),
        pa.field("fields", pa.string()),
    ]
    meta = None if metadata is None else {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode("utf-8")}
    return pa.schema(fields, metadata=meta)


def to_parquet_row(e: Embedding) -> dict[str, Any]:
    """The row dict Beam's `WriteToParquet` takes (pyarrow converts 1-D arrays, not 2-D ones)."""
    return {"id": e.id, "text": e.text, "words": e.words, "starts": e.starts, "ends": e.ends,
            "word_vectors": list(e.word_vectors), "sentence_vector": e.sentence_vector,
            "fields": encode_fields(e.fields)}


def read_metadata(path) -> dict | None:
    """The `b"bert_tf"` metadata of one Parquet file, or None when it has none."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


# ---------------------------------------------------------------------- TFRecord


def to_example(e: Embedding) -> bytes:
    """A serialized `tf.train.Example` (read it back with `tfrecord_features`)."""
    from bert_tf.runtime import tf

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64)))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))

    features = {"id": strings([e.id]), "text": strings([e.text]), "words": strings(e.words),
                "starts": ints(e.starts), "ends": ints(e.ends), "word_vectors": floats(e.word_vectors),
                "vector_size": ints([e.word_vectors.shape[1]]),
                "sentence_vector": floats(() if e.sentence_vector is None else e.sentence_vector),
                "fields": strings([encode_fields(e.fields)])}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def tfrecord_features() -> dict:
    """The feature spec of the TFRecord output for `tf.io.parse_single_example`.

    Example:
        >>> ds = tf.data.TFRecordDataset(tf.io.gfile.glob("out/corpus-*.tfrecord"))
        >>> for x in ds.map(lambda r: tf.io.parse_single_example(r, tfrecord_features())):
        ...     vectors = tf.reshape(x["word_vectors"], [-1, x["vector_size"]])
    """
    from bert_tf.runtime import tf

    return {"id": tf.io.FixedLenFeature([], tf.string), "text": tf.io.FixedLenFeature([], tf.string),
            "words": tf.io.RaggedFeature(tf.string), "starts": tf.io.RaggedFeature(tf.int64),
            "ends": tf.io.RaggedFeature(tf.int64), "word_vectors": tf.io.RaggedFeature(tf.float32),
            "vector_size": tf.io.FixedLenFeature([], tf.int64),
            "sentence_vector": tf.io.RaggedFeature(tf.float32),
            "fields": tf.io.FixedLenFeature([], tf.string, default_value="{}")}  # "{}": files of format 2


# ---------------------------------------------------------------------- JSON Lines


def to_json(e: Embedding) -> str:
    """One JSON line. Floats are written exactly (float32 -> the double it equals), so they read back bit-equal."""
    return json.dumps({"id": e.id, "text": e.text, "words": e.words, "starts": e.starts.tolist(),
                       "ends": e.ends.tolist(), "word_vectors": e.word_vectors.tolist(),
                       "sentence_vector": None if e.sentence_vector is None else e.sentence_vector.tolist(),
                       "fields": e.fields},
                      ensure_ascii=False)
