"""The `bert-tf` command line (also `python -m bert_tf`).

Each sub-command lives in a `_cmd_*` function; user errors (a missing
checkpoint, an unreadable file, a bad option value) print one line and exit
non-zero; `--verbose` shows the traceback and TensorFlow's own logging.

Output files are never destroyed: an existing one is replaced only with
`--force`, the input is never the output, and every file is written to a
temporary beside it and renamed into place on success (`bert_tf.fileio`), so a
failed, interrupted (Ctrl-C, SIGTERM) or killed run leaves the old file as it
was; debris of a killed run is removed by the next run writing to that folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import stat
import sys

from bert_tf.embed.flags import add_embedding_arguments

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


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every writer removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _user_errors():
    """Exception types that are the user's to fix (shown without a traceback)."""
    from bert_tf.model.checkpoint import CheckpointError
    from bert_tf.model.convert import ConversionError
    from bert_tf.fileio import OutputError
    from bert_tf.store.resolve import CheckpointNotFoundError

    # OutputError, not OSError: only failures writing the user's outputs are wrapped as one (naming
    # the path and the reason); any other OSError is a bug or an unforeseen case and keeps its traceback.
    return (UserError, CheckpointError, ConversionError, CheckpointNotFoundError, OutputError, FileNotFoundError,
            FileExistsError, IsADirectoryError, PermissionError, ValueError, TypeError)


def _cmd_demo(args) -> int:
    from bert_tf.demo import run_demo

    run_demo(args.checkpoint)
    return 0


def _cmd_info(args) -> int:
    from bert_tf.model.checkpoint import load_encoder, resolve_checkpoint_prefix
    from bert_tf.fileio import output_errors
    from bert_tf.store.resolve import resolve_checkpoint
    from bert_tf.text.tokenization import infer_lower_case, load_vocab

    directory = resolve_checkpoint(args.checkpoint)
    directory, prefix = resolve_checkpoint_prefix(directory)
    config, encoder, report = load_encoder(directory, return_report=True)
    vocab = load_vocab(os.path.join(directory, "vocab.txt"))
    name = os.path.basename(os.path.normpath(directory))
    lower = infer_lower_case(vocab, name)
    with output_errors("stdout"):
        print(f"checkpoint: {directory}")
        print(f"casing:     {'uncased (lower-cases and strips accents)' if lower else 'cased'}")
        print(f"vocabulary: {len(vocab):,} word pieces")
        print(f"parameters: {report.parameters:,}")
        print("config:")
        for key, value in config.to_dict().items():
            print(f"  {key:<30} {value}")
        print(f"load:       {report}")
    return 0


def _cmd_convert(args) -> int:
    from bert_tf.model.checkpoint import load_encoder
    from bert_tf.model.convert import convert_hf_checkpoint

    out = convert_hf_checkpoint(args.hf_dir, args.out_dir, force=args.force)
    _, _, report = load_encoder(out, return_report=True)
    print(f"wrote {out} ({report.restored} tensors, {report.parameters:,} parameters); it loads cleanly")
    return 0


@dataclasses.dataclass
class _Input:
    """The input being read: its lines, their count if known, the file to close, what it is on disk."""

    lines: object  # Iterator[Line]
    total: int | None = None
    handle: object = None
    stats: list = dataclasses.field(default_factory=list)  # [(name, os.stat_result)] for same-file checks

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _open_input(args) -> _Input:
    """Positional sentences, --input FILE ('-': stdin; pipes and FIFOs are read once, as streams), or stdin."""
    from bert_tf.writers import Line, count_lines, read_lines

    if args.sentences:
        if args.input:
            raise UserError("give sentences as arguments or --input FILE, not both")
        named = next((s for s in args.sentences if os.path.isfile(s)), None)
        if named is not None:
            print(f"bert-tf: warning: {named!r} is a file, but it is embedded as the text {named!r}; "
                  f"to embed the file's lines use --input {named}", file=sys.stderr)
        return _Input(iter([Line(i, s) for i, s in enumerate(args.sentences, start=1)]), len(args.sentences))
    if args.input and args.input != "-":
        try:
            handle = open(args.input, "rb")
            st = os.fstat(handle.fileno())
        except OSError as e:
            raise UserError(f"cannot read {args.input}: {e.strerror}") from None
        try:
            total = count_lines(args.input)
        except OSError:
            total = None  # only the progress bar's total
        return _Input(read_lines(handle), total, handle, [(args.input, st)])
    if sys.stdin is None:
        raise UserError("stdin is closed: give sentences as arguments or --input FILE")
    if sys.stdin.isatty() and not args.input:
        raise UserError("no input: give sentences as arguments, --input FILE, or pipe text on stdin")
    try:
        stats = [("stdin", os.fstat(sys.stdin.fileno()))]
    except (OSError, ValueError, AttributeError):  # a replaced sys.stdin (tests, notebooks)
        stats = []
    return _Input(read_lines(sys.stdin.buffer), None, None, stats)


