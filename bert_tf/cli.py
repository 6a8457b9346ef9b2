"""The `bert-tf` command line (also `python -m bert_tf`).

Each sub-command lives in a `_cmd_*` function; user errors (a missing
checkpoint, an unreadable file, a bad option value) print one line and exit
non-zero; `--verbose` shows the traceback and TensorFlow's own logging.
"""

from __future__ import annotations

import argparse
import logging
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


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def _user_errors():
    """Exception types that are the user's to fix (shown without a traceback)."""
    from bert_tf.model.checkpoint import CheckpointError
    from bert_tf.model.convert import ConversionError
    from bert_tf.store.resolve import CheckpointNotFoundError

    return (UserError, CheckpointError, ConversionError, CheckpointNotFoundError, FileNotFoundError,
            FileExistsError, IsADirectoryError, PermissionError, ValueError, TypeError)


def _cmd_demo(args) -> int:
    from bert_tf.demo import run_demo

    run_demo(args.checkpoint)
    return 0


def _cmd_info(args) -> int:
    from bert_tf.model.checkpoint import load_encoder, resolve_checkpoint_prefix
    from bert_tf.store.resolve import resolve_checkpoint
    from bert_tf.text.tokenization import infer_lower_case, load_vocab

    import os

    directory = resolve_checkpoint(args.checkpoint)
    directory, prefix = resolve_checkpoint_prefix(directory)
    config, encoder, report = load_encoder(directory, return_report=True)
    vocab = load_vocab(os.path.join(directory, "vocab.txt"))
    name = os.path.basename(os.path.normpath(directory))
    lower = infer_lower_case(vocab, name)
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


def _input_lines(args):
    """The input as `Line`s: positional sentences, --input FILE, or stdin."""
    from bert_tf.writers import Line, read_lines

    if args.sentences:
        if args.input:
            raise UserError("give sentences as arguments or --input FILE, not both")
        return iter([Line(i, s) for i, s in enumerate(args.sentences, start=1)]), len(args.sentences), None
    if args.input and args.input != "-":
        from bert_tf.writers import count_lines

        try:
            handle = open(args.input, "rb")
        except OSError as e:
            raise UserError(f"cannot read {args.input}: {e.strerror}") from None
        return read_lines(handle), count_lines(args.input), handle
    if sys.stdin.isatty() and not args.input:
        raise UserError("no input: give sentences as arguments, --input FILE, or pipe text on stdin")
    return read_lines(sys.stdin.buffer), None, None


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
    from bert_tf.writers import Record, open_output

    fmt = args.format or ("npz" if (args.output or "").endswith(".npz") else "jsonl")
    embedder = get_embedder(args.checkpoint, lower_case=args.lower_case)
    options = dict(layers=args.layers, combine=args.combine, subword_pooling=args.subword_pooling, dim=args.dim,
                   sentence_strategy=args.sentence_strategy, sentence_layer=args.sentence_layer,
                   batch_size=args.batch_size, max_seq_length=args.max_seq_length, progress=False)
    list(embedder.iter_embed([], **options))  # validates every option before any output is opened
    lines, total, handle = _input_lines(args)
    writer = open_output(args.output, fmt)
    written = skipped = 0
    bar = _progress_bar(total, args)
    start = time.perf_counter()
    try:
        # Lines are read and length-sorted this many at a time: enough to batch short with short.
        for chunk in _chunked(lines, max((args.batch_size or 64) * 16, 256)):
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
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
        if handle is not None:
            handle.close()
    where = args.output if args.output not in (None, "-") else "stdout"
    print(f"bert-tf: wrote {written} line(s) to {where} as {fmt}; skipped {skipped}", file=sys.stderr)
    return 1 if skipped and args.strict else 0


def _progress_bar(total, args):
    if args.no_progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="line", file=sys.stderr, desc="embedding", dynamic_ncols=True,
                disable=None if not args.progress else False)


def _gather_sentences(args) -> list[str]:
    lines, _, handle = _input_lines(args)
    try:
        out = []
        for line in lines:
            if line.problem is not None:
                raise UserError(f"line {line.number}: {line.problem}")
            if line.text.strip():
                out.append(line.text)
        return out
    finally:
        if handle is not None:
            handle.close()


def _cmd_similarity(args) -> int:
    from bert_tf.embed.api import get_embedder
    from bert_tf.similarity import cosine_matrix, format_table, pick_words

    sentences = _gather_sentences(args)
    targets = [w.strip() for w in args.words.split(",") if w.strip()]
    if not targets:
        raise UserError("--words needs at least one word, e.g. --words mouse,rat,keyboard")
    embedder = get_embedder(args.checkpoint, lower_case=args.lower_case)
    if embedder.lower_case:
        targets = [t.lower() for t in targets]
    results = embedder.embed_words(sentences, layers=args.layers, combine=args.combine,
                                   subword_pooling=args.subword_pooling, dim=args.dim,
                                   batch_size=args.batch_size, max_seq_length=args.max_seq_length)
    embeddings = [{w.text: w.vector for w in reversed(words)} for words in results]
    picked = pick_words(embeddings, targets)
    matrix = cosine_matrix([p.vector for p in picked])
    for i, sentence in enumerate(sentences, start=1):
        print(f"[{i}] {sentence}")
    print()
    print(format_table([p.label for p in picked], matrix))
    if args.plot:
        from bert_tf.plotting import save_heatmap

        save_heatmap([p.label for p in picked], matrix, args.plot, title="cosine similarity of words in context")
        print(f"\nsaved {args.plot}", file=sys.stderr)
    return 0


def _cmd_plot(args) -> int:
    from bert_tf.embed.api import get_embedder
    from bert_tf.plotting import save_projection

    sentences = _gather_sentences(args)
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
    p.add_argument("--output", "-o", help="output file (default stdout); .npz implies --format npz")
    p.add_argument("--format", choices=("jsonl", "npz"), help="output format (default jsonl)")
    p.add_argument("--strict", action="store_true", help="stop at the first line that cannot be embedded")
    p.add_argument("--progress", action="store_true", help="always show the progress bar (default: on a terminal)")
    p.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    add_embedding_arguments(p)
    p.set_defaults(func=_cmd_embed)

    p = add("similarity", "cosine similarity of words across sentences (the notebook's experiment)")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--words", "-w", required=True, help="comma-separated target words, e.g. mouse,rat,keyboard")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--plot", help="also save an annotated heatmap PNG here")
    add_embedding_arguments(p)
    p.set_defaults(func=_cmd_similarity)

    p = add("plot", "2-D PCA of one word's vectors across sentences, saved as PNG (senses show as clusters)")
    p.add_argument("word", help="the word to follow")
    p.add_argument("sentences", nargs="*", help="sentences (or --input FILE)")
    p.add_argument("--input", "-i", help="text file, one sentence per line")
    p.add_argument("--out", "-o", required=True, help="PNG file to write")
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        import os

        os.environ.setdefault("BERT_TF_VERBOSE_TF", "1")
    _configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("bert-tf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bert-tf embed ... | head`
        return 0
    except Exception as error:  # noqa: BLE001 - sorted into user errors and bugs below
        if args.verbose or not isinstance(error, _user_errors()):
            raise
        print(f"bert-tf: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
