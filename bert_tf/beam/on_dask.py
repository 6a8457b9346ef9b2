"""The shape of a corpus run on Beam's DaskRunner: one input file per task, written whole by its task.

Beam's DaskRunner (2.77) translates a pipeline into Dask bags, and a few of its
translations do not keep Beam's contract (see docs/corpus.md, "Running on a Dask
cluster"):

* a multi-output `ParDo` (`with_outputs`, `TaggedOutput`) becomes one bag holding every
  output, which each consumer receives whole: the dead-letter writer gets `(id, text)`
  pairs and embeddings (the `'tuple' object has no attribute 'id'` failure);
* only the bag of the last transform visited is computed, so a second sink is not run;
* outputs of `finish_bundle` are dropped (RunInference's last partial batch), `Reshuffle`
  does nothing, and the result has no metrics.

So on the DaskRunner `embed_corpus` builds the one graph shape that it runs faithfully:
`Create(input files)` into a single `ParDo` (`EmbedFile`) whose only effect is to
write one part per input file into the staging folder: reading, checking, embedding
(the same `check_record` and `BertModelHandler` as everywhere) and writing happen in
that task. A part is written under a temporary name and renamed, then its counts are
written beside it (`part-NNNNN.counts.json`) as the mark that it is whole; a task
retried after its worker died rewrites the same names, so nothing is doubled. After
the run, `finish` refuses a run with a part missing, names the parts as shards (one
per input file, `PREFIX-SSSSS-of-NNNNN`), joins the dead letters into one file and
returns the counts summed from the marks (the DaskRunner reports no metrics).

Input files are the unit of parallelism: split a corpus into at least as many files
as there are worker threads.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from bert_tf.beam import records
from bert_tf.beam.handler import BATCH_PIECES, BertModelHandler, EmbedSpec, estimated_pieces
from bert_tf.beam.records import DeadLetter, Embedding
from bert_tf.beam.sinks import DEAD_LETTERS, PARQUET_BATCH_ROWS, SUFFIXES
from bert_tf.beam.sources import format_of, json_records, text_records
from bert_tf.beam.transform import check_record
from bert_tf.errors import InvalidValue

PARTS = "parts"
_COUNTS = ".counts.json"
_NAMES = ("embedded", "dead_letters", "words")


def part_name(parts_dir: str, index: int) -> str:
    """The name, without suffix, of the part that input file number `index` becomes."""
    return FileSystems.join(parts_dir, f"part-{index:05d}")


def npartitions_args(args: Sequence[str], n_files: int) -> list[str]:
    """`args` plus `--dask_npartitions=n_files` unless the user chose the partitioning: one task per file."""
    if any(a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in args):
        return list(args)
    return [*args, f"--dask_npartitions={max(n_files, 1)}"]


class _PartWriter:
    """Embeddings of one part in one format, to a temporary file renamed by `commit`."""

    def __init__(self, base: str, output_format: str, metadata: dict | None):
        self.output_format = output_format
        self.final = base + SUFFIXES[output_format]
        self.temp = f"{base}.{secrets.token_hex(4)}.tmp"
        self.rows: list[dict] = []
        if output_format == "parquet":
            import pyarrow.parquet as pq

            self.schema = records.parquet_schema(metadata)
            self.handle = FileSystems.create(self.temp)
            self.writer = pq.ParquetWriter(self.handle, self.schema)
        elif output_format == "tfrecord":
            from bert_tf.runtime import tf

            self.writer = tf.io.TFRecordWriter(self.temp)
        else:
            self.handle = FileSystems.create(self.temp)

    def write(self, e: Embedding) -> None:
        if self.output_format == "parquet":
            self.rows.append(records.to_parquet_row(e))
            if len(self.rows) >= PARQUET_BATCH_ROWS:
                self._flush()
        elif self.output_format == "tfrecord":
            self.writer.write(records.to_example(e))
        else:
            self.handle.write((records.to_json(e) + "\n").encode("utf-8"))

    def _flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def commit(self) -> None:
        if self.output_format == "parquet":
            self._flush()
            self.writer.close()
            self.handle.close()
        elif self.output_format == "tfrecord":
            self.writer.close()
        else:
            self.handle.close()
        FileSystems.rename([self.temp], [self.final])


def _write_whole(path: str, data: bytes) -> None:
    temp = f"{path}.{secrets.token_hex(4)}.tmp"
    with FileSystems.create(temp) as f:
        f.write(data)
    FileSystems.rename([temp], [path])


class EmbedFile(beam.DoFn):
    """`(index, input file)` -> that file's part: embeddings, dead letters and counts, in the staging folder."""

    def __init__(self, spec: EmbedSpec, parts_dir: str, output_format: str, input_format: str,
                 metadata: dict | None, batch_pieces: int = BATCH_PIECES):
        self.handler = BertModelHandler(spec)
        self.parts_dir, self.output_format, self.input_format = parts_dir, output_format, input_format
        self.metadata, self.batch_pieces = metadata, batch_pieces

    def setup(self):
        self.model = self.handler.load_model()

    def _batches(self, path: str) -> Iterator[list]:
        read = text_records if format_of(path, self.input_format) == "text" else json_records
        metadata = FileSystems.match([path])[0].metadata_list[0]
        batch, pieces = [], 0
        for element in read(fileio.ReadableFile(metadata)):
            checked = check_record(element)
            if isinstance(checked, DeadLetter):
                yield [checked]
                continue
            batch.append(checked)
            pieces += estimated_pieces(checked)
            if pieces >= self.batch_pieces:
                yield batch
                batch, pieces = [], 0
        if batch:
            yield batch

    def process(self, element):
        index, path = element
        base = part_name(self.parts_dir, index)
        counts = dict.fromkeys(_NAMES, 0)
        writer = _PartWriter(base, self.output_format, self.metadata)
        dead = []
        for batch in self._batches(path):
            if len(batch) == 1 and isinstance(batch[0], DeadLetter):
                results = batch
            else:
                results = self.handler.run_inference(batch, self.model)
            for result in results:
                if isinstance(result, Embedding):
                    writer.write(result)
                    counts["embedded"] += 1
                    counts["words"] += len(result.words)
                else:
                    dead.append(result.to_json() + "\n")
                    counts["dead_letters"] += 1
        writer.commit()
        _write_whole(base + DEAD_LETTERS + ".jsonl", "".join(dead).encode("utf-8"))
        _write_whole(base + _COUNTS, json.dumps(counts).encode("utf-8"))  # last: the part is whole
        yield index