def _check_stdout(inputs) -> None:
    """Refuses a closed stdout, and one redirected into the file being read (`>> input.txt` never ends)."""
    from bert_tf.fileio import OutputError

    if sys.stdout is None:
        raise OutputError("stdout", "it is closed; give --output FILE")
    try:
        out = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return
    for name, st in inputs:
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise UserError(f"stdout is the input file {name}; it would grow while being read: "
                            "redirect the output to another file")


def _vector_widths(embedder, options) -> tuple[int, int]:
    """(word vector width, sentence vector width) under `options`, from embedding one word."""
    words, sentence = next(iter(embedder.iter_embed(["x"], **options)))
    return int(words[0].vector.shape[0]), int(sentence.shape[0])


def _chunked(iterator, size):
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _cmd_embed(args) -> int:
    import time

    from bert_tf.embed.api import get_embedder
    from bert_tf.fileio import check_output
    from bert_tf.writers import Record, open_output

    to_file = args.output not in (None, "-")
    # The suffix in any case (`x.NPZ`): the format follows what the name says.
    fmt = args.format or ("npz" if to_file and args.output.lower().endswith(".npz") else "jsonl")
    if fmt == "npz" and not to_file:
        raise UserError("--format npz needs --output FILE.npz (a zip cannot stream to stdout)")
    source = _open_input(args)
    try:
        # Every refusal comes before the model is loaded and before anything is written.
        if to_file:
            check_output(args.output, force=args.force, inputs=source.stats)
        else:
            _check_stdout(source.stats)
        embedder = get_embedder(args.checkpoint, lower_case=args.lower_case)
        options = dict(layers=args.layers, combine=args.combine, subword_pooling=args.subword_pooling,
                       dim=args.dim, sentence_strategy=args.sentence_strategy,
                       sentence_layer=args.sentence_layer, batch_size=args.batch_size,
                       max_seq_length=args.max_seq_length, progress=False)
        list(embedder.iter_embed([], **options))  # validates every option before any output is opened
        writer = open_output(args.output, fmt, widths=lambda: _vector_widths(embedder, options))
        written = skipped = 0
        bar = _progress_bar(source.total, args)
        start = time.perf_counter()
        try:
            # Lines are read and length-sorted this many at a time: enough to batch short with short.
            for chunk in _chunked(source.lines, max((args.batch_size or 64) * 16, 256)):
                good = []
                for line in chunk:
                    if line.problem is None:
                        good.append(line)
                        continue
                    if args.strict:
                        raise UserError(f"line {line.number}: {line.problem} (--strict stops here)")
                    print(f"bert-tf: skipped line {line.number}: {line.problem}", file=sys.stderr)
                    skipped += 1
                results = embedder.iter_embed([line.text for line in good], **options)
                writer.write([Record(line.number, line.text, words, sentence)
                              for line, (words, sentence) in zip(good, results)])
                written += len(good)
                if bar is not None:
                    bar.update(len(chunk))
                    bar.set_postfix_str(f"{written / max(time.perf_counter() - start, 1e-9):.1f} sentences/s")
            if skipped and not written:
                where = f"; {args.output} was not written" if to_file else ""
                raise UserError(f"all {skipped} line(s) of the input were skipped, nothing was embedded{where}")
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
    finally:
        source.close()
    where = args.output if to_file else "stdout"
    print(f"bert-tf: wrote {written} line(s) to {where} as {fmt}; skipped {skipped}", file=sys.stderr)
    return 1 if skipped and args.strict else 0


