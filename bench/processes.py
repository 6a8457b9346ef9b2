"""Every engine and step in a process of its own: launching one from the driver, running one inside it,
and what the driver records about the machine around them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.context import ROOT, THREADS, Context, json_default
from bench.cpu import CPU_FLAGS, bf16_support, cpu_flags, cpu_identity, describe_cpu, onednn_info
from bench.measure import children_cpu_seconds, cpu_seconds, peak_rss
from bench.prepare import STEPS
from bench.registry import ENGINES


def child_env() -> dict:
    """Same thread budget for every engine; quiet TensorFlow."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(THREADS), "OPENBLAS_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
        "TF_NUM_INTRAOP_THREADS": str(THREADS), "RAYON_NUM_THREADS": str(THREADS),
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"), "TOKENIZERS_PARALLELISM": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def protocol_stdout():
    """Inside a served process (`start_server`): a line-buffered file on the real stdout for the protocol;
    stdout itself now goes to stderr, so nothing the libraries print can reach the driver's pipe."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return protocol


def start_server(module: str, serve_args: list[str], workdir: Path, stderr_name: str, env: dict, log,
                 label: str) -> tuple[subprocess.Popen, dict | None, list[str]]:
    """Starts `python -m module --serve ... --workdir workdir` and reads its first protocol line.

    Returns `(process, the line as JSON, [])`, or `(process, None, the last lines of its stderr)` when it
    exited without a line (the stderr is kept in `workdir / stderr_name`)."""
    log(f"[{time.strftime('%H:%M:%S')}] starting {label} ...")
    err_path = workdir / stderr_name
    with open(err_path, "w") as err:  # the child holds its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", module, "--serve", *serve_args, "--workdir", str(workdir)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                cwd=ROOT)
    line = proc.stdout.readline()
    if line:
        return proc, json.loads(line), []
    proc.wait()
    return proc, None, err_path.read_text(errors="replace").strip().splitlines()[-5:]


def stop_servers(procs) -> None:
    """Asks every served process still running to quit, and waits for it."""
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.write("quit\n")
            proc.stdin.close()
            proc.wait(timeout=60)


def runs_for(name: str, args) -> int:
    """Timed passes for an engine or step: --runs, else 1 with --quick, else the engine's default."""
    if args.runs is not None:
        return args.runs
    if args.quick:
        return 1
    return ENGINES[name].default_runs if name in ENGINES else 3


def run_child(kind: str, name: str, args, workdir: Path, log) -> dict:
    """Runs `python -m bench.run --engine NAME` (or `--step NAME`) and returns its result, or an error record."""
    out = workdir / f"{name}.result.json"
    err = workdir / f"{name}.stderr.txt"
    cmd = [sys.executable, "-m", "bench.run", f"--{kind}", name, "--workdir", str(workdir),
           "--runs", str(runs_for(name, args)), "--batch-size", str(args.batch_size), "--out", str(out)]
    if args.bert_tf_batch_size is not None:
        cmd += ["--bert-tf-batch-size", str(args.bert_tf_batch_size)]
    log(f"[{time.strftime('%H:%M:%S')}] {kind} {name} ...")
    (busy0, steal0), own0, t0 = cpu_seconds(), children_cpu_seconds(), time.perf_counter()
    with open(err, "w") as stderr:
        env = {**child_env(), **dict(ENGINES[name].env if kind == "engine" and name in ENGINES else ())}
        proc = subprocess.run(cmd, env=env, stdout=stderr, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - t0
    busy1, steal1 = cpu_seconds()
    foreign = max(0.0, (busy1 - busy0) - (children_cpu_seconds() - own0)) / wall
    stolen = (steal1 - steal0) / wall
    if proc.returncode != 0 or not out.exists():
        tail = err.read_text(errors="replace").strip().splitlines()[-15:]
        log(f"    FAILED (exit {proc.returncode}):\n      " + "\n      ".join(tail))
        return {"error": f"exit {proc.returncode}: " + (tail[-1] if tail else "no output")}
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    result["other_cpu_load"] = foreign
    result["stolen_cpu"] = stolen
    if "skipped" in result:
        log(f"    {result['skipped']}")
    log(f"    done in {wall:.0f} s (meanwhile other processes used {foreign:.2f} cores, "
        f"the hypervisor took {stolen:.2f})")
    return result


def child_main(args) -> int:
    """Runs one engine or step in this (sub)process and writes its JSON result."""
    workdir = Path(args.workdir)
    data = json.loads((workdir / "workload.json").read_text())
    meta = json.loads((workdir / "meta.json").read_text())
    ctx = Context(workdir, args.runs, args.batch_size, args.bert_tf_batch_size, data["texts"], data["lengths"], meta)
    fn = STEPS[args.step] if args.step else ENGINES[args.engine].run
    result = fn(ctx)
    result["peak_rss"] = peak_rss()
    Path(args.out).write_text(json.dumps(result, default=json_default))
    return 0


def machine_info() -> dict:
    """The CPU, its flags, whether bfloat16 is native on it, and what TensorFlow's oneDNN says (a fresh process)."""
    model, cores = "unknown", os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    flags = cpu_flags()
    identity = cpu_identity()
    return {"cpu": model, "cpu_identity": identity, "cpu_described": describe_cpu(identity), "cores": cores,
            "simd": [f for f in CPU_FLAGS if f in flags], **bf16_support(flags),
            "onednn": onednn_info(child_env()), "platform": platform.platform(), "python": platform.python_version()}


def package_versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("numpy", "tensorflow", "tensorflow-text", "keras", "torch", "transformers", "tokenizers",
                 "onnxruntime", "onnx", "onnxscript", "openvino", "nncf", "ctranslate2", "bert_tf"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
