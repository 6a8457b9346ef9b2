"""The latency of embedding one sentence, warm: what a search query or a serving request costs.

    python -m bench.latency                     # every engine, 20 rounds of 10 calls per sentence
    python -m bench.latency --quick             # smoke run: 3 rounds of 3 calls
    python -m bench.latency --engines bert_tf,ov_f32_latency,ort --rounds 40

Each engine runs in a process of its own, on the bench's BERT-Base-shaped weights (the same
checkpoint, HF copy, ONNX export and OpenVINO IRs as `bench.run`, 2 threads each), loaded and warmed
up once. The driver then asks them in turn, round after round (the order reversed every other
round), for a few calls on each sentence; only one engine computes at a time, the others wait on
their pipe, and the pause after each turn lets thread pools that spin after a call (ONNX Runtime,
OpenVINO) go quiet before the next engine starts. Drift over the minutes of a run therefore
touches every engine alike. Per engine and sentence the report gives p50 and p99 (and the mean and
the minimum) over all its calls, and p50 over the fastest peer's.

One call is what a user's code does for one text: the engine's tokenizer on the sentence, the model,
and the vectors back in numpy. For bert_tf that is `BertEmbedder.embed_words([sentence])`, word
vectors pooled from the sum of the last four layers; for the peers, the token vectors (the sum of the
last four layers) of `bench.engines_peers`' call, with no pooling into words (which would add to
theirs). The sentences: a short query-like one and one of 40 words (`SENTENCES`).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench import workload
from bench.context import BATCH_SIZE, REQUIREMENTS_HINT, RESULTS, ROOT, THREADS, Context, save_json

#: The two sentences, each timed on its own.
SENTENCES = {
    "short": "how do i reset my password",
    "40_words": ("The committee met on a cold Tuesday morning to review the budget for the new library, and after "
                 "two hours of careful discussion they agreed to fund longer opening hours, more computers, and a "
                 "small garden for all the children."),
}
#: What OpenVINO's engines need, its conversion step included.
OPENVINO = ("openvino", "nncf", "torch", "transformers")
#: The engines (servers): name -> (what one call is, modules needed, preparation steps).
ENGINES = {
    "bert_tf": ("bert_tf `BertEmbedder.embed_words([s])`, float32", ("tensorflow", "tensorflow_text"), ()),
    "bert_tf_bf16": ("bert_tf `BertEmbedder.from_checkpoint(precision=\"bfloat16\").embed_words([s])`",
                     ("tensorflow", "tensorflow_text"), ()),
    "bert_tf_int8": ("bert_tf `BertEmbedder.from_checkpoint(precision=\"int8\").embed_words([s])`",
                     ("tensorflow", "tensorflow_text"), ()),
    "bert_tf_int8_litert": ("bert_tf `BertEmbedder.from_checkpoint(precision=\"int8-litert\").embed_words([s])`",
                            ("tensorflow", "tensorflow_text"), ()),
    "ov_f32_latency": ("OpenVINO float32, LATENCY hint, HF tokenizer", OPENVINO, ("export-openvino",)),
    "ov_bf16_latency": ("OpenVINO bf16 (`INFERENCE_PRECISION_HINT`), LATENCY hint", OPENVINO, ("export-openvino",)),
    "ov_int8_latency": ("OpenVINO static int8 (`nncf.quantize`), LATENCY hint", OPENVINO, ("export-openvino",)),
    "ov_int8w_latency": ("OpenVINO weight-only int8 (`nncf.compress_weights`), LATENCY hint", OPENVINO,
                         ("export-openvino",)),
    "ort": ("ONNX Runtime float32 (the bench's export), HF tokenizer",
            ("onnxruntime", "onnx", "onnxscript", "torch", "transformers"), ("export-onnx",)),
    "torch": ("PyTorch float32, HF BertModel, HF tokenizer", ("torch", "transformers"), ()),
}
DEFAULT_ENGINES = ("bert_tf", "bert_tf_bf16", "bert_tf_int8_litert", "ov_f32_latency", "ov_bf16_latency",
                   "ov_int8_latency", "ort", "torch")
#: bert_tf's engines; the others are the peers.
BERT_TF = ("bert_tf", "bert_tf_bf16", "bert_tf_int8", "bert_tf_int8_litert")
#: Untimed, after each engine's turn: lets spinning thread pools go quiet (as `interleaved.SETTLE_S`).
SETTLE_S = 0.2
WARMUP_CALLS = 20
RESULTS_LATENCY = RESULTS.with_name("latency.json")


# ---------------------------------------------------------------------------- inside an engine's process


def _engine_call(name: str, ctx: Context):
    """The engine `name`'s call: one sentence in, numpy vectors out; or a string saying why it cannot run."""
    missing = [m for m in ENGINES[name][1] if importlib.util.find_spec(m) is None]
    if missing:
        return f"skipped: missing {', '.join(missing)}"
    if name in BERT_TF:
        from bench.engines_bert_tf import precision_api
        from bench.measure import tf_threads
        from bert_tf import BertEmbedder
        from bert_tf.runtime import tf

        tf_threads(tf)
        precision = {"bert_tf": "float32", "bert_tf_bf16": "bfloat16", "bert_tf_int8": "int8",
                     "bert_tf_int8_litert": "int8-litert"}[name]
        if precision != "float32" and not precision_api()["from_checkpoint"]:
            return "skipped: this bert_tf has no precision option"
        kwargs = {} if precision == "float32" else {"precision": precision}
        embedder = BertEmbedder.from_checkpoint(ctx.checkpoint, **kwargs)
        return lambda s: [w.vector for w in embedder.embed_words([s], progress=False)[0]]
    from bench.engines_peers import hf_tokenizer

    tokenizer = hf_tokenizer(ctx)

    def ids_mask(s):
        ids = np.array([tokenizer(s)["input_ids"]], np.int64)
        return ids, np.ones_like(ids)

    if name.startswith("ov_"):
        from bench.engines_openvino import bf16_unsupported, compile_model, model_path

        precision, model = {"ov_f32_latency": ("f32", "f32"), "ov_bf16_latency": ("bf16", "f32"),
                            "ov_int8_latency": ("f32", "int8"), "ov_int8w_latency": ("f32", "int8w")}[name]
        if precision == "bf16" and bf16_unsupported():
            return bf16_unsupported()
        request = compile_model(model_path(ctx, model), precision, "LATENCY").create_infer_request()
        return lambda s: request.infer(dict(zip(("input_ids", "attention_mask"), ids_mask(s))),
                                       share_outputs=False)["last4"][0]
    if name == "ort":
        from bench.engines_peers import ort_session

        session = ort_session(ctx)
        return lambda s: session.run(["last4"], dict(zip(("input_ids", "attention_mask"), ids_mask(s))))[0][0]
    from bench.engines_peers import torch_ready

    _, call, _, _ = torch_ready(ctx)
    return lambda s: call(*ids_mask(s))[0]


