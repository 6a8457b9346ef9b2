"""`bert-tf index build`, `search`, `senses` and `neighbors`: the occurrence index on the command line.

Results are human-readable by default (the matched word in brackets, bold on a
terminal, with its score) and one JSON object per line with `--json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from bert_tf.cli.flags import add_embedding_arguments, embedder_from_args, options_from_args
from bert_tf.errors import UserError

EXAMPLES = {
    "index": "examples:\n  bert-tf index build --input corpus.txt --out corpus.index\n"
             "  bert-tf index build --input news.jsonl --out news.index   # fields beside \"text\" kept\n"
             "  bert-tf index build --parquet out/vectors --out corpus.index",
    "search": "examples:\n  bert-tf search corpus.index \"Interest rates went up again.\" -k 5\n"
              "  bert-tf search corpus.index --word bank \"I sat on the bank of the river.\" --json\n"
              "  bert-tf search news.index --word bank \"I sat on the bank.\" --where \"source = 'nyt'\"",
    "senses": "examples:\n  bert-tf senses corpus.index bank --plot bank.png --projector bank-projector\n"
              "  bert-tf senses news.index bank --by source --plot bank-by-source.png",
    "shift": "examples:\n  bert-tf shift news.index --by source --min-count 20\n"
             "  bert-tf shift news.index --by year --between 2019 2021 --measure jsd --json",
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
    source.add_argument("--input", "-i", help="text file, one text per line ('-' for stdin; each text gets the "
                                              "field file), or JSON Lines (.jsonl, .json): objects with a \"text\" "
                                              "(and \"id\"), their other keys kept as fields for --where and --by")
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
        q.add_argument("--where", metavar="CONDITION",
                       help="only texts whose fields match, e.g. \"source = 'nyt' and year >= 2000\" "
                            "(operators = != < <= > >=, joined by and)")
        return q

    q = query_parser("search", "the texts closest to a sentence, or with --word the occurrences of a word "
                               "closest to its sense in the sentence")
    q.add_argument("sentence", help="the query sentence")
    q.add_argument("--word", "-w", help="search for this word of the sentence: its occurrences in the same sense")
    q.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    q.add_argument("--score", choices=("cosine", "percentile"), default="cosine",
                   help="with --word, the number shown: the cosine (default), or its percentile among the pairs of "
                        "the word's own occurrences in the index, one scale for every word (see docs/index.md); "
                        "--json always gives both")
    _occurrence_argument(q)
    _projector_arguments(q)
    q.set_defaults(func=search)

    q = query_parser("senses", "a word's occurrences clustered into senses, with the most central examples")
    q.add_argument("word", help="the word")
    q.add_argument("--n-senses", type=int, default=None, help="the number of senses (default: chosen from the data)")
    q.add_argument("--max-senses", type=int, default=8, help="the most senses chosen from the data (default 8)")
    q.add_argument("--examples", type=int, default=3, help="central examples shown per sense (default 3)")
    q.add_argument("--by", metavar="FIELD",
                   help="each group's share of each sense: a field, or year / month (of the field date), or "
                        "FIELD:year / FIELD:month")
    q.add_argument("--plot", help="save the senses in 2-D as a PNG here (with --by: each group's shares as stacked "
                                  "bars); an existing file only with --force")
    _projector_arguments(q, plot=True)
    q.set_defaults(func=senses)

    from bert_tf.index.shift import DEFAULT_MEASURE, DEFAULT_MIN_COUNT, MEASURES

    q = add("shift", "the words two groups of texts use most differently (semantic change between sources or "
                     "over time)")
    q.epilog = EXAMPLES["shift"]
    q.add_argument("index", metavar="INDEX_DIR", help="an index made by `bert-tf index build` with fields")
    q.add_argument("--by", required=True, metavar="FIELD",
                   help="the groups: a field, or year / month (of the field date), or FIELD:year / FIELD:month")
    q.add_argument("--between", nargs=2, metavar=("A", "B"), help="the two groups to compare (needed when --by "
                                                                   "makes more than two)")
    q.add_argument("--min-count", type=int, default=DEFAULT_MIN_COUNT,
                   help=f"the fewest occurrences a word needs in each group (default {DEFAULT_MIN_COUNT})")
    q.add_argument("--measure", choices=MEASURES, default=DEFAULT_MEASURE,
                   help=f"what ranks, less what random groups of the same sizes give (default {DEFAULT_MEASURE}: "
                        "see docs/index.md)")
    q.add_argument("--words", nargs="+", metavar="WORD", help="only these words")
    q.add_argument("-k", type=int, default=20, help="how many words to show (default 20)")
    q.add_argument("--examples", type=int, default=2,
                   help="per group, the occurrences most typical of it shown for each word (default 2)")
    q.add_argument("--json", action="store_true", help="one JSON object per word")
    q.add_argument("--full", action="store_true", help="print whole texts")
    q.set_defaults(func=shift)

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
    import os

    from bert_tf.cli.commands import open_input
    from bert_tf.index.builder import build_index
    from bert_tf.index.fields import FILE_FIELD, is_json_lines

    source = open_input(args)  # a file, a pipe or '-' (stdin), as `embed` reads them
    try:
        options = options_from_args(args)  # checked before the model is loaded
        embedder = embedder_from_args(args)
        if args.input not in (None, "-") and is_json_lines(args.input):
            records = _json_records(source.lines)
        else:
            name = "stdin" if args.input in (None, "-") else os.path.basename(args.input)
            records = ((line.number, line.text, {FILE_FIELD: name}) for line in _readable(source.lines))
        # tee holds only the records between the readers: the builder takes ids, texts and fields in step.
        for_texts, for_ids, for_fields = itertools.tee(records, 3)
        return build_index((r[1] for r in for_texts), args.out, embedder=embedder, options=options,
                           ids=(r[0] for r in for_ids), fields=(r[2] for r in for_fields), scoring=args.scoring,
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


def _json_records(lines):
    """`(id, text, fields)` of each JSON Lines record; a line that is not one is reported on stderr and skipped."""
    from bert_tf.index.fields import json_record

    dropped_said = set()
    for line in _readable(lines):
        if not line.text.strip():
            print(f"bert-tf: skipped line {line.number}: blank line", file=sys.stderr)
            continue
        try:
            key, text, fields, dropped = json_record(line.text)
        except ValueError as e:
            print(f"bert-tf: skipped line {line.number}: {e}", file=sys.stderr)
            continue
        for name in set(dropped) - dropped_said:
            print(f"bert-tf: the field {name!r} holds a list or an object (first on line {line.number}); only "
                  "strings, numbers and true/false are kept as fields, so it is left out", file=sys.stderr)
            dropped_said.add(name)
        yield (line.number if key is None else key), text, fields


def _open(args):
    from bert_tf.index.occurrence_index import OccurrenceIndex

    return OccurrenceIndex.open(args.index, checkpoint=args.checkpoint)


def search(args) -> int:
    _check_projector(args)
    if args.occurrence is not None and args.word is None:
        raise UserError("--occurrence chooses an occurrence of --word; give --word too")
    if args.score == "percentile" and args.word is None:
        raise UserError("--score percentile places a word's cosine among its own occurrences' pairs; give --word")
    index = _open(args)
    if args.word is not None:  # `--word ""` is refused as an empty word, not taken for a text search
        hits = index.search_word(args.word, args.sentence, args.k, occurrence=args.occurrence, where=args.where)
        vectors = index.words.rows([h.occurrence for h in hits])
    else:
        hits = index.search(args.sentence, args.k, where=args.where)
        vectors = index.sentences.rows([h.text_id for h in hits])
    if args.projector:
        # The projector's metadata columns are word, sense, sentence: a search has no senses, so it gives the rank.
        _write_projector(args, vectors, [(h.word or "", f"rank {n}", h.text) for n, h in enumerate(hits, start=1)],
                         name=f"{args.word} search" if args.word else "search")
    if args.score == "percentile" and not args.json:
        if hits and hits[0].percentile is None:
            raise UserError(f"--score percentile needs at least 3 occurrences of {hits[0].word!r} in the index; it "
                            "has fewer (leave --score out for the cosine)")
        hits = [dataclasses.replace(h, score=h.percentile) for h in hits]
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
    report = index.senses(args.word, n_senses=args.n_senses, max_senses=args.max_senses, examples=args.examples,
                          where=args.where, by=args.by)
    if args.by is not None:
        return _senses_by(args, report)
    if args.json:
        _emit_senses(report)
    else:
        _print_senses_header(report)
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


def _emit_senses(report) -> None:
    """`senses --json`: one object per sense."""
    for sense in report.senses:
        _emit({"word": report.word, **sense.to_json()})


def _print_senses_header(report, suffix: str = "") -> None:
    """The first line of `senses`: occurrences, how many were clustered, the senses and how they were chosen."""
    sampled = f", {len(report.clustered)} clustered" if len(report.clustered) < report.occurrences else ""
    print(f"{report.word!r}: {report.occurrences} occurrences{sampled}, {report.n_senses} senses "
          f"({report.chosen_by}){suffix}")


def _senses_by(args, report) -> int:
    """`senses --by`: the senses, then each group's shares of them with its own examples (and the bar plot)."""
    if args.projector:
        raise UserError("--projector draws one word's senses; leave out --by to write it")
    if args.json:
        _emit_senses(report)
        for group in report.groups:
            _emit({"word": report.word, "by": report.by, **group.to_json()})
    else:
        _print_senses_header(report, f", by {report.by}")
        for n, sense in enumerate(report.senses, start=1):
            print(f"  sense {n}: {sense.size} occurrences, e.g. {highlight(sense.examples[0], full=args.full)}")
        for group in report.groups:
            shares = "  ".join(f"sense {n} {share:4.0%}" for n, share in enumerate(group.shares, start=1))
            print(f"\n{report.by} = {group.group}: {group.occurrences} occurrences  {shares}")
            for n, examples in enumerate(group.examples, start=1):
                for hit in examples:
                    print(f"  sense {n}  {highlight(hit, full=args.full)}")
        if not report.groups:
            print(f"\nno occurrence is in a text with a {report.by}", file=sys.stderr)
    if args.plot:
        from bert_tf.index.senses import plot_shares

        plot_shares(args.plot, report, force=args.force)
        print(f"bert-tf: saved {args.plot}", file=sys.stderr)
    return 0