def _progress_bar(total, args):
    if args.no_progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="line", file=sys.stderr, desc="embedding", dynamic_ncols=True,
                disable=None if not args.progress else False)


def _gather_sentences(args, outputs=()) -> list[str]:
    """The non-empty input lines; `outputs` `[(path, option)]` are checked against the input first.

    Raises:
        UserError: an undecodable line, or no sentence at all.
    """
    from bert_tf.fileio import check_output
    from bert_tf.plotting import check_png_path

    source = _open_input(args)
    try:
        for path, option in outputs:
            check_png_path(path, option=option)
            check_output(path, force=args.force, inputs=source.stats, option=option)
        out = []
        for line in source.lines:
            if line.problem is not None:
                raise UserError(f"line {line.number}: {line.problem}")
            if line.text.strip():
                out.append(line.text)
    finally:
        source.close()
    if not out:
        raise UserError("no sentences: the input has no non-empty line; give sentences as arguments or "
                        "--input FILE with one per line")
    return out


def _cmd_similarity(args) -> int:
    from bert_tf.embed.api import get_embedder
    from bert_tf.similarity import cosine_matrix, format_table, pick_words

    from bert_tf.fileio import output_errors

    targets = [w.strip() for w in args.words.split(",") if w.strip()]
    if not targets:
        raise UserError("--words needs at least one word, e.g. --words mouse,rat,keyboard")
    _check_stdout([])
    sentences = _gather_sentences(args, [(args.plot, "--plot")] if args.plot else [])
    embedder = get_embedder(args.checkpoint, lower_case=args.lower_case)
    if embedder.lower_case:
        targets = [t.lower() for t in targets]
    results = embedder.embed_words(sentences, layers=args.layers, combine=args.combine,
                                   subword_pooling=args.subword_pooling, dim=args.dim,
                                   batch_size=args.batch_size, max_seq_length=args.max_seq_length)
    embeddings = [{w.text: w.vector for w in reversed(words)} for words in results]
    picked = pick_words(embeddings, targets)
    matrix = cosine_matrix([p.vector for p in picked])
    with output_errors("stdout"):
        for i, sentence in enumerate(sentences, start=1):
            print(f"[{i}] {sentence}")
        print()
        print(format_table([p.label for p in picked], matrix))
        sys.stdout.flush()
    if args.plot:
        from bert_tf.plotting import save_heatmap

        save_heatmap([p.label for p in picked], matrix, args.plot, title="cosine similarity of words in context")
        print(f"\nsaved {args.plot}", file=sys.stderr)
    return 0


def _cmd_plot(args) -> int:
    from bert_tf.embed.api import get_embedder
    from bert_tf.plotting import save_projection

    sentences = _gather_sentences(args, [(args.out, "--out")])
    embedder = get_embedder(args.checkpoint, lower_case=args.lower_case)
    word = args.word.lower() if embedder.lower_case else args.word
    vectors, labels = [], []
    for i, (sentence, words) in enumerate(zip(sentences, embedder.embed_words(
            sentences, layers=args.layers, combine=args.combine, subword_pooling=args.subword_pooling,
            batch_size=args.batch_size, max_seq_length=args.max_seq_length)), start=1):
        for w in words:
            if w.text == word:
                vectors.append(w.vector)
                labels.append(f"{i}: {sentence.strip()}")
    if not vectors:
        raise UserError(f"the word {word!r} is in none of the {len(sentences)} sentences")
    save_projection(word, vectors, labels, args.out)
    print(f"saved {args.out} ({len(vectors)} occurrences of {word!r})", file=sys.stderr)
    return 0