def apply(p, files: Sequence[str], spec: EmbedSpec, staging: str, output_format: str, input_format: str,
          metadata: dict | None) -> None:
    """Adds the DaskRunner's graph for `files` to pipeline `p`: one `EmbedFile` task per file."""
    parts_dir = FileSystems.join(staging, PARTS)
    FileSystems.mkdirs(parts_dir)
    (p | "Files" >> beam.Create(list(enumerate(files)))
     | "EmbedFile" >> beam.ParDo(EmbedFile(spec, parts_dir, output_format, input_format, metadata)))


def finish(staged_prefix: str, staging: str, n_files: int, output_format: str) -> dict[str, int]:
    """Names the parts of a finished Dask run as the run's shards; returns the counts summed from the parts.

    Raises:
        RuntimeError: a part is missing (its task never finished): nothing is published.
    """
    parts_dir = FileSystems.join(staging, PARTS)
    counts = dict.fromkeys(_NAMES, 0)
    sources, targets, dead = [], [], []
    for index in range(n_files):
        base = part_name(parts_dir, index)
        try:
            with FileSystems.open(base + _COUNTS) as f:
                part = json.loads(f.read())
        except Exception:  # noqa: BLE001 - a missing or unreadable mark: the part is not whole
            raise RuntimeError(f"the DaskRunner finished without part {index} of {n_files} (input file "
                               f"{index + 1}); nothing was written: run it again") from None
        for name in _NAMES:
            counts[name] += part[name]
        sources.append(base + SUFFIXES[output_format])
        targets.append(f"{staged_prefix}-{index:05d}-of-{n_files:05d}{SUFFIXES[output_format]}")
        with FileSystems.open(base + DEAD_LETTERS + ".jsonl") as f:
            dead.append(f.read())
    FileSystems.rename(sources, targets)
    with FileSystems.create(f"{staged_prefix}{DEAD_LETTERS}.jsonl") as f:
        for chunk in dead:
            f.write(chunk)
    FileSystems.delete([parts_dir if "://" not in parts_dir else parts_dir + "/"])
    return counts


def run(pipeline, files: Sequence[str], spec: EmbedSpec, staging: str, staged_prefix: str, output_format: str,
        input_format: str, metadata: dict | None) -> dict[str, int]:
    """Runs the Dask graph for `files` on `pipeline` (a DaskRunner pipeline) and `finish`es it; returns the counts.

    The Dask client the runner opened is closed here, finished or failed, so that a launcher
    that runs on (a test, a notebook) holds no connection to the scheduler.
    """
    if "://" not in staging:
        staging = os.path.abspath(staging)  # the workers' working folder is not the launcher's
    apply(pipeline, files, spec, staging, output_format, input_format, metadata)
    try:
        result = pipeline.run()  # connects to the scheduler
    except OSError as e:
        raise InvalidValue(f"cannot reach the Dask scheduler ({e}); start it, or check --dask_client_address "
                           "or --dask_scheduler_file") from None
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()
    return finish(staged_prefix, staging, len(files), output_format)
