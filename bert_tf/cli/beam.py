"""`bert-tf beam-embed`: a corpus embedded on Apache Beam, here or on a cluster, into sharded files.

Options this command does not know are Beam pipeline options and go to Beam
unchanged (`--runner DataflowRunner --project P --region R --temp_location gs://...`,
`--runner FlinkRunner --flink_master host:8081`, `--direct_num_workers 2`), so a
new runner needs no code here; one that Beam does not know either is refused, not
silently dropped. Beam's logging stays off the terminal unless `bert-tf --verbose`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading

from bert_tf.cli.flags import add_embedding_arguments, options_from_args

HELP = "embed a corpus with Apache Beam (here, or on Dataflow/Flink/Spark) into Parquet, TFRecord or JSON Lines"
EPILOG = """examples:
  bert-tf beam-embed --input 'corpus/*.txt' --output out/corpus
  bert-tf beam-embed --input corpus.txt --output out/corpus --direct_num_workers 2 \\
      --direct_running_mode multi_processing
  bert-tf beam-embed --input 'gs://B/corpus/*.txt' --output gs://B/out/corpus \\
      --checkpoint gs://B/checkpoints/uncased_L-12_H-768_A-12 --runner DataflowRunner \\
      --project P --region us-central1 --temp_location gs://B/tmp --setup_file ./setup.py
  bert-tf beam-embed --input 'corpus/part-*.txt' --output out/corpus \
      --runner DaskRunner --dask_client_address HOST:8786     # pip install "bert_tf[dask]"

Every other option is passed to Beam as a pipeline option. See docs/corpus.md."""


def add_commands(add) -> None:
    """Registers `bert-tf beam-embed` with `add(name, help, **parser_options) -> parser` of `bert_tf.cli.main`."""
    # Options bert-tf does not know go to Beam (`cli.main.parse_args`), exactly as written: no abbreviations.
    p = add("beam-embed", HELP, allow_abbrev=False)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `beam-embed` on `parser` (a sub-command parser of `bert-tf`)."""
    parser.set_defaults(pass_through=[])  # the options bert-tf does not know: Beam's (cli.main.parse_args)
    parser.epilog = EPILOG
    parser.add_argument("--input", "-i", required=True, metavar="GLOB",
                        help="files to embed: text (every line a record, id FILE:LINE) or JSON Lines with "
                             "'id' and 'text' (by the suffix .jsonl/.json, or --input-format); any Beam "
                             "filesystem (gs://...)")
    parser.add_argument("--output", "-o", required=True, metavar="PREFIX",
                        help="output prefix: PREFIX-00000-of-0000N.parquet ..., PREFIX-dead-letters-*.jsonl, "
                             "PREFIX-manifest.json")
    parser.add_argument("--format", choices=("parquet", "tfrecord", "jsonl"), default="parquet",
                        help="output format (default parquet)")
    parser.add_argument("--input-format", choices=("text", "jsonl"), default=None,
                        help="how to read --input (default: jsonl for .jsonl/.json files, else text)")
    parser.add_argument("--num-shards", type=int, default=0, metavar="N",
                        help="embedding files to write (default 0: the runner chooses)")
    parser.add_argument("--force", action="store_true",
                        help="replace a run already at PREFIX; it is replaced as a whole, and only once the "
                             "new run has finished")
    add_embedding_arguments(parser)


def _check_beam_args(beam_args: list[str]) -> None:
    from bert_tf.cli.commands import UserError

    for arg in beam_args:
        if arg in ("--verbose", "-v"):
            raise UserError(f"{arg} goes before the command: bert-tf --verbose beam-embed ...")
        if arg.startswith("-") and not arg.startswith("--"):
            raise UserError(f"unknown option {arg}: it is neither a beam-embed option nor a Beam pipeline option "
                            "(Beam's options start with --); see bert-tf beam-embed --help")


def quiet_beam(verbose: bool) -> None:
    """Keeps Beam's logging (its own logger and the root logger it also writes to) off the terminal."""
    if verbose:
        return
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:  # else Beam's module-level logging.warning() calls basicConfig() and prints
        root.addHandler(logging.NullHandler())


@contextlib.contextmanager
def only_our_lines_on_stderr(verbose: bool):
    """While the pipeline runs, lets through file descriptor 2 only the lines bert-tf writes.

    Beam's worker processes (`--direct_running_mode multi_processing`) inherit our stderr and log
    their start-up to it before any pipeline option can quiet them, and Beam's modules write
    warnings to the root logger as they are imported. A thread reads fd 2 through a pipe and
    passes on the lines that start with `bert-tf:` (ours, and bert_tf's logger in this process)
    or come from the `bert_tf` logger of a worker. `--verbose` shows everything.
    """
    if verbose:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if line.startswith(b"bert-tf:") or b":bert_tf:" in line[:40]:
                    os.write(saved, line)

    pump = threading.Thread(target=forward, name="bert-tf stderr filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe closes once the workers, which hold it too, are gone
        pump.join(timeout=10)
        os.close(saved)


def run(args) -> int:
    """Runs `beam-embed`; prints what was written and how many records went to dead letters."""
    from bert_tf.cli.commands import UserError

    _check_beam_args(args.pass_through)
    if args.num_shards < 0:
        raise UserError(f"--num-shards must be 0 (the runner chooses) or more; got {args.num_shards}")
    quiet_beam(args.verbose)
    try:
        from bert_tf.beam import require_beam

        require_beam()
    except ImportError as e:
        raise UserError(str(e)) from None
    from bert_tf.beam.handler import EmbedSpec
    from bert_tf.beam.pipeline import embed_corpus, is_local_runner

    beam_args = list(args.pass_through)
    if not args.verbose and is_local_runner(beam_args) and \
            not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
        beam_args.append("--default_sdk_harness_log_level=WARNING")  # worker processes log to our stderr

    spec = EmbedSpec(args.checkpoint, options_from_args(args), args.lower_case, args.precision)
    with only_our_lines_on_stderr(args.verbose):
        summary = embed_corpus(args.input, args.output, spec, output_format=args.format,
                               input_format=args.input_format, pipeline_args=beam_args, force=args.force,
                               num_shards=args.num_shards)
    count = "?" if summary.embedded is None else f"{summary.embedded:,}"
    dead = "?" if summary.dead_letters is None else f"{summary.dead_letters:,}"
    print(f"bert-tf: wrote {count} text(s) to {_names(summary.files)} ({summary.output_format}); "
          f"{dead} to dead letters ({_names(summary.dead_letter_files)}); manifest {summary.manifest}",
          file=sys.stderr)
    return 0


def _names(paths: list[str]) -> str:
    if len(paths) <= 2:
        return ", ".join(paths) or "no file"
    return f"{paths[0]} ... {os.path.basename(paths[-1])} ({len(paths)} files)"