def serve(name: str, workdir: Path) -> int:
    """An engine's process: load, warm up, say "ready", then answer "SENTENCE N" with N call times (JSON)
    until "quit". Only the protocol goes to the real stdout; anything the libraries print goes to stderr."""
    from bench.processes import protocol_stdout

    protocol = protocol_stdout()
    data = json.loads((workdir / "workload.json").read_text())
    meta = json.loads((workdir / "meta.json").read_text())
    ctx = Context(workdir, 1, BATCH_SIZE, None, data["texts"], data["lengths"], meta)
    t = time.perf_counter()
    call = _engine_call(name, ctx)
    if isinstance(call, str):
        protocol.write(json.dumps({"skipped": call}) + "\n")
        return 0
    for _ in range(WARMUP_CALLS):
        for sentence in SENTENCES.values():
            call(sentence)
    protocol.write(json.dumps({"ready_s": time.perf_counter() - t}) + "\n")
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        times = []
        for _ in range(int(words[1])):
            t = time.perf_counter()
            call(SENTENCES[words[0]])
            times.append(time.perf_counter() - t)
        protocol.write(json.dumps(times) + "\n")
    return 0


# ---------------------------------------------------------------------------- the driver


def _start(name: str, workdir: Path, env: dict, log) -> tuple[subprocess.Popen, dict]:
    from bench.processes import start_server

    proc, hello, tail = start_server("bench.latency", [name], workdir, f"latency_{name}.stderr.txt", env, log, name)
    if hello is None:
        return proc, {"error": f"exit {proc.returncode}: " + (tail[-1] if tail else "no output")}
    return proc, hello


def summarise(times: list[float]) -> dict:
    """p50, p99, mean and minimum of call times (seconds), in milliseconds."""
    ms = np.array(times) * 1000
    return {"calls": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}


def render(report: dict) -> str:
    lines = [f"Single-sentence latency, warm ({report['machine']}; {report['date']}; {THREADS} threads per engine; "
             f"{report['rounds']} interleaved rounds of {report['calls_per_turn']} calls per engine and sentence).", ""]
    for key, sentence in SENTENCES.items():
        res = report["sentences"][key]
        lines += [f"Sentence `{key}` ({len(sentence.split())} words): \"{sentence}\"", "",
                  "| engine | p50 ms | p99 ms | mean ms | min ms | p50 / fastest peer's p50 |",
                  "|---|---|---|---|---|---|"]
        peer = res.get("fastest_peer")
        for name, s in res["engines"].items():
            ratio = f"{s['p50_ms'] / res['engines'][peer]['p50_ms']:.2f}" if peer else "-"
            lines.append(f"| {name} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} | {s['min_ms']:.2f} "
                         f"| {ratio} |")
        lines += ["", f"Fastest peer (p50): {peer or '-'}.", ""]
    for name, why in report["not_run"].items():
        lines.append(f"- {name}: {why}")
    lines += [f"- {name}: {ENGINES[name][0]}" for name in report["engines"]]
    return "\n".join(lines)


