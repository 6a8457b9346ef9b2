"""`embed_corpus`: the whole run behind `bert-tf beam-embed`, read -> embed -> write, nothing half-done.

A run at output prefix `PREFIX` consists of

    PREFIX-00000-of-0000N.parquet (or .tfrecord / .jsonl)   the embeddings
    PREFIX-dead-letters.jsonl                               what could not be embedded, and why
    PREFIX-manifest.json                                    written last: the run is finished

How the outputs stay whole:

* Before anything runs: the input must match files and must not be an output; a
  prefix that already holds a run (any of the names above) is refused unless
  `force`. The checkpoint and the options are checked by loading the embedder in
  the launcher, which also records the `VectorSpace` of its vectors (with the
  precision it chose) and pins the workers to the same checkpoint and precision.
* The pipeline writes into a hidden staging folder beside the prefix
  (`.NAME.bert-tf-PID-HOST.XXXXXXXX.tmp`), through Beam's file sinks (temporary
  files renamed on success). A failed or interrupted run removes it; one killed
  outright leaves it for the next run in that folder to remove (its owner is gone).
* Only after the pipeline succeeded are the files moved to their final names: an
  old run's files are moved aside first (and put back if the move fails), the
  manifest comes last, then the old run is deleted. So the prefix holds the old run
  or the new one, never a mixture of shards from both. (Killed outright in the
  middle of those renames, the old run's files are left in `.NAME.bert-tf-XXXXXXXX.old`.)

The default runner is Beam's FnApiRunner (the DirectRunner's batch engine, in
process or with `--direct_running_mode=multi_processing`), chosen directly: the
DirectRunner would first try the PrismRunner, which downloads a binary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import tempfile
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from bert_tf import interrupts
from bert_tf.beam import runners
from bert_tf.beam.handler import EmbedSpec
from bert_tf.beam.sinks import DEAD_LETTERS, OUTPUT_FORMATS, SUFFIXES, WriteDeadLetters, WriteEmbeddings
from bert_tf.beam.sources import ReadTexts
from bert_tf.beam.transform import METRICS_NAMESPACE, EmbedTexts
from bert_tf.embed.corpus_format import run_metadata
from bert_tf.errors import InvalidValue
from bert_tf.store.remote import is_remote

logger = logging.getLogger("bert_tf")

MANIFEST = "-manifest.json"
#: Runner names that mean "run here": they get the FnApiRunner (never the PrismRunner).
LOCAL_RUNNERS = (None, "DirectRunner", "direct", "FnApiRunner", "SwitchingDirectRunner")
_SHARD = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What a run wrote, with Beam's counts (None where the runner reports none)."""

    output_format: str
    files: list[str]
    dead_letter_files: list[str]
    manifest: str
    embedded: int | None
    dead_letters: int | None
    words: int | None


def run_patterns(prefix: str) -> list[str]:
    """Globs of every file a run at `prefix` writes (any format), and nothing of a longer prefix. (Earlier
    versions named the dead letters `PREFIX-dead-letters-00000-of-00001.jsonl`: still theirs.)"""
    return ([prefix + _SHARD + suffix for suffix in SUFFIXES.values()]
            + [prefix + DEAD_LETTERS + ".jsonl", prefix + DEAD_LETTERS + _SHARD + ".jsonl", prefix + MANIFEST])


def run_files(prefix: str) -> list[str]:
    """The files of a run at `prefix` that exist now, sorted."""
    found = set()
    for result in FileSystems.match(run_patterns(prefix)):
        found.update(m.path for m in result.metadata_list)
    return sorted(found)


def check_output_prefix(prefix: str, *, force: bool, inputs: Sequence[str] = ()) -> list[str]:
    """Refuses an output prefix that would destroy something; returns the existing run's files.

    Raises:
        ValueError: the prefix names a folder or ends in a separator, or an input file is one of its outputs.
        FileExistsError: the prefix holds a run (finished or not) and `force` is false, or a
            `PREFIX-manifest.json` there that bert_tf did not write (whatever `force` says).
        OutputError: its folder does not exist (local outputs).
    """
    from bert_tf.files.owned import force_hint, is_run_manifest
    from bert_tf.files.run_paths import check_local_prefix

    directory, name = FileSystems.split(prefix)
    if not name:
        raise InvalidValue(f"--output {prefix} is a folder; give a file name prefix, e.g. {prefix.rstrip('/')}/corpus")
    if not is_remote(prefix):
        check_local_prefix(prefix)
    existing = run_files(prefix)
    overlap = {os.path.realpath(p) for p in existing} & {os.path.realpath(p) for p in inputs}
    if overlap:
        raise InvalidValue(f"--input includes {sorted(overlap)[0]}, an output of --output {prefix}; it would be "
                           "replaced while being read: write the output elsewhere")
    if existing and not force:
        finished = any(p.endswith(MANIFEST) for p in existing)
        what = "a finished run" if finished else f"{len(existing)} file(s) of an earlier run"
        raise FileExistsError(f"--output {prefix} already holds {what} ({os.path.basename(existing[0])}, ...); "
                              f"pass {force_hint()} to replace it as a whole, or choose another prefix")
    manifest = next((p for p in existing if p.endswith(MANIFEST)), None)
    if manifest is not None and not is_run_manifest(_read_json(manifest)):
        # The shard names alone could be another tool's: a manifest that is not ours says they are.
        raise FileExistsError(f"--output {prefix}: {os.path.basename(manifest)} is not the manifest of a "
                              f"bert-tf run, so the files at this prefix are never replaced, even with "
                              f"{force_hint()}; choose another prefix")
    return existing


