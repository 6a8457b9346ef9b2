"""Beam's overhead: the same corpus through `bert-tf embed` and `bert-tf beam-embed`, on the same cores.

Three commands, each a fresh process tree, on one file of `--lines` benchmark sentences
(`workload.make_workload`: the benchmark's length mix, built from the checkpoint's vocabulary):

  embed     `bert-tf embed --input F --output X.jsonl` (TensorFlow's default threads)
  beam-1    `bert-tf beam-embed --input F --output P` (the DirectRunner's FnApiRunner, in process)
  beam-2x1  the same with `--direct_num_workers=2 --direct_running_mode=multi_processing`,
            every process held to one TensorFlow thread (TF_NUM_INTRAOP_THREADS=1)
  dask-2x1  `--runner DaskRunner` on a local Dask scheduler with 2 worker processes of 1 thread
            (one TensorFlow thread each), started before the clock and stopped after; the corpus
            is split into 8 files, the DaskRunner's unit of parallelism (docs/corpus.md). Its
            worker peaks are the workers' VmHWM at the end of the run. Skipped without `distributed`.

With `--grouping`, only the cost of JSON Lines' duplicate-id check (a GroupByKey on the id,
bert_tf/beam/sources.py) is measured instead: `beam-1` on the same sentences as a `.txt` file (no
grouping) and as a `.jsonl` file (every record through the grouping), interleaved, `--repeats` times;
reported per pair: both walls and their ratio (jsonl / txt). Parsing JSON is the only other
difference (microseconds a line).

Each is also run on a 10-line file. Reported per command: wall seconds, end-to-end
throughput (lines / wall), the marginal throughput ((lines - 10) / (wall - wall of 10 lines):
start-up, import and model load taken out), its ratio to `embed`'s (the target is
>= 0.85), and the peak resident memory of every process of the tree (VmHWM, sampled
from /proc), the launcher's and each Beam worker's apart.

    python -m bench.beam --quick            # 300 lines: a check that it all runs (minutes)
    python -m bench.beam                    # 5,000 lines: the measurement for the README
    python -m bench.beam --grouping         # 5,000 lines: the duplicate-id grouping's cost
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMALL = 10


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _hwm(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        return kib * 1024, cmd
    except (OSError, StopIteration, ValueError):
        return None


def run_measured(cmd: list[str], env: dict) -> dict:
    """Runs `cmd`; wall time and the peak RSS of each process of its tree (sampled every 0.1 s)."""
    peaks: dict[int, tuple[int, str]] = {}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in _tree(proc.pid):
                seen = _hwm(pid)
                if seen is not None and seen[0] >= peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = seen
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    launcher = peaks.get(proc.pid, (0, ""))[0]
    # Beam's worker processes (not the shells that start them).
    workers = sorted((rss for pid, (rss, cmd_) in peaks.items()
                      if pid != proc.pid and "sdk_worker_main" in cmd_ and rss > 50e6), reverse=True)
    return {"wall_s": wall, "launcher_peak_mb": launcher / 1e6, "worker_peaks_mb": [w / 1e6 for w in workers],
            "stderr_tail": stderr.strip().splitlines()[-2:]}


def commands(corpus: Path, out: Path, checkpoint: str) -> dict[str, tuple[list[str], dict]]:
    bert_tf = [sys.executable, "-m", "bert_tf"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    one_thread = {**env, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    common = ["--input", str(corpus), "--checkpoint", checkpoint]
    return {
        "embed": (bert_tf + ["embed", *common, "--output", str(out / "embed.jsonl"), "--force", "--no-progress"], env),
        "beam-1": (bert_tf + ["beam-embed", *common, "--output", str(out / "beam1"), "--force"], env),
        "beam-2x1": (bert_tf + ["beam-embed", *common, "--output", str(out / "beam2"), "--force",
                                "--direct_num_workers=2", "--direct_running_mode=multi_processing"], one_thread),
    }


def run_dask(corpus: Path, out: Path, checkpoint: str, env: dict) -> dict:
    """`beam-embed --runner DaskRunner` on a fresh local cluster (2 workers x 1 thread) over `corpus` split in 8."""
    from bert_tf.beam.local_dask import local_dask_cluster

    lines = corpus.read_text(encoding="utf-8").splitlines()
    parts = out / f"parts-{corpus.stem}"
    parts.mkdir(exist_ok=True)
    n = min(8, len(lines))
    for i in range(n):
        (parts / f"part-{i}.txt").write_text("\n".join(lines[i::n]) + "\n", encoding="utf-8")
    with local_dask_cluster(out / f"dask-{corpus.stem}", workers=2, threads=1, env=env) as cluster:
        pids = cluster.worker_pids()
        cmd = [sys.executable, "-m", "bert_tf", "beam-embed", "--input", str(parts / "*.txt"), "--checkpoint",
               checkpoint, "--output", str(out / "dask"), "--force", "--runner", "DaskRunner",
               "--dask_client_address", cluster.address]
        result = run_measured(cmd, env)
        result["worker_peaks_mb"] = sorted((seen[0] / 1e6 for seen in map(_hwm, pids.values()) if seen),
                                           reverse=True)
    return result


def grouping_cost(sentences: list[str], checkpoint: str, repeats: int) -> dict:
    """`beam-1` over the same sentences as `.txt` (no grouping) and `.jsonl` (grouped by id), interleaved."""
    pairs = []
    with tempfile.TemporaryDirectory(prefix="bench-beam-grouping-") as tmp:
        tmp = Path(tmp)
        txt, jsonl = tmp / "corpus.txt", tmp / "corpus.jsonl"
        txt.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        jsonl.write_text("".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(sentences)),
                         encoding="utf-8")
        for repeat in range(repeats):
            pair = {}
            for name, corpus in (("txt", txt), ("jsonl", jsonl)):
                cmd, env = commands(corpus, tmp, checkpoint)["beam-1"]
                print(f"[{time.strftime('%H:%M:%S')}] beam-1 on {corpus.name} ({repeat + 1}/{repeats}) ...",
                      file=sys.stderr, flush=True)
                pair[name] = run_measured(cmd, env)["wall_s"]
            pair["ratio"] = pair["jsonl"] / pair["txt"]
            pairs.append(pair)
            print(f"txt {pair['txt']:.1f} s, jsonl {pair['jsonl']:.1f} s, jsonl/txt {pair['ratio']:.3f}")
    return {"pairs": pairs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=5000, help="sentences in the corpus (default 5000)")
    parser.add_argument("--quick", action="store_true", help="300 lines: check that everything runs")
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: as for bert-tf embed)")
    parser.add_argument("--out", help="also write the results here as JSON")
    parser.add_argument("--grouping", action="store_true",
                        help="measure only the JSON Lines duplicate-id grouping (txt vs jsonl, interleaved)")
    parser.add_argument("--repeats", type=int, default=2, help="--grouping: pairs to run (default 2)")
    args = parser.parse_args(argv)
    lines = 300 if args.quick else args.lines

    from bert_tf.store.checkpoint_dir import CheckpointDir
    from bert_tf.text.vocab import load_vocab
    from bench.workload import length_mix, make_workload

    checkpoint = CheckpointDir.resolve(args.checkpoint)
    sentences, lengths = make_workload(load_vocab(checkpoint.path / "vocab.txt"), lines)
    results: dict = {"checkpoint": str(checkpoint.path), "lines": lines, "cpus": os.cpu_count(),
                     "cpu": platform.processor() or platform.machine(), "length_mix": length_mix(lengths),
                     "load_before": os.getloadavg(), "runs": {}}
    if args.grouping:
        results["grouping"] = grouping_cost(sentences, str(checkpoint.path), args.repeats)
        results["load_after"] = os.getloadavg()
        print(f"load average before/after {results['load_before'][0]:.1f}/{results['load_after'][0]:.1f}")
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        tmp = Path(tmp)
        for n, text in ((lines, sentences), (SMALL, sentences[:SMALL])):
            corpus = tmp / f"corpus-{n}.txt"
            corpus.write_text("\n".join(text) + "\n", encoding="utf-8")
            for name, (cmd, env) in commands(corpus, tmp, str(checkpoint.path)).items():
                print(f"[{time.strftime('%H:%M:%S')}] {name} on {n} lines ...", file=sys.stderr, flush=True)
                results["runs"].setdefault(name, {})[n] = run_measured(cmd, env)
            try:
                import distributed  # noqa: F401
            except ImportError:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] dask-2x1 on {n} lines ...", file=sys.stderr, flush=True)
            results["runs"].setdefault("dask-2x1", {})[n] = run_dask(corpus, tmp, str(checkpoint.path),
                                                                     commands(corpus, tmp, "")["beam-2x1"][1])
    results["load_after"] = os.getloadavg()

    base = None
    print(f"\n{lines} lines, {checkpoint.name}, {os.cpu_count()} CPUs; load average before/after "
          f"{results['load_before'][0]:.1f}/{results['load_after'][0]:.1f}")
    print(f"{'command':<10} {'wall s':>8} {'lines/s':>8} {'marginal':>9} {'ratio':>6} {'launcher MB':>12} "
          f"{'worker peak MB':>15}")
    for name, runs in results["runs"].items():
        big, small = runs[lines], runs[SMALL]
        extra = big["wall_s"] - small["wall_s"]
        # Under a few seconds of difference, other load on the machine decides it: no figure.
        marginal = (lines - SMALL) / extra if extra > 2.0 else None
        runs["throughput"] = lines / big["wall_s"]
        runs["marginal_throughput"] = marginal
        base = marginal if base is None else base
        runs["ratio_to_embed"] = marginal / base if marginal and base else None
        workers = ", ".join(f"{w:.0f}" for w in big["worker_peaks_mb"]) or "(in launcher)"
        shown = "-" if marginal is None else f"{marginal:.1f}"
        ratio = "-" if runs["ratio_to_embed"] is None else f"{runs['ratio_to_embed']:.2f}"
        print(f"{name:<10} {big['wall_s']:8.1f} {runs['throughput']:8.1f} {shown:>9} {ratio:>6} "
              f"{big['launcher_peak_mb']:12.0f} {workers:>15}")
    dask, direct = results["runs"].get("dask-2x1"), results["runs"]["beam-2x1"]
    if dask is not None:  # target: >= 0.85 (the cost of a real scheduler)
        dask["ratio_to_beam_2x1"] = {"throughput": dask["throughput"] / direct["throughput"],
                                     "marginal": dask["marginal_throughput"] / direct["marginal_throughput"]
                                     if dask["marginal_throughput"] and direct["marginal_throughput"] else None}
        marginal = dask["ratio_to_beam_2x1"]["marginal"]
        print(f"dask-2x1 / beam-2x1 throughput: {dask['ratio_to_beam_2x1']['throughput']:.2f} end to end, "
              f"{'-' if marginal is None else f'{marginal:.2f}'} marginal (target >= 0.85)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
