"""The `bert-tf` command line (also `python -m bert_tf`).

Each sub-command is a function of `bert_tf.cli.commands`; user errors (a missing
checkpoint, an unreadable file, a bad option value) print one line and exit
non-zero; `--verbose` shows the traceback and TensorFlow's own logging.

Output files are never destroyed: an existing one is replaced only with
`--force`, a folder only if bert_tf wrote it (`bert_tf.files.owned`), the input
is never the output, and every file is written to a
temporary beside it and renamed into place on success (`bert_tf.files.output`), so a
failed, interrupted (Ctrl-C, SIGTERM) or killed run leaves the old file as it
was; debris of a killed run is removed by the next run writing to that folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from bert_tf.cli import commands
from bert_tf.cli.commands import UserError
from bert_tf.cli.flags import add_embedding_arguments, add_precision_argument

EPILOG_EXAMPLES = {
    "embed": "examples:\n  bert-tf embed \"A mouse is a rodent animal.\" \"A mouse is a computer device.\"\n"
             "  bert-tf embed --input sentences.txt --output vectors.jsonl\n"
             "  cat sentences.txt | bert-tf embed --format npz --output vectors.npz --dim 128",
    "similarity": "example:\n  bert-tf similarity --words mouse,rat,keyboard \"A mouse is a rodent animal.\" "
                  "\"A mouse is a computer device.\" \"A rat is an animal that lives in the sewers.\" "
                  "\"A computer has a keyboard as an input device.\" --plot heatmap.png",
    "plot": "example:\n  bert-tf plot bank --input bank_sentences.txt --out bank.png",
    "demo": "example: bert-tf demo --checkpoint checkpoints/uncased_L-12_H-768_A-12",
    "info": "example: bert-tf info checkpoints/uncased_L-12_H-768_A-12",
    "convert": "example: bert-tf convert path/to/hf_model checkpoints/my-model",
    "download": "example: bert-tf download uncased_L-12_H-768_A-12",
    "export": "example: bert-tf export --checkpoint checkpoints/uncased_L-12_H-768_A-12 --out exports/bert "
              "--version 1",
}


FORCE_HELP = ("replace {what} if it exists (without --force an existing file is refused); the new file "
              "takes its place only once complete, so a failed run leaves the old one as it was")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every writer removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _user_errors():
    """Exception types that are the user's to fix (shown without a traceback)."""
    from bert_tf.model.checkpoint import CheckpointError
    from bert_tf.model.convert import ConversionError
    from bert_tf.files.output import OutputError
    from bert_tf.store.resolve import CheckpointNotFoundError

    # OutputError, not OSError: only failures writing the user's outputs are wrapped as one (naming
    # the path and the reason); any other OSError is a bug or an unforeseen case and keeps its traceback.
    return (UserError, CheckpointError, ConversionError, CheckpointNotFoundError, OutputError, FileNotFoundError,
            FileExistsError, IsADirectoryError, PermissionError, ValueError, TypeError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bert-tf",
        description="Contextual word and sentence embeddings from Google's BERT checkpoints.",
        epilog="Run `bert-tf COMMAND --help` for a command's options and an example.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show tracebacks, progress detail and TensorFlow's logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_text, **kwargs):
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG_EXAMPLES.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    p = add("demo", "the research notebook's mouse/rat/keyboard and lean/greasy/tilt experiments")
    p.add_argument("--checkpoint", help="checkpoint directory (default: BERT_TF_CHECKPOINT, then "
                                        "checkpoints/uncased_L-12_H-768_A-12, then the offline model)")
    add_precision_argument(p)
    p.set_defaults(func=commands.demo)

    p = add("embed", "embed sentences into word vectors (with offsets) and sentence vectors, as JSONL or NPZ")
    p.add_argument("sentences", nargs="*", help="sentences to embed (or use --input / stdin)")
    p.add_argument("--input", "-i", help="text file, one sentence per line ('-' for stdin)")
    p.add_argument("--output", "-o", help="output file (default stdout); a name ending in .npz implies "
                                          "--format npz; an existing file is replaced only with --force")
    p.add_argument("--format", choices=("jsonl", "npz"), help="output format (default jsonl)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--output"))
    p.add_argument("--strict", action="store_true", help="stop at the first line that cannot be embedded")
    p.add_argument("--progress", action="store_true", help="always show the progress bar (default: on a terminal)")
    p.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    add_embedding_arguments(p)
    p.set_defaults(func=commands.embed)

    p = add("similarity", "cosine similarity of words across sentences (the notebook's experiment)")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--words", "-w", required=True, help="comma-separated target words, e.g. mouse,rat,keyboard")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--plot", help="also save an annotated heatmap PNG here (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--plot"))
    add_embedding_arguments(p)
    p.set_defaults(func=commands.similarity)

    p = add("plot", "2-D PCA of one word's vectors across sentences, saved as PNG (senses show as clusters)")
    p.add_argument("word", help="the word to follow")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--out", "-o", required=True, help="PNG file to write (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--out"))
    add_embedding_arguments(p)
    p.set_defaults(func=commands.plot)

    p = add("info", "print a checkpoint's config, parameter count, casing and load report")
    p.add_argument("checkpoint", nargs="?", help="checkpoint directory (default: as for demo)")
    p.set_defaults(func=commands.info)

    p = add("convert", "convert Hugging Face BERT weights (config.json + model.safetensors) to Google's layout")
    p.add_argument("hf_dir", help="directory with config.json, model.safetensors and vocab.txt")
    p.add_argument("out_dir", help="checkpoint directory to write")
    p.add_argument("--force", action="store_true",
                   help="replace out_dir if it is a checkpoint bert-tf wrote (any other folder is never replaced)")
    p.set_defaults(func=commands.convert)

    from bert_tf.cli import download

    p = add("download", "fetch, verify and unpack one of Google's BERT checkpoints into checkpoints/")
    download.add_arguments(p)
    p.set_defaults(func=download.run)

    p = add("export", "export a SavedModel for TensorFlow Serving / TF Hub (tokenizer in the graph)")
    p.add_argument("--out", default="exports/bert", metavar="DIR",
                   help="model base directory; the SavedModel goes to DIR/VERSION/ (default: exports/bert)")
    p.add_argument("--version", type=int, default=1, help="model version directory (default: 1)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR/VERSION/ if bert-tf exported it (any other folder is never replaced)")
    add_embedding_arguments(p, batching=False)
    p.set_defaults(func=commands.export)

    from bert_tf.cli import beam as beam_command

    # Options bert-tf does not know go to Beam (`parse_args` below), exactly as written: no abbreviations.
    p = add("beam-embed", beam_command.HELP, allow_abbrev=False)
    beam_command.add_arguments(p)
    p.set_defaults(func=beam_command.run)

    from bert_tf.cli import index as index_commands

    index_commands.add_commands(add)  # index build, search, senses, neighbors, shift
    return parser


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bert-tf: %(message)s"))
    logger = logging.getLogger("bert_tf")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    if not verbose:
        # Warnings, and the few info lines the library marks as the user's to see (`ANNOUNCE`,
        # e.g. what precision="auto" chose and why); the rest of the info lines need --verbose.
        from bert_tf.logs import ANNOUNCE

        handler.addFilter(lambda record: record.levelno >= logging.WARNING or getattr(record, ANNOUNCE, False))
    logger.propagate = False


#: Signals that end a run the way Ctrl-C does (temporaries removed), with the shell's exit status 128 + N.
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []


def _on_terminating_signal(signum, frame):
    _received.append(signum)
    # A second signal must not interrupt the clean-up the first one started.
    signal.signal(signum, signal.SIG_IGN)
    raise Terminated(signum)


def _install_signal_handlers() -> dict:
    """Makes SIGTERM/SIGHUP unwind like Ctrl-C; returns the previous handlers. Signals already ignored
    (`nohup`) stay ignored; off the main thread (an embedding application) nothing is changed."""
    previous = {}
    for signum in _TERMINATING:
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                previous[signum] = signal.signal(signum, _on_terminating_signal)
        except ValueError:
            break
    return previous


def _silence_stdout() -> None:
    """Points fd 1 at /dev/null after stdout failed, so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """`parser.parse_args`, except that a command which sets `pass_through` keeps the options it
    does not know in `args.pass_through` (beam-embed hands them to Beam) instead of failing."""
    args, extras = parser.parse_known_args(argv)
    if getattr(args, "pass_through", None) is not None:
        args.pass_through = extras
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        os.environ.setdefault("BERT_TF_VERBOSE_TF", "1")
    _configure_logging(args.verbose)
    from bert_tf.files.owned import command_line_spelling

    previous = _install_signal_handlers()
    del _received[:]
    try:
        with command_line_spelling():  # the library's messages say --force, not force=True
            return _run(args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args) -> int:
    from bert_tf.files.output import OutputError, output_errors

    try:
        if args.command in ("info", "demo") and sys.stdout is None:
            raise OutputError("stdout", "it is closed; redirect it to a file")
        code = int(args.func(args) or 0)
        if sys.stdout is not None:
            with output_errors("stdout"):
                sys.stdout.flush()  # a full disk shows here, not as a warning at exit
    except KeyboardInterrupt as error:
        return _interrupted(error)
    except BrokenPipeError:  # `bert-tf embed ... | head`
        _silence_stdout()
        return 0
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs below
        interrupt = _interrupt_behind(error)
        if interrupt is not None and not args.verbose:
            # Beam (in-process) re-raises a Ctrl-C or SIGTERM met in its worker code as a RuntimeError
            # ("KeyboardInterrupt [while running 'Embed/...']"): still an interruption, one line.
            return _interrupted(interrupt)
        if isinstance(error, OutputError) and error.filename == "stdout":
            _silence_stdout()
        if args.verbose or not isinstance(error, _user_errors()):
            raise
        print(f"bert-tf: error: {error}", file=sys.stderr)
        return 1
    if _received:  # a command that caught the interrupt itself (download) still ends as signalled
        return 128 + _received[0]
    return code


def _interrupted(error: KeyboardInterrupt) -> int:
    """The one line and the shell's exit status for Ctrl-C (130) or a terminating signal (128 + N)."""
    if _received or isinstance(error, Terminated):
        signum = _received[0] if _received else error.signum
        print(f"bert-tf: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    print("bert-tf: interrupted", file=sys.stderr)
    return 130


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or terminating signal an exception was raised while handling, if any (its cause/context)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    if _received:
        return Terminated(_received[0])
    return None


if __name__ == "__main__":
    sys.exit(main())
