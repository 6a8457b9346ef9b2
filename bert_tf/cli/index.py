"""`bert-tf index build`, `search`, `senses` and `neighbors`: the occurrence index on the command line.

Results are human-readable by default (the matched word in brackets, bold on a
terminal, with its score) and one JSON object per line with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys

from bert_tf.cli.flags import add_embedding_arguments, embedder_from_args, options_from_args
from bert_tf.errors import UserError

EXAMPLES = {
    "index": "examples:\n  bert-tf index build --input corpus.txt --out corpus.index\n"
             "  bert-tf index build --parquet out/vectors --out corpus.index",
    "search": "examples:\n  bert-tf search corpus.index \"Interest rates went up again.\" -k 5\n"
              "  bert-tf search corpus.index --word bank \"I sat on the bank of the river.\" --json",
    "senses": "example:\n  bert-tf senses corpus.index bank --plot bank.png --projector bank-projector",
    "neighbors": "example:\n  bert-tf neighbors corpus.index --word lean \"I like my steak lean.\" -k 10",
}


def add_commands(add) -> None:
    """Registers the commands with `add(name, help) -> parser` of `bert_tf.cli.main`."""
    from bert_tf.index.scoring import DEFAULT_SCORING, SCORING_MODES
    from bert_tf.index.vectors import VECTOR_DTYPES

    p = add("index", "build an occurrence index: every word occurrence of a corpus with its vector")
    p.epilog = EXAMPLES["index"]
    actions = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="embed a corpus (or read a beam-embed Parquet output) into an index",
                           description="embed a corpus (or read a beam-embed Parquet output) into an index",
                           epilog=EXAMPLES["index"], formatter_class=argparse.RawDescriptionHelpFormatter)
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", "-i", help="text file, one text per line ('-' for stdin)")
    source.add_argument("--parquet", metavar="PREFIX_OR_GLOB",
                        help="the Parquet output of `bert-tf beam-embed` (its --output prefix, a glob or a file); "
                             "its vectors are indexed as they are, with the model and options recorded in it")
    b.add_argument("--out", "-o", required=True, metavar="DIR", help="the index folder to create")
    b.add_argument("--scoring", choices=SCORING_MODES, default=DEFAULT_SCORING,
                   help=f"how vectors are normalised before cosine (default {DEFAULT_SCORING}: see docs/index.md)")
    b.add_argument("--vector-dtype", choices=VECTOR_DTYPES, default="float16",
                   help="how vectors are stored (default float16; int8 is half the size)")
    b.add_argument("--force", action="store_true",
                   help="replace DIR if it is an index bert-tf wrote (only once the new index is complete); "
                        "any other folder is never replaced")
    b.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    add_embedding_arguments(b)
    b.set_defaults(func=build)

    def query_parser(name, help_text):
        q = add(name, help_text)
        q.epilog = EXAMPLES[name]
        q.add_argument("index", metavar="INDEX_DIR", help="an index made by `bert-tf index build`")
        q.add_argument("--json", action="store_true", help="one JSON object per result (with the whole text)")
        q.add_argument("--full", action="store_true",
                       help=f"print whole texts (default: {KWIC_WIDTH} characters each side of the word, … where cut)")
        q.add_argument("--checkpoint", help="where the index's checkpoint is now, if it has moved (another "
                                            "model is refused)")
        return q

    q = query_parser("search", "the texts closest to a sentence, or with --word the occurrences of a word "
                               "closest to its sense in the sentence")
    q.add_argument("sentence", help="the query sentence")
    q.add_argument("--word", "-w", help="search for this word of the sentence: its occurrences in the same sense")
    q.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    _occurrence_argument(q)
    _projector_arguments(q)
    q.set_defaults(func=search)

    q = query_parser("senses", "a word's occurrences clustered into senses, with the most central examples")
    q.add_argument("word", help="the word")
    q.add_argument("--n-senses", type=int, default=None, help="the number of senses (default: chosen from the data)")
    q.add_argument("--max-senses", type=int, default=8, help="the most senses chosen from the data (default 8)")
    q.add_argument("--examples", type=int, default=3, help="central examples shown per sense (default 3)")
    q.add_argument("--plot", help="save the senses in 2-D as a PNG here (an existing file only with --force)")
    _projector_arguments(q, plot=True)
    q.set_defaults(func=senses)

    q = query_parser("neighbors", "other words used like a word of a sentence (keyword expansion)")
    q.add_argument("sentence", help="the sentence the word is used in")
    q.add_argument("--word", "-w", required=True, help="the word of the sentence")
    q.add_argument("-k", type=int, default=10, help="how many words (default 10)")
    _occurrence_argument(q)
    q.set_defaults(func=neighbors)


def _occurrence_argument(parser) -> None:
    parser.add_argument("--occurrence", type=int, metavar="N",
                        help="which occurrence of --word in the sentence, from 1 (default: the first; or mark it "
                             "in the sentence like [[this]])")


def _projector_arguments(parser, *, plot: bool = False) -> None:
    parser.add_argument("--projector", metavar="DIR",
                        help="also write the vectors for TensorBoard's Embedding Projector here "
                             "(`tensorboard --logdir DIR`)")
    outputs = "an existing --plot or --projector" if plot else "an existing --projector folder"
    parser.add_argument("--force", action="store_true",
                        help=f"replace {outputs} (a --projector folder only if bert-tf wrote it)")


# ---------------------------------------------------------------------- commands


def build(args) -> int:
    from bert_tf.files.owned import INDEX, check_replaceable

    if args.parquet:
        from bert_tf.index.parquet import parquet_files

        try:
            inputs = [("the Parquet input", f) for f in parquet_files(args.parquet)]
        except FileNotFoundError:
            inputs = []  # said below, after the options are checked
    else:
        inputs = [] if args.input == "-" else [("the input file", args.input)]
    # Before the model is loaded: only an index of ours is replaced, never a folder holding the input.
    check_replaceable(args.out, INDEX, force=args.force, inputs=inputs)
    progress = False if args.no_progress else None
    if args.parquet:
        from bert_tf.embed.options import EmbeddingOptions
        from bert_tf.index.parquet import build_index_from_parquet

        if (options_from_args(args) != EmbeddingOptions() or args.checkpoint or args.lower_case is not None
                or getattr(args, "precision", "float32") != "float32"):
            raise UserError("--parquet indexes the vectors as `bert-tf beam-embed` made them, with the model and "
                            "options recorded in the files; the embedding options apply to --input only")

        index = build_index_from_parquet(args.parquet, args.out, scoring=args.scoring,
                                         vector_dtype=args.vector_dtype, force=args.force, progress=progress)
    else:
        index = _build_from_file(args, progress)
    print(f"bert-tf: wrote {args.out}: {index.n_texts} texts, {index.n_occurrences} occurrences "
          f"({index.manifest['build_seconds']:.1f} s)", file=sys.stderr)
    return 0


def _build_from_file(args, progress):
    import itertools

    from bert_tf.cli.commands import open_input
    from bert_tf.index.builder import build_index

    source = open_input(args)  # a file, a pipe or '-' (stdin), as `embed` reads them
    try:
        options = options_from_args(args)  # checked before the model is loaded
        embedder = embedder_from_args(args)
        # tee holds only the lines between the two readers: the builder takes ids and texts in step.
        for_texts, for_ids = itertools.tee(_readable(source.lines))
        return build_index((line.text for line in for_texts), args.out, embedder=embedder, options=options,
                           ids=(line.number for line in for_ids), scoring=args.scoring,
                           vector_dtype=args.vector_dtype, force=args.force, progress=progress,
                           total=source.total)
    finally:
        source.close()


def _readable(lines):
    """The lines that can be indexed; the others are reported on stderr (their numbers stay the ids)."""
    for line in lines:
        if line.problem is None:
            yield line
        else:
            print(f"bert-tf: skipped line {line.number}: {line.problem}", file=sys.stderr)


def _open(args):
    from bert_tf.index.occurrence_index import OccurrenceIndex

    return OccurrenceIndex.open(args.index, checkpoint=args.checkpoint)


def search(args) -> int:
    _check_projector(args)
    if args.occurrence is not None and args.word is None:
        raise UserError("--occurrence chooses an occurrence of --word; give --word too")
    index = _open(args)
    if args.word is not None:  # `--word ""` is refused as an empty word, not taken for a text search
        hits = index.search_word(args.word, args.sentence, args.k, occurrence=args.occurrence)
        vectors = index.words.rows([h.occurrence for h in hits])
    else:
        hits = index.search(args.sentence, args.k)
        vectors = index.sentences.rows([h.text_id for h in hits])
    if args.projector:
        # The projector's metadata columns are word, sense, sentence: a search has no senses, so it gives the rank.
        _write_projector(args, vectors, [(h.word or "", f"rank {n}", h.text) for n, h in enumerate(hits, start=1)],
                         name=f"{args.word} search" if args.word else "search")
    _print_hits(hits, args.json, args.full)
    return 0


def senses(args) -> int:
    import numpy as np

    from bert_tf.files.figures import check_png_path
    from bert_tf.files.output import check_output

    if args.plot:
        check_png_path(args.plot, option="--plot")
        check_output(args.plot, force=args.force, option="--plot")
    _check_projector(args)
    index = _open(args)
    report = index.senses(args.word, n_senses=args.n_senses, max_senses=args.max_senses, examples=args.examples)
    if args.json:
        for sense in report.senses:
            _emit({"word": report.word, **sense.to_json()})
    else:
        sampled = f", {len(report.clustered)} clustered" if len(report.clustered) < report.occurrences else ""
        print(f"{report.word!r}: {report.occurrences} occurrences{sampled}, {report.n_senses} senses "
              f"({report.chosen_by})")
        for n, sense in enumerate(report.senses, start=1):
            print(f"\nsense {n}: {sense.size} occurrences")
            for hit in sense.examples:
                print(f"  {hit.score:6.3f}  {highlight(hit, full=args.full)}")
    hits = index.occurrence_hits(report.clustered, np.zeros(len(report.clustered))) if (args.plot or args.projector) \
        else []
    sentences = [h.text for h in hits]
    if args.plot:
        from bert_tf.index.senses import plot_senses

        plot_senses(args.plot, report.vectors, report.clusters, sentences, word=report.word,
                    spans=[(h.start, h.end) for h in hits], examples=args.examples, force=args.force,
                    total=report.occurrences)
        print(f"bert-tf: saved {args.plot}", file=sys.stderr)
    if args.projector:
        _write_projector(args, report.vectors, [(report.word, int(label) + 1, s)
                                                for label, s in zip(report.labels, sentences)],
                         name=f"{report.word} senses")
    return 0


def neighbors(args) -> int:
    index = _open(args)
    found = index.neighbors(args.word, args.sentence, args.k, occurrence=args.occurrence)
    if args.json:
        for n in found:
            _emit(n.to_json())
        return 0
    if not found:
        print("no other word found", file=sys.stderr)
    for n, neighbor in enumerate(found, start=1):
        print(f"{n:3d}. {neighbor.score:6.3f}  {neighbor.word}  ({neighbor.count} close)  e.g. "
              f"{highlight(neighbor.example, full=args.full)}")
    return 0


# ---------------------------------------------------------------------- output


#: Characters of context shown on each side of a hit's word (keyword in context); `--full` shows the whole text.
KWIC_WIDTH = 80


def highlight(hit, *, bold: bool | None = None, full: bool = False) -> str:
    """The hit's text with its word marked: `[bank]`, bold on a terminal; unless `full`, only
    `KWIC_WIDTH` characters each side of the word (a text hit: its first `2 * KWIC_WIDTH`), `…` where cut."""
    if hit.word is None:
        text = hit.text if full or len(hit.text) <= 2 * KWIC_WIDTH else hit.text[:2 * KWIC_WIDTH] + "…"
        return text
    if bold is None:
        bold = sys.stdout.isatty()
    word = hit.text[hit.start:hit.end]
    marked = f"\033[1m[{word}]\033[0m" if bold else f"[{word}]"
    before, after = hit.text[:hit.start], hit.text[hit.end:]
    if not full:
        before = before if len(before) <= KWIC_WIDTH else "…" + before[-KWIC_WIDTH:]
        after = after if len(after) <= KWIC_WIDTH else after[:KWIC_WIDTH] + "…"
    return before + marked + after


def _print_hits(hits, as_json: bool, full: bool) -> None:
    if as_json:  # the whole text: a program reading it can cut its own window
        for hit in hits:
            _emit(hit.to_json())
        return
    for n, hit in enumerate(hits, start=1):
        print(f"{n:3d}. {hit.score:6.3f}  {highlight(hit, full=full)}  (id {hit.id})")


def _emit(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _check_projector(args) -> None:
    """Refuses a --projector folder that may not be written, before any work (see `bert_tf.files.owned`)."""
    if args.projector:
        from bert_tf.files.owned import PROJECTOR, check_replaceable

        check_replaceable(args.projector, PROJECTOR, force=args.force, inputs=[("the index", args.index)])


def _write_projector(args, vectors, metadata, *, name: str) -> None:
    from bert_tf.index.projector import write_projector

    write_projector(args.projector, vectors, metadata, name=name, force=args.force)
    print(f"bert-tf: wrote the Embedding Projector files to {args.projector} "
          f"(view them with `tensorboard --logdir {args.projector}`)", file=sys.stderr)

