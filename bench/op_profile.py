"""Where a model call's time goes: TensorFlow's profiler over bert_tf's own calls, op time by kind.

    python -m bench.op_profile                        # bfloat16 (where native) and int8: workload and query
    python -m bench.op_profile --precisions float32,bfloat16,int8 --calls 40
    python -m bench.op_profile --quick                # smoke run: 32 sentences, float32

Each precision runs in a process of its own, set up as `bert-tf embed` sets it up (int8 with two thread
pools of its own, `bert_tf.streams.process_streams_for`), on the bench's BERT-Base-shaped checkpoint
(random weights, the uncased vocabulary; `--checkpoint` for another). It embeds the bench workload
(`bench.workload`, seeded, 256 sentences) with `BertEmbedder.embed_words`, warm: first `--passes` passes
unprofiled (their median is the pass's real time), then one under `tf.profiler`; then `--calls` calls on
one short sentence (`bench.latency`'s), unprofiled and then profiled.

What the profile gives, from the trace's TensorFlow op events on the executor's threads (the inter-op
threads, where each op runs from its start to its end; the intra-op threads it hands work to are inside
that span, so nothing is counted twice):

* **op time by kind**: dense matmuls (`_MklNativeFusedMatMul`, `_QuantizedMatMul`, ...), attention
  matmuls, softmax, compiled (XLA) kernels, gathers and layout ops, the tokenizer, the rest of the
  arithmetic (LayerNorm, casts, adds, the head's pooling), and variable reads and bookkeeping;
* **the executor between ops**: the time TensorFlow's executor spends scheduling, outside any op;
* **no op running**: the wall time in which no thread runs an op: Python, graph calls' dispatch, the
  numpy between calls. With two calls at once (int8's pools) op time can pass the wall time.

The profiler slows what it traces (a few percent here), so read the kinds as shares of op time and the
unprofiled medians as the real times. `bench.interleaved` gives the ratios to the matmul peak.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.context import ROOT, in_workdir, json_default, save_json, tool_workload
from bench.context import child_env as tool_env
from bench.measure import timed, union_seconds

PRECISIONS = ("float32", "bfloat16", "int8")
RESULTS_PROFILE = ROOT / "bench" / "results" / "op_profile.json"
#: The kinds of op time, in report order: (kind, what it is).
KINDS = (
    ("dense matmuls", "the dense layers' matmuls (bias, GELU and residual adds fused in where oneDNN fuses them)"),
    ("attention matmuls", "query x key and probabilities x value"),
    ("softmax", "attention's softmax"),
    ("compiled kernels", "XLA-compiled kernels (int8's quantization, LayerNorm, GELU)"),
    ("gathers and layout", "gathers, pads, slices, concatenations, reshapes"),
    ("tokenizer", "tensorflow-text's ops"),
    ("other arithmetic", "LayerNorm, casts, adds, the head's pooling, index arithmetic"),
    ("variables and bookkeeping", "variable reads, constants, identities"),
)
_DENSE = ("MatMul", "_MklMatMul", "_MklNativeMatMul", "_MklFusedMatMul", "_MklNativeFusedMatMul", "_FusedMatMul",
          "_QuantizedMatMul", "QuantizedMatMul", "_MklQuantizedMatMul")
_LAYOUT = ("GatherV2", "Gather", "GatherNd", "ResourceGather", "Pad", "PadV2", "StridedSlice", "Slice", "ConcatV2",
           "Concat", "Reshape", "Transpose", "_MklTranspose", "Pack", "Unpack", "Tile", "Split", "SplitV", "Where",
           "ScatterNd", "TensorScatterUpdate", "ExpandDims", "Squeeze", "Bitcast", "BroadcastTo", "Fill")
_BOOKKEEPING = ("ReadVariableOp", "VarHandleOp", "Const", "_EagerConst", "Identity", "IdentityN", "NoOp", "_Arg",
                "_Retval", "Shape", "ShapeN", "Size", "Rank", "_HostRecv", "_HostSend", "_Recv", "_Send",
                "PartitionedCall", "StatefulPartitionedCall")
_TOKENIZER_WORDS = ("Tokeniz", "Wordpiece", "Unicode", "Regex", "UTF8", "StringSplit", "Normalize", "CaseFold",
                    "StringToHash", "LookupTable")
#: Executor events: the container of a batch of ready ops, and a compiled kernel's asynchronous launch.
_EXECUTOR = "ExecutorState::Process"
_ASYNC = ("ExecutorState::ProcessAsync::Start", "ExecutorState::ProcessAsync::Done")


def kind_of(op_type: str) -> str:
    """The kind (`KINDS`) of a TensorFlow op type."""
    if op_type in _DENSE:
        return "dense matmuls"
    if "BatchMatMul" in op_type:
        return "attention matmuls"
    if "Softmax" in op_type:
        return "softmax"
    if op_type in ("_XlaRun", "XlaLaunch", "_XlaCompile", "XlaLaunchV2"):
        return "compiled kernels"
    if op_type in _LAYOUT:
        return "gathers and layout"
    if any(word in op_type for word in _TOKENIZER_WORDS):
        return "tokenizer"
    if op_type in _BOOKKEEPING:
        return "variables and bookkeeping"
    return "other arithmetic"


def attribute(lines: list[list[tuple[str, int, int]]], wall_s: float, repeats: int = 1) -> dict:
    """Op time by kind from the executor threads' trace lines, per repeat (a pass, a call).

    Args:
        lines: one list per executor thread of `(event name, start ns, end ns)`. A TensorFlow op's event
            is named `"node name:OpType"`; `ExecutorState::Process` spans a batch of ready ops, so its time
            outside its ops is the executor's; `ExecutorState::ProcessAsync::Start`/`Done` run a compiled
            kernel. An event inside another op's event on the same line is part of that op.
        wall_s: the traced stretch's wall time.
        repeats: how many passes or calls the trace holds; every figure is divided by it.

    Returns:
        {"kinds": {kind: ms}, "op_types": {type: {"ms", "count"}} (kinds' op types, the compiled
        kernels' launches named "XLA launch"), "op_ms", "executor_ms", "no_op_ms", "wall_ms"}.
    """
    kinds = {kind: 0.0 for kind, _ in KINDS}
    types: dict[str, dict] = {}
    executor_ns, spans = 0, []
    for events in lines:
        events = sorted(events, key=lambda e: (e[1], -e[2]))
        reach = None  # the end of the op event that holds what follows
        for name, start, end in events:
            if name == _EXECUTOR:
                executor_ns += end - start
                continue
            if reach is not None and end <= reach:
                continue  # inside an op counted already
            if name in _ASYNC:
                op_type, kind = "XLA launch", "compiled kernels"
            elif ":" in name and "::" not in name:
                op_type = name.rsplit(":", 1)[1]
                kind = kind_of(op_type)
            else:
                continue  # the executor's or a kernel's own markers, outside any op
            reach = end
            spans.append((start, end))
            kinds[kind] += (end - start) / 1e6
            entry = types.setdefault(op_type, {"ms": 0.0, "count": 0, "kind": kind})
            entry["ms"] += (end - start) / 1e6
            entry["count"] += 1
    op_ms = sum(kinds.values())
    wall_ms = wall_s * 1000
    return {"kinds": {k: v / repeats for k, v in kinds.items()},
            "op_types": {k: {"ms": v["ms"] / repeats, "count": v["count"] / repeats, "kind": v["kind"]}
                         for k, v in sorted(types.items(), key=lambda kv: -kv[1]["ms"])},
            "op_ms": op_ms / repeats, "executor_ms": max(0.0, executor_ns / 1e6 - op_ms) / repeats,
            "no_op_ms": max(0.0, wall_ms - union_seconds(spans) / 1e6) / repeats, "wall_ms": wall_ms / repeats}


def executor_lines(logdir: str) -> list[list[tuple[str, int, int]]]:
    """The executor threads' events (`tf_Compute` lines) of the trace `tf.profiler` wrote under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise RuntimeError(f"the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(files[-1]).read_bytes())
    out = []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            base = line.timestamp_ns * 1000  # ps
            out.append([(names[e.metadata_id].name, (base + e.offset_ps) // 1000,
                         (base + e.offset_ps + e.duration_ps) // 1000) for e in line.events])
    return out


# ---------------------------------------------------------------------------- inside a precision's process


def _profiled(run, repeats: int, logdir: str) -> dict:
    from bert_tf.runtime import tf

    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(logdir)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    return attribute(executor_lines(logdir), wall, repeats)


def child(precision: str, workdir: Path, out: Path, passes: int, calls: int) -> int:
    """One precision: load, warm up, time, profile; the results as JSON in `out`."""
    from bench.latency import SENTENCES
    from bert_tf import BertEmbedder
    from bert_tf.runtime import STREAMS, tf

    meta = json.loads((workdir / "op_profile.json").read_text())
    texts, sentence = meta["texts"], [SENTENCES["short"]]
    embedder = BertEmbedder.from_checkpoint(meta["checkpoint"], precision=precision)
    model_calls = []
    embedder.on_call = model_calls.append
    embedder.embed_words(texts, progress=False)
    calls_per_pass = len(model_calls)
    embedder.on_call = None
    for _ in range(5):
        embedder.embed_words(sentence, progress=False)
    pass_s = timed(lambda: embedder.embed_words(texts, progress=False), passes)  # no RSS sampler thread: it
    call_s = timed(lambda: embedder.embed_words(sentence, progress=False), calls)  # would wake in a query
    logdir = str(workdir / f"trace_{precision}")
    result = {"precision": embedder.precision, "streams": embedder.streams, "process_streams": STREAMS,
              "tf": tf.__version__, "model_calls_per_pass": calls_per_pass, "pass_s": pass_s, "call_s": call_s,
              "pass": _profiled(lambda: embedder.embed_words(texts, progress=False), 1, logdir),
              "call": _profiled(lambda: embedder.embed_words(sentence, progress=False), calls, logdir)}
    shutil.rmtree(logdir, ignore_errors=True)
    out.write_text(json.dumps(result, default=json_default))
    return 0


# ---------------------------------------------------------------------------- the driver


def child_env(precision: str) -> dict:
    """A precision's process environment: the thread pools `bert-tf embed` would start it with."""
    from bert_tf.streams import process_streams_for

    streams = process_streams_for(None, precision, {})
    return tool_env(None if streams is None else str(streams))


def _table(profile: dict, real_ms: float, unit: str) -> list[str]:
    op_ms = profile["op_ms"] or 1.0
    lines = [f"| kind | ms {unit} | share of op time |", "|---|---|---|"]
    for kind, _ in KINDS:
        ms = profile["kinds"][kind]
        if ms >= 0.005:
            lines.append(f"| {kind} | {ms:.2f} | {100 * ms / op_ms:.1f}% |")
    lines += [f"| **all ops** | **{profile['op_ms']:.2f}** | 100% |", "",
              f"Wall {unit}: {real_ms:.2f} ms unprofiled (median), {profile['wall_ms']:.2f} profiled. Outside the ops: "
              f"the executor between ops {profile['executor_ms']:.2f} ms; no op running on any thread (Python, "
              f"dispatch, numpy) {profile['no_op_ms']:.2f} ms, {100 * profile['no_op_ms'] / profile['wall_ms']:.1f}% "
              f"of the profiled wall.", "",
              "Top op types: " + "; ".join(f"`{t}` {v['ms']:.2f} ms ({v['count']:g})"
                                           for t, v in list(profile["op_types"].items())[:8]) + "."]
    return lines


def render(report: dict) -> str:
    lines = [f"Where the time goes ({report['machine']}, {report['cores']} cores; {report['date']}; "
             f"{report['checkpoint']}; {report['sentences']} sentences, {report['tokens']} tokens; "
             f"the sentence: \"{report['sentence']}\")."]
    for precision, r in report["results"].items():
        pools = f"{r['process_streams']} thread pools" if r["process_streams"] > 1 else "TensorFlow's pools"
        lines += ["", f"### {precision}: the workload ({r['model_calls_per_pass']} model calls, {r['streams']} at "
                      f"once, {pools}; TensorFlow {r['tf']})", ""]
        lines += _table(r["pass"], 1000 * statistics.median(r["pass_s"]), "a pass")
        lines += ["", f"### {precision}: one short sentence (`embed_words`, {len(r['call_s'])} calls)", ""]
        lines += _table(r["call"], 1000 * statistics.median(r["call_s"]), "a call")
    return "\n".join(lines)


def driver(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    return in_workdir(args.workdir, "bert_tf_profile_", lambda workdir: _drive(args, workdir, log))


def _drive(args, workdir: Path, log) -> int:
    from bench.latency import SENTENCES
    from bert_tf.model.hardware import cpu_flags

    checkpoint, header = tool_workload(workdir, args.checkpoint, args.sentences, "op_profile.json", log)
    report = {**header, "checkpoint": Path(checkpoint).name, "sentence": SENTENCES["short"], "passes": args.passes,
              "calls": args.calls, "results": {}}
    for precision in args.precisions:
        if precision == "bfloat16" and "avx512_bf16" not in cpu_flags() and not args.explicit:
            log("bench.op_profile: no native bfloat16 on this CPU (avx512_bf16): bfloat16 left out "
                "(ask for it with --precisions to profile the emulated path)")
            continue
        log(f"profiling {precision} ...")
        out = workdir / f"op_profile_{precision}.json"
        proc = subprocess.run([sys.executable, "-m", "bench.op_profile", "--child", precision, "--workdir",
                               str(workdir), "--passes", str(args.passes), "--calls", str(args.calls),
                               "--out", str(out)], cwd=ROOT, env=child_env(precision),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            log(f"bench.op_profile: {precision}: exit {proc.returncode}: "
                + " ".join(proc.stderr.strip().splitlines()[-3:]))
            return 1
        report["results"][precision] = json.loads(out.read_text())
    print(render(report))
    log(f"bench.op_profile: results in {save_json(report, args.json, RESULTS_PROFILE)}")
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return int(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--precisions", default=None,
                   help=f"comma-separated, from {', '.join(PRECISIONS)} (default: bfloat16,int8; float32 with --quick)")
    p.add_argument("--passes", type=_positive, help="unprofiled passes over the workload (default 3; 1 with --quick)")
    p.add_argument("--calls", type=_positive, help="calls on the short sentence, unprofiled and then profiled "
                                                   "(default 30; 5 with --quick)")
    p.add_argument("--sentences", type=_positive, help="workload size (default 256; 32 with --quick)")
    p.add_argument("--checkpoint", help="a checkpoint directory to run instead of the BERT-Base-shaped one")
    p.add_argument("--quick", action="store_true", help="smoke run: 32 sentences, 1 pass, 5 calls, float32")
    p.add_argument("--json", help=f"where to write the JSON results (default {RESULTS_PROFILE.relative_to(ROOT)})")
    p.add_argument("--workdir", help="keep the checkpoint here and reuse it (default: a temporary directory)")
    p.add_argument("--child", choices=PRECISIONS, help=argparse.SUPPRESS)  # internal: one precision's process
    p.add_argument("--out", help=argparse.SUPPRESS)  # internal: where the child writes its results
    args = p.parse_args(argv)
    args.explicit = args.precisions is not None
    args.precisions = (args.precisions or ("float32" if args.quick else "bfloat16,int8")).split(",")
    unknown = [x for x in args.precisions if x not in PRECISIONS]
    if unknown:
        p.error(f"--precisions: unknown {', '.join(unknown)}; choose from {', '.join(PRECISIONS)}")
    args.passes = args.passes or (1 if args.quick else 3)
    args.calls = args.calls or (5 if args.quick else 30)
    args.sentences = args.sentences or (32 if args.quick else 256)
    if args.child and not (args.workdir and args.out):
        p.error("--child needs --workdir and --out")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, Path(args.workdir), Path(args.out), args.passes, args.calls)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
