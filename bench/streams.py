"""Streams: one model call with every core, or several calls at once with a share of the cores each.

    python -m bench.streams                          # float32, bfloat16, int8; 1, 2 and 2:shared; 5 pairs
    python -m bench.streams --quick                  # smoke run: 32 sentences, 1 pair, float32
    python -m bench.streams --precisions int8 --streams 1,2:shared --pairs 9

OpenVINO's THROUGHPUT hint runs two streams of one thread on two cores; `BertEmbedder(streams=N)` does
the same with its batch plan (`bert_tf.streams`). TensorFlow's thread pools are per process and fixed
when it starts, so every configuration runs in a process of its own, loaded and warmed up once: `N`
with `BERT_TF_STREAMS=N` (N streams of cores / N intra-op threads each), `N:shared` with N streams on
TensorFlow's own pools (every call may use every core; concurrent calls fill each other's gaps). The
driver then asks the processes of one precision in turn for a whole pass of `embed_words` over the
bench workload (`bench.workload`, seeded, 256 sentences by default) on the bench's BERT-Base-shaped
checkpoint (random weights, the uncased vocabulary), in pairs A B, then B A: only one process computes
at a time, and each pair's ratio is taken between passes seconds apart, so drift over the run touches
both alike. The report gives each configuration's median pass, the median over pairs of its time over
the first configuration's, and whether the vectors are the same (they must be: the streams change only
which thread runs a call).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.context import ROOT, in_workdir, save_json, tool_workload
from bench.context import child_env as tool_env

PRECISIONS = ("float32", "bfloat16", "int8")
#: Untimed, after each pass: TensorFlow's threads go quiet before the other process starts.
SETTLE_S = 0.2
RESULTS_STREAMS = ROOT / "bench" / "results" / "streams.json"


# ---------------------------------------------------------------------------- inside a configuration's process


def serve(precision: str, config: str, workdir: Path) -> int:
    """A configuration's process (`BERT_TF_STREAMS` set by the driver for a split one): load with its
    streams, one warm-up pass, say "ready", then answer "pass" with the pass's seconds and a digest of its
    vectors until "quit"."""
    from bench.processes import protocol_stdout

    protocol = protocol_stdout()  # only the protocol on the real stdout
    meta = json.loads((workdir / "streams.json").read_text())
    from bert_tf import BertEmbedder
    from bert_tf.runtime import STREAMS, tf

    t = time.perf_counter()
    embedder = BertEmbedder.from_checkpoint(meta["checkpoint"], precision=precision,
                                            streams=parse_config(config)[0])
    texts = meta["texts"]
    embedder.embed_words(texts, progress=False)
    protocol.write(json.dumps({"ready_s": time.perf_counter() - t, "streams": embedder.streams, "process": STREAMS,
                               "intra_op": os.environ.get("TF_NUM_INTRAOP_THREADS", "TensorFlow's default"),
                               "inter_op": os.environ.get("TF_NUM_INTEROP_THREADS", "TensorFlow's default"),
                               "tf": tf.__version__}) + "\n")
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        t = time.perf_counter()
        words = embedder.embed_words(texts, progress=False)
        seconds = time.perf_counter() - t
        vectors = np.concatenate([np.stack([w.vector for w in ws]) for ws in words if ws])
        protocol.write(json.dumps({"s": seconds, "digest": hashlib.sha256(vectors.tobytes()).hexdigest()[:16],
                                   "checksum": float(np.abs(vectors).sum())}) + "\n")
    return 0


# ---------------------------------------------------------------------------- the driver


def parse_config(config: str) -> tuple[int, bool]:
    """`"2"` -> (2, False): two streams of cores / 2 threads; `"2:shared"` -> (2, True): on TensorFlow's pools."""
    count, _, mode = config.partition(":")
    if not count.isdigit() or int(count) < 1 or mode not in ("", "shared"):
        raise ValueError(f"a configuration is N or N:shared (N a positive integer); got {config!r}")
    return int(count), mode == "shared"


def child_env(config: str) -> dict:
    """The environment of a configuration's process: no thread setting of the caller's, and
    `BERT_TF_STREAMS` for a split configuration (so `bert_tf.streams` sizes the pools) or none for a shared one."""
    streams, shared = parse_config(config)
    return tool_env(None if shared else str(streams))


def _start(precision: str, config: str, workdir: Path, log):
    from bench.processes import start_server

    proc, hello, tail = start_server("bench.streams", [precision, "--config", config], workdir,
                                     f"streams_{precision}_{config.replace(':', '_')}.stderr.txt", child_env(config),
                                     log, f"{precision}, {config} stream(s)")
    if hello is None:
        raise RuntimeError(f"{precision}, {config} stream(s): exit {proc.returncode}: {' '.join(tail[-3:])}")
    return proc, hello