def driver(args) -> int:
    from bench.cpu import cpu_identity, describe_cpu
    from bench.processes import child_env, run_child, stop_servers
    from bench.run import vocabulary, write_work_files

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    selected = args.engines.split(",") if args.engines else list(DEFAULT_ENGINES)
    unknown = [e for e in selected if e not in ENGINES]
    if unknown:
        log(f"bench.latency: unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
        return 2
    missing = {name: [m for m in ENGINES[name][1] if importlib.util.find_spec(m) is None] for name in selected}
    not_run = {name: f"skipped: missing {', '.join(m)}; {REQUIREMENTS_HINT}" for name, m in missing.items() if m}
    selected = [name for name in selected if name not in not_run]
    for name, why in not_run.items():
        log(f"bench.latency: {name} {why}")
    if not selected:
        log("bench.latency: no engine left to measure")
        return 2
    found = vocabulary(log)
    if found is None:
        return 2
    vocab_path, vocab = found
    texts, lengths = workload.make_workload(vocab, 32, workload.DEFAULT_SEED)  # the OpenVINO int8 calibration
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bert_tf_latency_"))
    workdir.mkdir(parents=True, exist_ok=True)
    procs = {}
    try:
        write_work_files(workdir, texts, lengths.tolist(), vocab_path)
        step_args = SimpleNamespace(runs=1, quick=True, batch_size=BATCH_SIZE, bert_tf_batch_size=None)
        for step in ["prepare"] + list(dict.fromkeys(s for e in selected for s in ENGINES[e][2])):
            done = run_child("step", step, step_args, workdir, log)
            if "error" in done:
                if step == "prepare":
                    return 1
                not_run.update({e: f"step {step} failed: {done['error']}" for e in selected if step in ENGINES[e][2]})
        env = child_env()
        for name in selected:
            if name in not_run:
                continue
            proc, hello = _start(name, workdir, env, log)
            if "ready_s" in hello:
                procs[name] = proc
            else:
                not_run[name] = hello.get("skipped") or hello.get("error")
                proc.wait()
        times = {name: {key: [] for key in SENTENCES} for name in procs}
        order = list(procs)
        for r in range(args.rounds):
            log(f"[{time.strftime('%H:%M:%S')}] round {r + 1} of {args.rounds}")
            for name in (order if r % 2 == 0 else order[::-1]):
                for key in SENTENCES:
                    procs[name].stdin.write(f"{key} {args.calls}\n")
                    procs[name].stdin.flush()
                    times[name][key] += json.loads(procs[name].stdout.readline())
                time.sleep(SETTLE_S)
        report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "machine": describe_cpu(cpu_identity()), "rounds": args.rounds, "calls_per_turn": args.calls,
                  "engines": list(procs), "not_run": not_run, "sentences": {}, "raw_s": times}
        for key in SENTENCES:
            engines = {name: summarise(times[name][key]) for name in procs}
            peers = {name: s["p50_ms"] for name, s in engines.items() if name not in BERT_TF}
            report["sentences"][key] = {"text": SENTENCES[key], "engines": engines,
                                        "fastest_peer": min(peers, key=peers.get) if peers else None}
        print(render(report))
        log(f"bench.latency: results in {save_json(report, args.json, RESULTS_LATENCY)}")
        return 0
    finally:
        stop_servers(procs.values())
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", help=f"comma-separated, from: {', '.join(ENGINES)} "
                                     f"(default: {', '.join(DEFAULT_ENGINES)})")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 20; 3 with --quick)")
    p.add_argument("--calls", type=int, help="calls per engine, sentence and round (default 10; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of 3 calls")
    p.add_argument("--json", help=f"where to write the JSON results (default {RESULTS_LATENCY.relative_to(ROOT)})")
    p.add_argument("--workdir", help="keep the checkpoint and exports here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="do not delete the temporary work directory")
    p.add_argument("--serve", choices=list(ENGINES), help=argparse.SUPPRESS)  # internal: one engine's process
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 20)
    args.calls = args.calls or (3 if args.quick else 10)
    if args.rounds < 1 or args.calls < 1:
        p.error("--rounds and --calls must be positive")
    if args.serve and not args.workdir:
        p.error("--serve needs --workdir")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args.serve, Path(args.workdir))
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