def _read_json(path: str):
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read(1 << 24))
    except Exception:  # noqa: BLE001 - unreadable or not JSON: not a manifest of ours
        return None


def check_pipeline_args(args: Sequence[str]) -> None:
    """Refuses options that neither bert-tf nor Beam knows (Beam would drop them with a log line).

    Raises:
        ValueError: names the first unknown option.
    """
    options = PipelineOptions(list(args))
    known = set(options.get_all_options(drop_default=True, retain_unknown_options=False))
    unknown = sorted(set(options.get_all_options(drop_default=True, retain_unknown_options=True)) - known)
    if unknown:
        raise InvalidValue(f"unknown option --{unknown[0]}: it is neither a beam-embed option nor a Beam pipeline "
                           "option; see bert-tf beam-embed --help")


def is_local_runner(args: Sequence[str]) -> bool:
    """Whether these Beam options run the pipeline here (no runner given, or the DirectRunner)."""
    return PipelineOptions(list(args)).view_as(StandardOptions).runner in LOCAL_RUNNERS


def make_pipeline(args: Sequence[str] = ()) -> beam.Pipeline:
    """A pipeline with these Beam options; a local runner (or none given) runs on the FnApiRunner."""
    options = PipelineOptions(list(args))
    if is_local_runner(args):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        # What the DirectRunner does for its FnApiRunner, so that worker processes see the options too.
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)
    return beam.Pipeline(options=options)


def _staging_dir(prefix: str) -> str:
    directory, name = FileSystems.split(prefix)
    if is_remote(prefix):
        return FileSystems.join(directory, f".{name}.bert-tf-{secrets.token_hex(4)}.tmp")
    from bert_tf.files.output import FILE_SUFFIX, remove_stale_temps, temp_prefix

    remove_stale_temps(directory or ".")
    return tempfile.mkdtemp(prefix=temp_prefix(prefix), suffix=FILE_SUFFIX, dir=directory or ".")


def _remove_tree(path: str) -> None:
    try:
        FileSystems.delete([path if not is_remote(path) else path.rstrip("/") + "/"])
    except Exception as e:  # noqa: BLE001 - clean-up must not hide the run's own outcome
        logger.warning("could not remove the staging folder %s: %s", path, e)


def _counters(result) -> dict[str, int | None]:
    from apache_beam.metrics.metric import MetricsFilter

    names = ("embedded", "dead_letters", "words")
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics: the counts are unknown, the run is fine
        return dict.fromkeys(names)
    counts: dict[str, int | None] = dict.fromkeys(names, 0)  # a counter never incremented is not reported
    for r in found:
        value = r.committed if r.committed is not None else r.attempted
        if r.key.metric.name in counts and value is not None:
            counts[r.key.metric.name] = (counts[r.key.metric.name] or 0) + int(value)
    return counts


def _publish(staged: list[str], final: list[str], old: list[str], prefix: str) -> None:
    """Moves `staged` to `final` (the manifest last), replacing the run `old` as a whole."""
    directory, name = FileSystems.split(prefix)
    aside = []
    if old:
        # Not named like a staging folder: if this process is killed in the next few renames, the old
        # run's files wait here for the user instead of being removed as a dead run's debris.
        holder = FileSystems.join(directory, f".{name}.bert-tf-{secrets.token_hex(4)}.old")
        FileSystems.mkdirs(holder)
        aside = [FileSystems.join(holder, os.path.basename(p)) for p in old]
        FileSystems.rename(old, aside)
    moved = 0
    try:
        for source, target in zip(staged, final):
            FileSystems.rename([source], [target])
            moved += 1
    except BaseException:
        if moved:
            FileSystems.delete(final[:moved])
        if old:
            FileSystems.rename(aside, old)
        raise
    if old:
        _remove_tree(holder)