def shift(args) -> int:
    from bert_tf.index.occurrence_index import OccurrenceIndex

    if args.k < 1:
        raise UserError(f"-k must be a positive integer; got {args.k}")
    index = OccurrenceIndex.open(args.index)
    report = index.shift(args.by, between=args.between, min_count=args.min_count, measure=args.measure,
                         words=args.words, top=args.k, examples=args.examples)
    if args.json:
        for rank, word in enumerate(report.words[:args.k], start=1):
            _emit({"rank": rank, "by": report.by, "measure": report.measure, **word.to_json(report.groups)})
        return 0
    a, b = report.groups
    if not report.words:
        print(f"no word has {report.min_count} occurrences in both {report.by} = {a} and {b} (lower --min-count)",
              file=sys.stderr)
        return 0
    print(f"{report.candidates} words with at least {report.min_count} occurrences in both {report.by} = {a} and "
          f"{b}, ranked by {report.measure} beyond chance:")
    for rank, word in enumerate(report.words[:args.k], start=1):
        raw = word.measures[report.measure]
        print(f"\n{rank:3d}. {word.word}  {word.score:+.3f} ({report.measure} {raw:.3f}, chance "
              f"{word.baselines[report.measure]:.3f}; {word.counts[0]} / {word.counts[1]} occurrences)")
        if word.shares is not None:
            for group, shares in zip(report.groups, word.shares):
                print(f"     {group}: " + "  ".join(f"sense {n} {s:4.0%}" for n, s in enumerate(shares, start=1)))
        for group, hits in zip(report.groups, word.examples or ()):
            for hit in hits:
                print(f"     {group}: {highlight(hit, full=args.full)}")
    return 0


def neighbors(args) -> int:
    index = _open(args)
    found = index.neighbors(args.word, args.sentence, args.k, occurrence=args.occurrence, where=args.where)
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

