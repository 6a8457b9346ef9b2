"""`bert-tf download` and `scripts/download_checkpoint.py`: one set of flags, one way of failing.

The work is `bert_tf.store.download.download_checkpoint`; this module parses the
flags, prints the checkpoint directory (or `--list`), and turns every expected
failure into one line `PROG: error: ...`. SIGTERM unwinds like Ctrl-C.
Standard library only: the script runs without NumPy or TensorFlow installed.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from bert_tf.errors import UserError
from bert_tf.files.layout import is_complete
from bert_tf.files.targets import command_line_spelling
from bert_tf.store.download import check_sha256, download_checkpoint
from bert_tf.store.messages import human
from bert_tf.store.registry import DEFAULT_CHECKPOINT, OFFLINE_DISTRIBUTION, OFFLINE_MODEL, REGISTRY, lower_case_for

__all__ = ["CLI_HELP", "add_arguments", "add_commands", "run"]

#: One line for `--help` of both the script and `bert-tf download`.
CLI_HELP = "Download one of Google's BERT checkpoints (or build the offline one) into checkpoints/NAME/."


def _sha256_arg(value: str) -> str:
    try:
        return check_sha256(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds; got {value!r}")
    return number


def _non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the download options to `parser` (the script and `bert-tf download` share them)."""
    # `run` names the program in its error lines: "bert-tf" for `bert-tf download`.
    parser.set_defaults(download_prog=parser.prog.split()[0])
    parser.add_argument(
        "name", nargs="?", default=None, metavar="NAME",
        help=f"checkpoint to fetch (default {DEFAULT_CHECKPOINT}; {OFFLINE_MODEL} is built offline from "
             f"the {OFFLINE_DISTRIBUTION} package). With --url or --from-zip, the folder name "
             "(default: the zip's file name)")
    parser.add_argument("--list", action="store_true", help="list the known checkpoints and exit")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help="download this zip instead: a mirror, or any checkpoint in Google's layout")
    source.add_argument("--from-zip", metavar="PATH", help="unpack a zip you downloaded by hand")
    parser.add_argument("--dest", default="checkpoints", metavar="DIR",
                        help="root folder; the checkpoint goes to DIR/NAME/ (default: checkpoints)")
    parser.add_argument("--sha256", type=_sha256_arg, metavar="HEX",
                        help="expected SHA-256 of the zip, checked before unpacking")
    parser.add_argument("--force", action="store_true",
                        help="redo it even when DIR/NAME/ is already complete (a DIR/NAME/ that bert-tf did not "
                             "write is never replaced)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar or status lines")
    parser.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                        help="connect and read timeout (default: 30)")
    parser.add_argument("--retries", type=_non_negative_int, default=5, metavar="N",
                        help="attempts in a row that may fail without progress before giving up (default: 5)")


def add_commands(add) -> None:
    """Registers `bert-tf download` with `add(name, help, **parser_options) -> parser` of `bert_tf.cli.main`."""
    p = add("download", "fetch, verify and unpack one of Google's BERT checkpoints into checkpoints/",
            epilog=f"example: bert-tf download {DEFAULT_CHECKPOINT}")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the parsed command; returns the exit code.

    Prints the checkpoint directory on stdout, or one line `PROG: error: ...` on
    stderr (exit 1; 130 for Ctrl-C, 143 for SIGTERM), never a traceback for an
    expected failure. SIGTERM unwinds like Ctrl-C: the partial download is kept
    for resuming and no staging folder is left.
    """
    prog = getattr(args, "download_prog", None) or "bert-tf"
    if args.list:
        print(_format_list(Path(args.dest)))
        return 0
    with _sigterm_as_interrupt() as terminated, command_line_spelling():
        try:
            path = download_checkpoint(args.name, url=args.url, from_zip=args.from_zip, dest=args.dest,
                                       sha256=args.sha256, force=args.force, progress=args.progress,
                                       timeout=args.timeout, retries=args.retries)
        except KeyboardInterrupt as e:
            print(f"{prog}: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
            return 143 if terminated else 130
        except (UserError, OSError) as e:  # DownloadError is a UserError; a plain ValueError is a bug
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 1
    print(path)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a download runs, SIGTERM raises KeyboardInterrupt so that everything unwinds as for Ctrl-C.

    Yields a list that holds the signal number once SIGTERM arrived. A handler the
    caller installed already (the `bert-tf` command line's) is left in charge.
    """
    received: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _format_list(dest: Path) -> str:
    rows = [(spec.name + (" (default)" if spec.name == DEFAULT_CHECKPOINT else ""),
             "uncased" if spec.lower_case else "cased", human(spec.size) if spec.size else "-",
             "yes" if is_complete(dest / spec.name) else "",
             spec.description) for spec in REGISTRY.values()]
    rows.append((OFFLINE_MODEL + " (offline)", "uncased" if lower_case_for(OFFLINE_MODEL) else "cased", "-",
                 "yes" if is_complete(dest / OFFLINE_MODEL) else "",
                 f"all-MiniLM-L6-v2 sentence embeddings, built from the {OFFLINE_DISTRIBUTION} package"))
    header = ("NAME", "CASE", "SIZE", "IN " + str(dest), "DESCRIPTION")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
             for row in [header] + rows]
    return "\n".join(line.rstrip() for line in lines)
