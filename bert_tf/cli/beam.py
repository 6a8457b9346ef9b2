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
      --project P --region us-central1 --temp_location gs://B/tmp \\
      --extra_package dist/bert_tf-0.1.0-py3-none-any.whl     # built with: python -m build --wheel
  bert-tf beam-embed --input 'corpus/part-*.txt' --output out/corpus \\
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
                        help="output prefix: PREFIX-00000-of-0000N.parquet ..., PREFIX-dead-letters.jsonl, "
                             "PREFIX-manifest.json")
    parser.add_argument("--format", choices=("parquet", "tfrecord", "jsonl"), default="parquet",
                        help="output format (default parquet)")
    parser.add_argument("--input-format", choices=("text", "jsonl"), default=None,
                        help="how to read every --input file (default: each by its suffix: .jsonl/.json as JSON Lines, any other as text)")
    parser.add_argument("--num-shards", type=int, default=0, metavar="N",
                        help="embedding files to write (default 0: the runner chooses)")
    parser.add_argument("--force", action="store_true",
                        help="replace a run already at PREFIX; it is replaced as a whole, and only once the "
                             "new run has finished")
    add_embedding_arguments(parser)


def _check_beam_args(beam_args: list[str]) -> None:
    from bert_tf.errors import UserError

    for arg in beam_args:
        if arg in ("--verbose", "-v"):
            raise UserError(f"{arg} goes before the command: bert-tf --verbose beam-embed ...")
        if arg.startswith("-") and not arg.startswith("--"):
            raise UserError(f"unknown option {arg}: it is neither a beam-embed option nor a Beam pipeline option "
                            "(Beam's options start with --); see bert-tf beam-embed --help")


def _check_local_paths(pattern: str, prefix: str) -> None:
    import glob

    from bert_tf.files.run_paths import check_local_prefix, check_matched
    from bert_tf.store.remote import is_remote

    if not is_remote(pattern):
        check_matched(pattern, glob.glob(pattern))
    if not is_remote(prefix):
        check_local_prefix(prefix)


def quiet_beam(verbose: bool) -> None:
    """Keeps Beam's logging (its own logger and the root logger it also writes to) off the terminal."""
    if verbose:
        return
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:  # else Beam's module-level logging.warning() calls basicConfig() and prints
        root.addHandler(logging.NullHandler())


def our_message(line: bytes) -> bytes | None:
    """The message of a line bert_tf wrote to stderr: ours (`bert-tf: ...`) or a worker process's
    `bert_tf` logger (`WARNING:bert_tf:...`, Beam's format); None for any other line."""
    if line.startswith(b"bert-tf: "):
        return line[len(b"bert-tf: "):]
    head, marker, message = line.partition(b":bert_tf:")
    if marker and len(head) < 40:
        return message
    return None


class ProgressLine:
    """Redraws one progress line (`bert_tf.beam.progress`) on a terminal every `interval` seconds.

    `fd` is the terminal (a duplicate of stderr, which the stderr filter replaces). Lines of ours
    printed meanwhile go through `write`, which clears the progress line first; at the end the
    last counts are drawn once and the line is cleared for the run's summary.
    """

    def __init__(self, fd: int, interval: float = 1.0):
        import time

        self.fd, self.interval, self.start = fd, interval, time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bert-tf progress", daemon=True)

    def _draw(self) -> None:
        import time

        from bert_tf.beam.progress import format_progress, snapshot

        line = f"\rbert-tf: {format_progress(snapshot(), time.monotonic() - self.start)}\x1b[K"
        with self.lock, contextlib.suppress(OSError):
            os.write(self.fd, line.encode("utf-8"))

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self._draw()

    def write(self, data: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            os.write(self.fd, b"\r\x1b[K" + data)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        self._draw()
        self.write(b"")


@contextlib.contextmanager
def showing_progress(show: bool, verbose: bool):
    """Counts and shows the run's progress on stderr while the block runs, when `show` (stderr is a
    terminal) and not `verbose` (Beam's own log lines would break the line up); yields the
    `ProgressLine`, or None."""
    if not show or verbose:
        yield None
        return
    from bert_tf.beam.progress import counting

    terminal = os.dup(2)  # fd 2 itself becomes the stderr filter's pipe while the pipeline runs
    try:
        with counting():
            yield ProgressLine(terminal)
    finally:
        os.close(terminal)


@contextlib.contextmanager
def only_our_lines_on_stderr(verbose: bool, progress: ProgressLine | None = None):
    """While the pipeline runs, lets through file descriptor 2 only the lines bert-tf writes.

    Beam's worker processes (`--direct_running_mode multi_processing`) inherit our stderr and log
    their start-up to it before any pipeline option can quiet them, and Beam's modules write
    warnings to the root logger as they are imported. A thread reads fd 2 through a pipe and
    passes on the lines that start with `bert-tf:` (ours, and bert_tf's logger in this process)
    or come from the `bert_tf` logger of a worker, each message once and in our format (every
    worker process loads the model and repeats the launcher's warnings). A worker's progress line
    is added to the tally of `progress` (drawn on the terminal above). `--verbose` shows everything.
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

    from bert_tf.beam.progress import read_line

    def forward():
        seen = set()
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if read_line(line):
                    continue
                message = our_message(line)
                if message is not None and message not in seen:  # every worker loads the model: warn once
                    seen.add(message)
                    if progress is not None:
                        progress.write(b"bert-tf: " + message)
                    else:
                        os.write(saved, b"bert-tf: " + message)

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
    from bert_tf.errors import UserError

    _check_beam_args(args.pass_through)
    if args.num_shards < 0:
        raise UserError(f"--num-shards must be 0 (the runner chooses) or more; got {args.num_shards}")
    _check_local_paths(args.input, args.output)  # before Beam and TensorFlow are imported: seconds
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

    checkpoint = args.checkpoint
    if checkpoint is not None and os.path.exists(checkpoint):  # named as the workers (absolute) name it
        checkpoint = os.path.abspath(checkpoint)
    spec = EmbedSpec(checkpoint, options_from_args(args), args.lower_case, args.precision)
    # In process, Beam re-raises Ctrl-C and SIGTERM as a RuntimeError: cli.main finds the interruption behind it.
    with showing_progress(sys.stderr.isatty(), args.verbose) as line, line or contextlib.nullcontext(), \
            only_our_lines_on_stderr(args.verbose, line):
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