def _cmd_export(args) -> int:
    from bert_tf.serve.export import export_saved_model

    path = export_saved_model(args.checkpoint, args.out, version=args.version, layers=args.layers,
                              combine=args.combine, subword_pooling=args.subword_pooling, dim=args.dim,
                              max_seq_length=args.max_seq_length, lower_case=args.lower_case,
                              sentence_strategy=args.sentence_strategy, sentence_layer=args.sentence_layer,
                              force=args.force)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bert-tf",
        description="Contextual word and sentence embeddings from Google's BERT checkpoints.",
        epilog="Run `bert-tf COMMAND --help` for a command's options and an example.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show tracebacks, progress detail and TensorFlow's logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG_EXAMPLES.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("demo", "the research notebook's mouse/rat/keyboard and lean/greasy/tilt experiments")
    p.add_argument("--checkpoint", help="checkpoint directory (default: BERT_TF_CHECKPOINT, then "
                                        "checkpoints/uncased_L-12_H-768_A-12, then the offline model)")
    p.set_defaults(func=_cmd_demo)

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
    p.set_defaults(func=_cmd_embed)

    p = add("similarity", "cosine similarity of words across sentences (the notebook's experiment)")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--words", "-w", required=True, help="comma-separated target words, e.g. mouse,rat,keyboard")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--plot", help="also save an annotated heatmap PNG here (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--plot"))
    add_embedding_arguments(p)
    p.set_defaults(func=_cmd_similarity)

    p = add("plot", "2-D PCA of one word's vectors across sentences, saved as PNG (senses show as clusters)")
    p.add_argument("word", help="the word to follow")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--out", "-o", required=True, help="PNG file to write (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--out"))
    add_embedding_arguments(p)
    p.set_defaults(func=_cmd_plot)

    p = add("info", "print a checkpoint's config, parameter count, casing and load report")
    p.add_argument("checkpoint", nargs="?", help="checkpoint directory (default: as for demo)")
    p.set_defaults(func=_cmd_info)

    p = add("convert", "convert Hugging Face BERT weights (config.json + model.safetensors) to Google's layout")
    p.add_argument("hf_dir", help="directory with config.json, model.safetensors and vocab.txt")
    p.add_argument("out_dir", help="checkpoint directory to write")
    p.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    p.set_defaults(func=_cmd_convert)

    from bert_tf.store import download

    p = add("download", "fetch, verify and unpack one of Google's BERT checkpoints into checkpoints/")
    download.add_arguments(p)
    p.set_defaults(func=download.run)

    p = add("export", "export a SavedModel for TensorFlow Serving / TF Hub (tokenizer in the graph)")
    p.add_argument("--out", default="exports/bert", metavar="DIR",
                   help="model base directory; the SavedModel goes to DIR/VERSION/ (default: exports/bert)")
    p.add_argument("--version", type=int, default=1, help="model version directory (default: 1)")
    p.add_argument("--force", action="store_true", help="replace DIR/VERSION/ if it exists")
    add_embedding_arguments(p, batching=False)
    p.set_defaults(func=_cmd_export)
    return parser


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bert-tf: %(message)s"))
    logger = logging.getLogger("bert_tf")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        os.environ.setdefault("BERT_TF_VERBOSE_TF", "1")
    _configure_logging(args.verbose)
    previous = _install_signal_handlers()
    del _received[:]
    try:
        return _run(args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args) -> int:
    from bert_tf.fileio import OutputError, output_errors

    try:
        if args.command in ("info", "demo") and sys.stdout is None:
            raise OutputError("stdout", "it is closed; redirect it to a file")
        code = int(args.func(args) or 0)
        if sys.stdout is not None:
            with output_errors("stdout"):
                sys.stdout.flush()  # a full disk shows here, not as a warning at exit
    except KeyboardInterrupt as error:
        if _received or isinstance(error, Terminated):
            signum = _received[0] if _received else error.signum
            print(f"bert-tf: stopped by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum
        print("bert-tf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bert-tf embed ... | head`
        _silence_stdout()
        return 0
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs below
        if isinstance(error, OutputError) and error.filename == "stdout":
            _silence_stdout()
        if args.verbose or not isinstance(error, _user_errors()):
            raise
        print(f"bert-tf: error: {error}", file=sys.stderr)
        return 1
    if _received:  # a command that caught the interrupt itself (download) still ends as signalled
        return 128 + _received[0]
    return code


if __name__ == "__main__":
    sys.exit(main())
