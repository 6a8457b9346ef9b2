"""The `bert-tf` command line (also `python -m bert_tf`).

Each sub-command is a function of the module that registers it (`COMMAND_MODULES`:
`commands`, `download`, `beam`, `index`, each with `add_commands`); user errors
(`bert_tf.errors.UserError`: a missing checkpoint, an unreadable file, a bad option
value) print one line and exit 1; anything else is a bug and keeps its traceback;
`--verbose` shows every traceback and TensorFlow's own logging.

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

from bert_tf.cli import beam, commands, download, index  # none imports TensorFlow, Beam or faiss
from bert_tf import interrupts
from bert_tf.errors import UserError
from bert_tf.logs import VERBOSE_ENV
from bert_tf.streams import ENV as STREAMS_ENV, process_streams_for

#: The modules that define the sub-commands, in `--help` order. Each has `add_commands(add)`, which
#: registers its commands with `add(name, help, **parser_options) -> parser` and sets each one's
#: `func` (`args` in, exit status out).
COMMAND_MODULES = (commands, download, beam, index)


#: The OSErrors that are the user's to fix as they are: a path that is missing, already there, a folder,
#: or not theirs to write. Any other OSError (and any exception that is not a `UserError`) is a bug or an
#: unforeseen case and keeps its traceback; failures writing the user's outputs are `OutputError`s, which
#: name the path and the reason.
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError)


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is the user's to fix, so the CLI prints it in one line without a traceback."""
    return isinstance(error, (UserError, *USER_OS_ERRORS))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bert-tf",
        description="Contextual word and sentence embeddings from Google's BERT checkpoints.",
        epilog="Run `bert-tf COMMAND --help` for a command's options and an example.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show tracebacks, progress detail and TensorFlow's logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_text, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return sub.add_parser(name, help=help_text, description=help_text, **kwargs)

    for module in COMMAND_MODULES:
        module.add_commands(add)
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
        os.environ.setdefault(VERBOSE_ENV, "1")
    size_thread_pools(args)
    _configure_logging(args.verbose)
    from bert_tf.files.targets import command_line_spelling

    previous = interrupts.install_handlers()
    interrupts.forget()
    try:
        with command_line_spelling():  # the library's messages say --force, not force=True
            return _run(args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def size_thread_pools(args) -> None:
    """Sets `BERT_TF_STREAMS` for a command that embeds, before anything starts TensorFlow (which sizes its
    pools once): `--streams N`, or split pools for a precision that runs faster on them
    (`bert_tf.streams.process_streams_for`)."""
    if not hasattr(args, "streams"):
        return
    streams = process_streams_for(args.streams, getattr(args, "precision", None))
    if streams is not None:
        os.environ[STREAMS_ENV] = str(streams)


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
        interrupt = interrupts.interrupt_behind(error)
        if interrupt is not None and not args.verbose:
            # Beam (in-process) re-raises a Ctrl-C or SIGTERM met in its worker code as a RuntimeError
            # ("KeyboardInterrupt [while running 'Embed/...']"): still an interruption, one line.
            return _interrupted(interrupt)
        if isinstance(error, OutputError) and error.filename == "stdout":
            _silence_stdout()
        if args.verbose or not is_user_error(error):
            raise
        print(f"bert-tf: error: {error}", file=sys.stderr)
        return 1
    signum = interrupts.received_signal()
    if signum is not None:  # a command that caught the interrupt itself (download) still ends as signalled
        return 128 + signum
    return code


def _interrupted(error: KeyboardInterrupt) -> int:
    """The one line and the shell's exit status for Ctrl-C (130) or a terminating signal (128 + N)."""
    signum = interrupts.received_signal()
    if signum in (None, signal.SIGINT) and isinstance(error, interrupts.Terminated):
        signum = error.signum
    if signum not in (None, signal.SIGINT):
        print(f"bert-tf: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    print("bert-tf: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