def _ask(proc) -> dict:
    proc.stdin.write("pass\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def measure(precision: str, configs: list[str], pairs: int, workdir: Path, n_texts: int, log) -> dict:
    """Every configuration of one precision in its own process, passes alternated A B, B A, `pairs` times."""
    procs, hello = {}, {}
    try:
        for streams in configs:
            procs[streams], hello[streams] = _start(precision, streams, workdir, log)
        passes = {s: [] for s in configs}
        for p in range(pairs):
            for streams in (configs if p % 2 == 0 else configs[::-1]):
                passes[streams].append(_ask(procs[streams]))
                time.sleep(SETTLE_S)
            log(f"  pair {p + 1}: " + ", ".join(f"{s} stream(s) {passes[s][-1]['s']:.2f} s" for s in configs))
    finally:
        from bench.processes import stop_servers

        stop_servers(procs.values())
    base = configs[0]
    out = {}
    for s in configs:
        seconds = [x["s"] for x in passes[s]]
        ratios = [b["s"] / x["s"] for b, x in zip(passes[base], passes[s])]  # speed over the base, per pair
        out[str(s)] = {**hello[s], "passes_s": seconds, "median_s": statistics.median(seconds),
                       "sentences_per_s": n_texts / statistics.median(seconds),
                       "speed_over_first": statistics.median(ratios), "speed_over_first_pairs": ratios,
                       "same_vectors_as_first": {x["digest"] for x in passes[s]} == {x["digest"] for x in passes[base]},
                       "checksum": passes[s][0]["checksum"]}
    return out


def render(report: dict) -> str:
    lines = [f"Streams ({report['machine']}, {report['cores']} cores; {report['date']}; {report['sentences']} "
             f"sentences, {report['tokens']} tokens; {report['pairs']} interleaved pairs per precision):", "",
             "| precision | streams x intra-op threads | median pass s | sentences/s | speed / 1st (median of pairs) "
             "| same vectors |", "|---|---|---|---|---|---|"]
    for precision, configs in report["results"].items():
        for config, r in configs.items():
            streams, shared = parse_config(config)
            threads = "shared pools" if shared else r["intra_op"]
            lines.append(f"| {precision} | {streams} x {threads} | {r['median_s']:.3f} | {r['sentences_per_s']:.1f} "
                         f"| {r['speed_over_first']:.3f} | {'yes' if r['same_vectors_as_first'] else 'NO'} |")
    return "\n".join(lines)


def driver(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    return in_workdir(args.workdir, "bert_tf_streams_", lambda workdir: _drive(args, workdir, log))


def _drive(args, workdir: Path, log) -> int:
    _, header = tool_workload(workdir, args.checkpoint, args.sentences, "streams.json", log)
    report = {**header, "pairs": args.pairs, "streams": args.streams, "results": {}}
    try:
        for precision in args.precisions:
            report["results"][precision] = measure(precision, args.streams, args.pairs, workdir,
                                                   header["sentences"], log)
    except RuntimeError as e:
        log(f"bench.streams: {e}")
        return 1
    print(render(report))
    log(f"bench.streams: results in {save_json(report, args.json, RESULTS_STREAMS)}")
    return 0


def _config_list(text: str) -> list[str]:
    try:
        values = [x.strip() for x in text.split(",")]
        for value in values:
            parse_config(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated configurations like 1,2,2:shared; got {text!r}")
    return values


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precisions", default=None,
                   help=f"comma-separated, from {', '.join(PRECISIONS)} (default: all; float32 with --quick)")
    p.add_argument("--streams", type=_config_list, default=["1", "2", "2:shared"],
                   help="the configurations compared, the first being the base: N (N streams of cores / N threads) "
                        "or N:shared (N streams on TensorFlow's pools); default 1,2,2:shared")
    p.add_argument("--config", default="1", help=argparse.SUPPRESS)  # internal: a served process's configuration
    p.add_argument("--pairs", type=int, help="interleaved pairs of passes per precision (default 5; 1 with --quick)")
    p.add_argument("--sentences", type=int, help="workload size (default 256; 32 with --quick)")
    p.add_argument("--checkpoint", help="a checkpoint directory to run instead of the BERT-Base-shaped one")
    p.add_argument("--quick", action="store_true", help="smoke run: 32 sentences, 1 pair, float32")
    p.add_argument("--json", help=f"where to write the JSON results (default {RESULTS_STREAMS.relative_to(ROOT)})")
    p.add_argument("--workdir", help="keep the checkpoint here and reuse it (default: a temporary directory)")
    p.add_argument("--serve", choices=PRECISIONS, help=argparse.SUPPRESS)  # internal: one configuration's process
    args = p.parse_args(argv)
    args.precisions = (args.precisions or ("float32" if args.quick else ",".join(PRECISIONS))).split(",")
    unknown = [x for x in args.precisions if x not in PRECISIONS]
    if unknown:
        p.error(f"--precisions: unknown {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    args.pairs = args.pairs or (1 if args.quick else 5)
    args.sentences = args.sentences or (32 if args.quick else 256)
    if args.pairs < 1 or args.sentences < 1:
        p.error("--pairs and --sentences must be positive")
    if args.serve and not args.workdir:
        p.error("--serve needs --workdir")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args.serve, args.config, Path(args.workdir))
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