def embed_corpus(input_pattern: str, output_prefix: str, spec: EmbedSpec, *, output_format: str = "parquet",
                 input_format: str | None = None, pipeline_args: Sequence[str] = (), force: bool = False,
                 num_shards: int = 0) -> RunSummary:
    """Embeds every record of the files `input_pattern` matches into shards at `output_prefix`.

    Args:
        input_pattern: a glob of text files (a line per record) or JSON Lines (`id`, `text`).
        output_prefix: where the run goes (`out/corpus` -> `out/corpus-00000-of-00002.parquet`, ...).
        spec: the checkpoint and options.
        output_format: "parquet", "tfrecord" or "jsonl".
        input_format: "text" or "jsonl" for every file (None: each file by its suffix).
        pipeline_args: Beam pipeline options (`--runner DataflowRunner --project ...`).
        force: replace a run already at the prefix (as a whole, once the new one is finished).
        num_shards: embedding files to write; 0 lets the runner choose.

    Returns:
        A `RunSummary` of the files written and the counts.

    Raises:
        FileNotFoundError: the input matches no file.
        IsADirectoryError: it matches only folders.
        FileExistsError: the prefix holds a run and `force` is false.
        ValueError, OutputError, CheckpointError: bad options, output or checkpoint (one-line messages).
        RuntimeError: the pipeline failed (nothing was written under the final names).
    """
    from bert_tf.embed.options import check_choice
    from bert_tf.files.run_paths import check_matched

    check_choice("format", output_format, OUTPUT_FORMATS)
    pipeline_args = runners.prepare_pipeline_args(pipeline_args)  # DaskRunner: its name and its options
    check_pipeline_args(pipeline_args)
    if not is_remote(input_pattern):  # Beam's local match finds nothing for a bare relative glob ("in.*")
        input_pattern = os.path.abspath(input_pattern)
    matched = [m.path for r in FileSystems.match([input_pattern]) for m in r.metadata_list]
    check_matched(input_pattern, matched, lambda m: not is_remote(m) and os.path.isdir(m))
    check_output_prefix(output_prefix, force=force, inputs=matched)
    dask_files = on_dask_files(matched, num_shards) if runners.is_dask(pipeline_args) else None
    spec, space = pin(spec)
    metadata = run_metadata(space)

    staging = _staging_dir(output_prefix)
    try:
        staged_prefix = FileSystems.join(staging, FileSystems.split(output_prefix)[1])
        if dask_files is not None:  # the DaskRunner's own graph shape (bert_tf.beam.on_dask says why)
            from bert_tf.beam import on_dask

            counts = on_dask.run(make_pipeline(on_dask.npartitions_args(pipeline_args, len(dask_files))),
                                 dask_files, spec, staging, staged_prefix, output_format,
                                 input_format, metadata)
        else:
            with make_pipeline(pipeline_args) as p:
                out = (p | "Read" >> ReadTexts(input_pattern, input_format)
                       | "Embed" >> EmbedTexts(spec))
                out["embeddings"] | "Write" >> WriteEmbeddings(staged_prefix, output_format, metadata=metadata,
                                                               num_shards=num_shards)
                out["dead_letters"] | "WriteDeadLetters" >> WriteDeadLetters(staged_prefix)
            counts = _counters(p.result)
        staged = run_files(staged_prefix)
        manifest = staged_prefix + MANIFEST
        final_names = [output_prefix + path[len(staged_prefix):] for path in staged] + [output_prefix + MANIFEST]
        with FileSystems.create(manifest) as f:
            f.write(json.dumps({**metadata, "format": output_format, "input": input_pattern, "counts": counts,
                                "files": [os.path.basename(n) for n in final_names[:-1]]},
                               indent=1, sort_keys=True).encode("utf-8"))
        interrupts.check()  # a Ctrl-C that landed where Python could not raise it: publish nothing
        with _output_lock(output_prefix):
            old = check_output_prefix(output_prefix, force=force, inputs=matched)  # again: another run may have finished
            _publish(staged + [manifest], final_names, old, output_prefix)
    finally:
        _remove_tree(staging)
    files = final_names[:-1]
    dead = [n for n in files if DEAD_LETTERS in os.path.basename(n)[len(FileSystems.split(output_prefix)[1]):]]
    return RunSummary(output_format, [n for n in files if n not in dead], dead, final_names[-1],
                      counts["embedded"], counts["dead_letters"], counts["words"])


def on_dask_files(matched: Sequence[str], num_shards: int) -> list[str]:
    """The input files of a DaskRunner run, sorted and absolute (its workers do not share our working folder),
    one shard each; refuses a --num-shards it cannot keep."""
    files = sorted(m if is_remote(m) else os.path.abspath(m) for m in matched if is_remote(m) or not os.path.isdir(m))
    if num_shards not in (0, len(files)):
        raise InvalidValue(f"--num-shards {num_shards}: on the DaskRunner a run writes one shard per input file "
                           f"({len(files)} here); leave --num-shards out or split the input into {num_shards} files")
    return files


def _output_lock(prefix: str):
    import contextlib

    if is_remote(prefix):
        return contextlib.nullcontext()
    from bert_tf.files.atomic import target_lock

    return target_lock(prefix)


def pin(spec: EmbedSpec):
    """Loads `spec`'s embedder here and returns `(pinned spec, VectorSpace)`: the spec names the checkpoint
    folder that was resolved (None: the default; its absolute path, since a worker's working folder is not
    ours) and the precision that was chosen ("auto"), both read from the space the run records, so every
    worker embeds with what the launcher checked and recorded. A remote checkpoint is recorded by its URL,
    not by this machine's copy."""
    space = spec.load().space(spec.options)
    if spec.checkpoint is not None and is_remote(spec.checkpoint):
        space = space.at(spec.checkpoint)
    # The pinned spec loads this very embedder here: get_embedder's cache holds it under the same
    # folder, casing and precision.
    return dataclasses.replace(spec, checkpoint=space.path, precision=space.precision), space
