"""Writing a corpus run: embeddings as Parquet, TFRecord or JSON Lines shards; dead letters as JSON Lines.

Beam's file sinks write every shard to a temporary file and rename it to its final
name (`PREFIX-00000-of-00002.parquet`) only when the whole PCollection is written,
so a failed pipeline leaves no half-shard under a final name. (`pipeline.embed_corpus`
goes one step further and runs the sinks into a staging folder, so a finished run
already at the prefix is replaced whole or not at all.)
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes

from bert_tf.beam import records

OUTPUT_FORMATS = ("parquet", "tfrecord", "jsonl")
SUFFIXES = {"parquet": ".parquet", "tfrecord": ".tfrecord", "jsonl": ".jsonl"}
DEAD_LETTERS = "-dead-letters"
#: Rows per Arrow record batch (and Parquet row group): a row holds a text's word vectors (~60 kB for 20 words of BERT-Base),
#: so this bounds the writer's buffer at some tens of MB.
PARQUET_BATCH_ROWS = 256


class WriteEmbeddings(beam.PTransform):
    """`Embedding`s to sharded files `PREFIX-SSSSS-of-NNNNN.{parquet,tfrecord,jsonl}`.

    Args:
        prefix: the output prefix (a local path or any Beam filesystem, `gs://...`).
        output_format: "parquet" (default), "tfrecord" or "jsonl".
        metadata: `records.run_metadata(...)`, stored in the Parquet schema under `b"bert_tf"`.
        num_shards: files to write; 0 lets the runner choose.
    """

    def __init__(self, prefix: str, output_format: str = "parquet", *, metadata: dict | None = None,
                 num_shards: int = 0):
        super().__init__()
        from bert_tf.embed.options import check_choice

        check_choice("format", output_format, OUTPUT_FORMATS)
        self.prefix, self.output_format, self.metadata, self.num_shards = prefix, output_format, metadata, num_shards

    def expand(self, pcoll):
        suffix = SUFFIXES[self.output_format]
        if self.output_format == "parquet":
            return (pcoll | "Rows" >> beam.Map(records.to_parquet_row)
                    | "Parquet" >> beam.io.Write(ParquetRowSink(self.prefix, records.parquet_schema(self.metadata),
                                                                suffix, self.num_shards)))
        if self.output_format == "tfrecord":
            return (pcoll | "Examples" >> beam.Map(records.to_example)
                    | "TFRecord" >> beam.io.Write(TFRecordSink(self.prefix, suffix, self.num_shards)))
        return (pcoll | "Json" >> beam.Map(records.to_json)
                | "JsonLines" >> beam.io.WriteToText(self.prefix, file_name_suffix=suffix,
                                                     num_shards=self.num_shards))


class WriteDeadLetters(beam.PTransform):
    """`DeadLetter`s to `PREFIX-dead-letters.jsonl` (`id`, `reason`, `text`); always written, empty when
    nothing failed, so a reader can tell "none" from "not run". One file with no shard name, so that the
    embeddings' glob `PREFIX-*-of-*.jsonl` never matches it."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def expand(self, pcoll):
        return (pcoll | "Json" >> beam.Map(records.DeadLetter.to_json)
                | "JsonLines" >> beam.io.WriteToText(self.prefix + DEAD_LETTERS, file_name_suffix=".jsonl",
                                                     num_shards=1, shard_name_template=""))


class TFRecordSink(filebasedsink.FileBasedSink):
    """TFRecord shards written by TensorFlow's own `tf.io.TFRecordWriter`, through Beam's file-sink protocol
    (temporary files, renamed on success).

    Beam's `WriteToTFRecord` needs a CRC32C package (google-crc32c, crcmod or python-snappy) that
    TensorFlow does not bring; TensorFlow's writer computes the checksums itself, writes to every
    filesystem `tf.io.gfile` knows (gs:// included), and its records are what `tf.data` reads.
    """

    def __init__(self, prefix: str, suffix: str = ".tfrecord", num_shards: int = 0):
        super().__init__(prefix, coder=BytesCoder(), file_name_suffix=suffix, num_shards=num_shards,
                         mime_type="application/octet-stream", compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, temp_path):
        from bert_tf.runtime import tf

        return tf.io.TFRecordWriter(temp_path)

    def write_record(self, writer, value: bytes) -> None:
        writer.write(value)

    def close(self, writer) -> None:
        writer.close()


class _ParquetFile:
    """One open shard: the file, its Arrow writer, and the rows not yet written."""

    def __init__(self, handle, schema):
        import pyarrow.parquet as pq

        self.handle, self.schema, self.rows = handle, schema, []
        self.writer = pq.ParquetWriter(handle, schema)

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            columns = [pa.array([row[f.name] for row in self.rows], type=f.type) for f in self.schema]
            self.writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
            self.rows = []


class ParquetRowSink(filebasedsink.FileBasedSink):
    """Parquet shards written row by row through Beam's file-sink protocol (temporary files renamed on
    success), with a record batch (and row group) per `PARQUET_BATCH_ROWS` rows.

    Beam's `WriteToParquet` turns each bundle's rows into one Arrow table before the sink deals the
    elements out to the shards, so a bundle's rows, often all of them, land in one shard and
    `--num-shards 3` wrote two empty files; dealing out rows spreads them.
    """

    def __init__(self, prefix: str, schema, suffix: str = ".parquet", num_shards: int = 0):
        super().__init__(prefix, coder=None, file_name_suffix=suffix, num_shards=num_shards,
                         mime_type="application/x-parquet", compression_type=CompressionTypes.UNCOMPRESSED)
        self.schema = schema

    def open(self, temp_path):
        return _ParquetFile(super().open(temp_path), self.schema)

    def write_record(self, writer: _ParquetFile, value: dict) -> None:
        writer.rows.append(value)
        if len(writer.rows) >= PARQUET_BATCH_ROWS:
            writer.flush()

    def close(self, writer: _ParquetFile) -> None:
        writer.flush()
        writer.writer.close()
        writer.handle.close()
