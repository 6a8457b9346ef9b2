"""The sub-commands of `bert-tf`, one function each: `args` in, exit status out.

User errors are raised as `bert_tf.errors.UserError` (or one of its subclasses) and printed
by `bert_tf.cli.main` as one line.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import sys

from bert_tf.cli.flags import add_embedding_arguments, add_precision_argument, embedder_from_args, options_from_args
from bert_tf.errors import UserError


def demo(args) -> int:
    from bert_tf.cli.demo import run_demo

    run_demo(args.checkpoint, precision=args.precision)
    return 0


def info(args) -> int:
    from bert_tf.files.output import output_errors
    from bert_tf.store.checkpoint_dir import CheckpointDir

    checkpoint = CheckpointDir.resolve(args.checkpoint)
    config, encoder, report = checkpoint.load_encoder(return_report=True)
    vocab, lower = checkpoint.vocab, checkpoint.lower_case()
    with output_errors("stdout"):
        print(f"checkpoint: {checkpoint.path}")
        print(f"casing:     {'uncased (lower-cases and strips accents)' if lower else 'cased'}")
        print(f"vocabulary: {len(vocab):,} word pieces")
        print(f"parameters: {report.parameters:,}")
        print("config:")
        for key, value in config.to_dict().items():
            print(f"  {key:<30} {value}")
        print(f"load:       {report}")
    return 0


def convert(args) -> int:
    from bert_tf.model.checkpoint import load_encoder
    from bert_tf.model.convert import convert_hf_checkpoint

    out = convert_hf_checkpoint(args.hf_dir, args.out_dir, force=args.force)
    _, _, report = load_encoder(out, return_report=True)
    print(f"wrote {out} ({report.restored} tensors, {report.parameters:,} parameters); it loads cleanly")
    return 0


@dataclasses.dataclass
class Input:
    """The input being read: its lines, their count if known, the file to close, what it is on disk."""

    lines: object  # Iterator[Line]
    total: int | None = None
    handle: object = None
    stats: list = dataclasses.field(default_factory=list)  # [(name, os.stat_result)] for same-file checks

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def open_input(args) -> Input:
    """Positional sentences, --input FILE ('-': stdin; pipes and FIFOs are read once, as streams), or stdin:
    the one reader of every command that reads lines (`embed`, `similarity`, `plot`, `index build`)."""
    from bert_tf.cli.writers import Line, count_lines, read_lines

    if getattr(args, "sentences", None):
        if args.input:
            raise UserError("give sentences as arguments or --input FILE, not both")
        named = next((s for s in args.sentences if os.path.isfile(s)), None)
        if named is not None:
            print(f"bert-tf: warning: {named!r} is a file, but it is embedded as the text {named!r}; "
                  f"to embed the file's lines use --input {named}", file=sys.stderr)
        return Input(iter([Line(i, s) for i, s in enumerate(args.sentences, start=1)]), len(args.sentences))
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
        return Input(read_lines(handle), total, handle, [(args.input, st)])
    if sys.stdin is None:
        raise UserError("stdin is closed: give sentences as arguments or --input FILE")
    if sys.stdin.isatty() and not args.input:
        raise UserError("no input: give sentences as arguments, --input FILE, or pipe text on stdin")
    try:
        stats = [("stdin", os.fstat(sys.stdin.fileno()))]
    except (OSError, ValueError, AttributeError):  # a replaced sys.stdin (tests, notebooks)
        stats = []
    return Input(read_lines(sys.stdin.buffer), None, None, stats)


def _check_stdout(inputs) -> None:
    """Refuses a closed stdout, and one redirected into the file being read (`>> input.txt` never ends)."""
    from bert_tf.files.output import OutputError

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


def _chunked(iterator, size):
    chunk = []
    for item in iterator:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def embed(args) -> int:
    import time

    from bert_tf.files.output import check_output
    from bert_tf.cli.writers import open_output

    to_file = args.output not in (None, "-")
    # The suffix in any case (`x.NPZ`): the format follows what the name says.
    fmt = args.format or ("npz" if to_file and args.output.lower().endswith(".npz") else "jsonl")
    if fmt == "npz" and not to_file:
        raise UserError("--format npz needs --output FILE.npz (a zip cannot stream to stdout)")
    source = open_input(args)
    try:
        # Every refusal comes before the model is loaded and before anything is written.
        if to_file:
            check_output(args.output, force=args.force, inputs=source.stats)
        else:
            _check_stdout(source.stats)
        embedder = embedder_from_args(args)
        options = embedder.options(options_from_args(args))
        resolved = embedder.resolve(options)  # every option checked before any output is opened
        writer = open_output(args.output, fmt, widths=(resolved.vector_size, embedder.hidden_size))
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
                texts = [line.text for line in good]
                batch = embedder.embed(texts, ("word_vectors", "sentence_vectors"), options, progress=False)
                writer.write([line.number for line in good], texts, batch)
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
    from bert_tf.files.output import check_output
    from bert_tf.files.figures import check_png_path

    source = open_input(args)
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


def similarity(args) -> int:
    from bert_tf.cli.similarity import cosine_matrix, format_table, pick_words

    from bert_tf.files.output import output_errors

    targets = [w.strip() for w in args.words.split(",") if w.strip()]
    if not targets:
        raise UserError("--words needs at least one word, e.g. --words mouse,rat,keyboard")
    _check_stdout([])
    sentences = _gather_sentences(args, [(args.plot, "--plot")] if args.plot else [])
    embedder = embedder_from_args(args)
    if embedder.lower_case:
        targets = [t.lower() for t in targets]
    options = options_from_args(args).replace(sentence_strategy=None)
    results = [words for words, _ in embedder.iter_embed(sentences, options)]
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
        from bert_tf.cli.plotting import save_heatmap

        save_heatmap([p.label for p in picked], matrix, args.plot, title="cosine similarity of words in context")
        print(f"\nsaved {args.plot}", file=sys.stderr)
    return 0


def plot(args) -> int:
    from bert_tf.cli.plotting import save_projection

    sentences = _gather_sentences(args, [(args.out, "--out")])
    embedder = embedder_from_args(args)
    word = args.word.lower() if embedder.lower_case else args.word
    vectors, labels = [], []
    options = options_from_args(args).replace(sentence_strategy=None)
    for i, (sentence, (words, _)) in enumerate(zip(sentences, embedder.iter_embed(sentences, options)), start=1):
        for w in words:
            if w.text == word:
                vectors.append(w.vector)
                labels.append(f"{i}: {sentence.strip()}")
    if not vectors:
        raise UserError(f"the word {word!r} is in none of the {len(sentences)} sentences")
    save_projection(word, vectors, labels, args.out)
    print(f"saved {args.out} ({len(vectors)} occurrences of {word!r})", file=sys.stderr)
    return 0


def export(args) -> int:
    from bert_tf.serve.export import export_saved_model

    path = export_saved_model(args.checkpoint, args.out, version=args.version, options=options_from_args(args),
                              lower_case=args.lower_case, precision=args.precision, force=args.force)
    if args.precision == "int8":  # "auto" never picks int8
        print("bert-tf: an int8 export holds XLA-compiled kernels; TensorFlow Serving runs them when started "
              "with --xla_cpu_compilation_enabled=true", file=sys.stderr)
    print(path)
    return 0


# ---------------------------------------------------------------------- the commands' flags

#: The example under each command's --help.
EXAMPLES = {
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
    "export": "example: bert-tf export --checkpoint checkpoints/uncased_L-12_H-768_A-12 --out exports/bert "
              "--version 1",
}


FORCE_HELP = ("replace {what} if it exists (without --force an existing file is refused); the new file "
              "takes its place only once complete, so a failed run leaves the old one as it was")


def add_commands(add) -> None:
    """Registers this module's commands with `add(name, help, **parser_options) -> parser` of
    `bert_tf.cli.main` (as every command module does)."""

    def command(name, help_text):
        return add(name, help_text, epilog=EXAMPLES[name])

    p = command("demo", "the research notebook's mouse/rat/keyboard and lean/greasy/tilt experiments")
    p.add_argument("--checkpoint", help="checkpoint directory (default: BERT_TF_CHECKPOINT, then "
                                        "checkpoints/uncased_L-12_H-768_A-12, then the offline model)")
    add_precision_argument(p)
    p.set_defaults(func=demo)

    p = command("embed", "embed sentences into word vectors (with offsets) and sentence vectors, as JSONL or NPZ")
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
    p.set_defaults(func=embed)

    p = command("similarity", "cosine similarity of words across sentences (the notebook's experiment)")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--words", "-w", required=True, help="comma-separated target words, e.g. mouse,rat,keyboard")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--plot", help="also save an annotated heatmap PNG here (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--plot"))
    add_embedding_arguments(p)
    p.set_defaults(func=similarity)

    p = command("plot", "2-D PCA of one word's vectors across sentences, saved as PNG (senses show as clusters)")
    p.add_argument("word", help="the word to follow")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--out", "-o", required=True, help="PNG file to write (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP.format(what="--out"))
    add_embedding_arguments(p)
    p.set_defaults(func=plot)

    p = command("info", "print a checkpoint's config, parameter count, casing and load report")
    p.add_argument("checkpoint", nargs="?", help="checkpoint directory (default: as for demo)")
    p.set_defaults(func=info)

    p = command("convert", "convert Hugging Face BERT weights (config.json + model.safetensors) to Google's layout")
    p.add_argument("hf_dir", help="directory with config.json, model.safetensors and vocab.txt")
    p.add_argument("out_dir", help="checkpoint directory to write")
    p.add_argument("--force", action="store_true",
                   help="replace out_dir if it is a checkpoint bert-tf wrote (any other folder is never replaced)")
    p.set_defaults(func=convert)

    p = command("export", "export a SavedModel for TensorFlow Serving / TF Hub (tokenizer in the graph)")
    p.add_argument("--out", default="exports/bert", metavar="DIR",
                   help="model base directory; the SavedModel goes to DIR/VERSION/ (default: exports/bert)")
    p.add_argument("--version", type=int, default=1, help="model version directory (default: 1)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR/VERSION/ if bert-tf exported it (any other folder is never replaced)")
    add_embedding_arguments(p, batching=False)
    p.set_defaults(func=export)
