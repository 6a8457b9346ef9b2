"""From the engines' raw results to the report: derived figures, notes, and the markdown table."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from bench.context import BERT_BASE, MATMUL_SHAPES
from bench.flops import FLOP_MODELS, dense_flops_per_token, executed_tokens, flops_per_sequence, padded_flops
from bench.interleaved import BF16_PEAK_SHAPE, BF16_VARIANTS, VARIANTS
from bench.registry import BASELINE, BF16, ENGINES, INT8, INT8_LITERT, INT8_SPLIT

# The figures copied from an engine's raw result into its summary when it gives them.
_PASSED_THROUGH = ("import_s", "load_s", "tokenize_s", "rss_imported", "threads", "attn_implementation",
                   "torch_mode", "torch_cpu_capability", "api")


def summarise(name: str, raw: dict, lengths: list[int], peak_gflops: float | None,
              bf16_peak_gflops: float | None = None) -> dict:
    """Derived figures for one model engine: rates, FLOP rates, padding, memory.

    A bfloat16 engine's rates are also given as shares of the run's bfloat16 matmul peak
    (`bf16_peak_gflops`), its ceiling, as float32 engines' are of the float32 peak.

    Executed FLOPs are the engine's own count when it gives one (`executed_flops`, bert_tf's
    from the library's model), else every layer on the padded shapes it ran.
    """
    times = raw["times"]
    n, real = len(lengths), int(sum(lengths))
    median = statistics.median(times)
    flop_model = raw.get("flop_model", "padded")
    input_tokens = int(sum(rows * length for rows, length, _ in raw["shapes"]))
    executed_tok = int(sum(executed_tokens(flop_model, *shape) for shape in raw["shapes"]))
    useful = float(sum(flops_per_sequence(BERT_BASE, L) for L in lengths))
    executed = float(raw["executed_flops"] if "executed_flops" in raw
                     else sum(padded_flops(*shape) for shape in raw["shapes"]))
    s = {
        "title": ENGINES[name].title,
        "median_s": median, "min_s": min(times), "max_s": max(times), "times_s": times,
        "sentences_per_s": n / median, "sentences_per_s_range": [n / max(times), n / min(times)],
        "real_tokens_per_s": real / median,
        "useful_gflops": useful / median / 1e9, "executed_gflops": executed / median / 1e9,
        "padding_overhead": executed_tok / real - 1, "executed_tokens": executed_tok,
        "input_padding": input_tokens / real - 1, "input_tokens": input_tokens,
        "flop_model": flop_model, "flop_model_text": FLOP_MODELS[flop_model],
        "real_tokens_seen": raw.get("real_tokens"), "tokens_verified": raw.get("real_tokens") == real,
        "batches": len(raw["shapes"]), "shapes_how": raw.get("shapes_how"),
        "peak_rss": raw["peak_rss"], "rss_ready": raw.get("rss_ready"), "rss_warm": raw.get("rss_warm"),
        "rss_embedding_max": raw.get("rss_embedding_max"), "ready_s": raw.get("ready_s"),
        "warmup_s": raw.get("warmup_s"), "other_cpu_load": raw.get("other_cpu_load"),
        "stolen_cpu": raw.get("stolen_cpu"), "runs": len(times),
        "precision": raw.get("precision", ENGINES[name].precision),
    }
    if peak_gflops:
        s["useful_fraction_of_peak"] = s["useful_gflops"] / peak_gflops
        s["executed_fraction_of_peak"] = s["executed_gflops"] / peak_gflops
    local = raw.get("local_peak_gflops")
    if local:
        s["local_peak_gflops"] = statistics.mean(local)
        s["executed_fraction_of_local_peak"] = s["executed_gflops"] / s["local_peak_gflops"]
    model_s = raw.get("model_s_per_pass")
    if model_s:
        s["model_s"] = statistics.median(model_s)
        s["model_share"] = s["model_s"] / median
        s["model_executed_gflops"] = executed / s["model_s"] / 1e9
    if ENGINES[name].precision == "bfloat16" and bf16_peak_gflops:
        s["executed_fraction_of_bf16_peak"] = s["executed_gflops"] / bf16_peak_gflops
        if model_s:
            s["model_fraction_of_bf16_peak"] = s["model_executed_gflops"] / bf16_peak_gflops
    s.update({key: raw[key] for key in _PASSED_THROUGH if key in raw})
    return s


def summarise_interleaved(raw: dict, peak_gflops: float | None) -> dict:
    """Per variant: seconds per pass, executed GFLOP/s, and its time over bert_tf's, pass by pass."""
    shapes = raw["shapes"]
    dense = float(sum(real for _, _, real in shapes) * dense_flops_per_token(BERT_BASE))
    padded = float(sum(padded_flops(*shape) for shape in shapes))
    flops = {"bert_tf": float(raw["bert_tf_executed_flops"]), "bert_tf_bf16": float(raw["bert_tf_executed_flops"]),
             "bert_tf_int8": float(raw["bert_tf_executed_flops"]),
             "ort": padded, "ort_int8": padded, "tf_matmuls": dense, "numpy_matmuls": dense,
             "matmul_peak": 2.0 * np.prod(MATMUL_SHAPES[0]) * len(shapes),
             "matmul_peak_bf16": 2.0 * np.prod(BF16_PEAK_SHAPE) * len(shapes)}
    passes = raw["passes"]
    out = {}
    for name in raw["variants"]:
        times = [p[name] for p in passes]
        ratios = [p[name] / p["bert_tf"] for p in passes]
        median = statistics.median(times)
        v = {"title": VARIANTS[name], "median_s": median, "min_s": min(times), "max_s": max(times),
             "executed_gflops": flops[name] / median / 1e9, "time_vs_bert_tf": statistics.median(ratios),
             "time_vs_bert_tf_range": [min(ratios), max(ratios)]}
        if "matmul_peak" in raw["variants"]:  # rate over the peak's rate in the same pass
            fractions = [flops[name] / p[name] / (flops["matmul_peak"] / p["matmul_peak"]) for p in passes]
            v["fraction_of_interleaved_peak"] = statistics.median(fractions)
            v["fraction_of_interleaved_peak_range"] = [min(fractions), max(fractions)]
        if "matmul_peak_bf16" in raw["variants"] and name in BF16_VARIANTS:
            fractions = [flops[name] / p[name] / (flops["matmul_peak_bf16"] / p["matmul_peak_bf16"]) for p in passes]
            v["fraction_of_interleaved_bf16_peak"] = statistics.median(fractions)
            v["fraction_of_interleaved_bf16_peak_range"] = [min(fractions), max(fractions)]
        if peak_gflops:
            v["executed_fraction_of_peak"] = v["executed_gflops"] / peak_gflops
        out[name] = v
    return {"variants": out, "batches": len(shapes), "runs": len(passes), "ort": raw.get("ort"),
            "left_out": raw.get("left_out", {})}


def probe_diff(workdir: Path, a: str, b: str) -> float | None:
    """The largest absolute difference between two engines' probe arrays (None: one is missing)."""
    pa, pb = workdir / a, workdir / b
    if not (pa.exists() and pb.exists()):
        return None
    with np.load(pa) as x, np.load(pb) as y:
        arrays = [(x[k], y[k]) for k in x.files]
    if any(u.shape != v.shape for u, v in arrays):
        return float("inf")
    return float(max(np.abs(u - v).max() for u, v in arrays))


# ---------------------------------------------------------------------------- targets

#: The targets, on a CPU with native bfloat16: bert_tf bfloat16 at least as fast as the fastest peer of any
#: fidelity and 1.2x the fastest faithful one (a peer whose vectors hold the fidelity bar: token cosines to
#: float32 of 0.9995 mean and 0.995 min), 1.7x its own float32, 85% of the machine's bfloat16 matmul peak;
#: bert_tf int8 at least as fast as OpenVINO's static int8 and ONNX Runtime's int8.
TARGETS = {"vs_fastest_peer": 1.0, "vs_fastest_faithful_peer": 1.2, "int8_vs_peer_int8": 1.0,
           "vs_bert_tf_float32": 1.7, "fraction_of_bf16_peak": 0.85, "mean_cosine": 0.9995, "min_cosine": 0.995}


def holds_bar(fidelity: dict | None) -> bool | None:
    """Whether token cosines (`mean_cosine`, `min_cosine`) hold the fidelity bar; None: not measured."""
    if not fidelity or "mean_cosine" not in fidelity:
        return None
    return fidelity["mean_cosine"] >= TARGETS["mean_cosine"] and fidelity["min_cosine"] >= TARGETS["min_cosine"]


def peer_fidelity(name: str, summary: dict, real: dict | None, rate: float) -> dict:
    """A peer's speed and fidelity, and whether it is faithful: every fidelity measured for it (on the bench's
    weights, and on the real model where the run measured that) holds the bar; a float32 peer with none
    measured is faithful, a reduced-precision one is not known to be (`faithful` None)."""
    bench = summary.get("fidelity") if (summary.get("fidelity") or {}).get("mean_cosine") is not None else None
    verdicts = [v for v in (holds_bar(bench), holds_bar(real)) if v is not None]
    if verdicts:
        faithful = all(verdicts)
    else:
        faithful = True if ENGINES[name].precision == "float32" else None
    return {"sentences_per_s": rate, "precision": ENGINES[name].precision, "layers": ENGINES[name].layers,
            "bench": bench and {k: bench[k] for k in ("mean_cosine", "min_cosine", "reference")},
            "real": real and {k: real[k] for k in ("mean_cosine", "min_cosine")}, "faithful": faithful}


def targets(report: dict) -> dict:
    """The ratios the targets (`TARGETS`) need, from this run's engines (None where an engine is missing)."""
    rates = {name: entry["summary"]["sentences_per_s"] for name, entry in report["engines"].items()
             if ENGINES[name].kind == "model" and entry.get("summary")}
    peers = {name: rate for name, rate in rates.items() if ENGINES[name].is_peer}
    hf_bf16 = {name: rates[name] for name in ("hf_torch_bf16", "hf_torch_autocast") if name in rates}
    bf16 = report["engines"].get(BF16, {}).get("summary") or {}
    out = {"native_bf16": report["machine"].get("native_bf16"), "bf16": report["machine"].get("bf16"),
           "cpu": report["machine"].get("cpu_described", report["machine"].get("cpu")),
           "thresholds": dict(TARGETS), "bert_tf_bf16_sentences_per_s": rates.get(BF16)}
    if hf_bf16:
        out["best_hf_bf16"] = max(hf_bf16, key=hf_bf16.get)
    real = (report.get("real_fidelity") or {}).get("modes") or {}
    out["peers"] = {name: peer_fidelity(name, report["engines"][name]["summary"], real.get(name), rate)
                    for name, rate in sorted(peers.items(), key=lambda item: -item[1])}
    if peers:
        fastest = max(peers, key=peers.get)
        out.update(fastest_peer=fastest, fastest_peer_sentences_per_s=peers[fastest])
        if BF16 in rates:
            out["vs_fastest_peer"] = rates[BF16] / peers[fastest]
    # A peer whose reduced precision misses the fidelity bar computes other vectors: the like-for-like
    # comparison is with the fastest peer that holds it.
    faithful = {name: rate for name, rate in peers.items() if out["peers"][name]["faithful"]}
    out["unfaithful_peers"] = [name for name, p in out["peers"].items() if p["faithful"] is False]
    out["unmeasured_peers"] = [name for name, p in out["peers"].items() if p["faithful"] is None]
    if faithful:
        fastest = max(faithful, key=faithful.get)
        out.update(fastest_faithful_peer=fastest, fastest_faithful_peer_sentences_per_s=faithful[fastest])
        if BF16 in rates:
            out["vs_fastest_faithful_peer"] = rates[BF16] / faithful[fastest]
    if INT8 in rates and "ort_int8" in rates:
        out["int8_vs_ort_int8"] = rates[INT8] / rates["ort_int8"]
    ov_int8 = {name: rates[name] for name in ("ov_int8_latency", "ov_int8_throughput") if name in rates}
    if ov_int8:
        out["fastest_openvino_int8"] = max(ov_int8, key=ov_int8.get)
        for name, key in ((INT8, "int8_vs_openvino_int8"), (INT8_SPLIT, "int8_split_vs_openvino_int8"),
                          (INT8_LITERT, "int8_litert_vs_openvino_int8")):
            if name in rates:
                out[key] = rates[name] / max(ov_int8.values())
    out["real_fidelity"] = real
    if BF16 in rates and BASELINE in rates:
        out["vs_bert_tf_float32"] = rates[BF16] / rates[BASELINE]
    for key in ("executed_fraction_of_bf16_peak", "model_fraction_of_bf16_peak"):
        if key in bf16:
            out[key] = bf16[key]
    fid = bf16.get("fidelity") or {}
    if "mean_cosine" in fid:
        out.update(mean_cosine=fid["mean_cosine"], min_cosine=fid["min_cosine"])
    inter = next((e["summary"]["variants"] for name, e in report["engines"].items()
                  if ENGINES[name].kind == "interleaved" and e.get("summary")), {})
    for variant, key in (("bert_tf_int8", "interleaved_int8_vs_ort_int8"), ("bert_tf_bf16", "interleaved_bf16_vs_ort_int8")):
        if variant in inter and "ort_int8" in inter:  # speed ratio: ONNX Runtime's time over bert_tf's
            out[key] = inter["ort_int8"]["time_vs_bert_tf"] / inter[variant]["time_vs_bert_tf"]
    if "bert_tf_bf16" in inter:
        v = inter["bert_tf_bf16"]
        out["interleaved_vs_bert_tf_float32"] = 1 / v["time_vs_bert_tf"]
        if "fraction_of_interleaved_bf16_peak" in v:
            out["interleaved_fraction_of_bf16_peak"] = v["fraction_of_interleaved_bf16_peak"]
    return out


# ---------------------------------------------------------------------------- notes


def _interleaved_notes(summary: dict) -> list[str]:
    v = summary["variants"]
    notes = []
    if "tf_matmuls" in v:
        t = v["tf_matmuls"]
        ceiling = (f" ({100 * t['fraction_of_interleaved_peak']:.0f}% of the interleaved peak)"
                   if "fraction_of_interleaved_peak" in t else "")
        notes.append(f"interleaved: bert_tf's dense matmuls alone take {100 * t['time_vs_bert_tf']:.0f}% "
                     f"of its model time; attention, LayerNorm, embeddings and gathers take the rest. Those "
                     f"matmuls alone run at {t['executed_gflops']:.0f} GFLOP/s{ceiling}: at these row counts, "
                     f"that bounds any model built on TensorFlow's kernels.")
    if "numpy_matmuls" in v and "tf_matmuls" in v:
        notes.append(f"interleaved: the same matmuls in numpy (OpenBLAS, no GELU) take "
                     f"{v['numpy_matmuls']['median_s'] / v['tf_matmuls']['median_s']:.2f}x TensorFlow's time.")
    if "bert_tf_bf16" in v:
        b = v["bert_tf_bf16"]
        share = (f", {100 * b['fraction_of_interleaved_bf16_peak']:.1f}% of the bfloat16 matmul peak measured at the "
                 f"same moments" if "fraction_of_interleaved_bf16_peak" in b else "")
        notes.append(f"interleaved: bert_tf bfloat16 runs {1 / b['time_vs_bert_tf']:.2f}x as fast as bert_tf float32 "
                     f"on identical batches (model time){share}.")
    if "ort_int8" in v:
        notes.append(f"interleaved: ONNX Runtime int8 takes {v['ort_int8']['time_vs_bert_tf']:.3f}x bert_tf float32's "
                     f"model time on identical batches.")
    if "ort" in v:
        lo, hi = v["ort"]["time_vs_bert_tf_range"]
        notes.append(f"interleaved: ONNX Runtime takes {v['ort']['time_vs_bert_tf']:.3f}x bert_tf's model time "
                     f"on identical batches ({lo:.3f}-{hi:.3f} over the passes).")
    return notes


def _engine_notes(name: str, s: dict, report: dict) -> list[str]:
    notes = []
    if "model_share" in s:
        extra = f"; the tokenizer alone takes {1000 * s['tokenize_s']:.0f} ms" if "tokenize_s" in s else ""
        notes.append(f"{name}: {s['model_s']:.2f} s of {s['median_s']:.2f} s per pass inside the model call "
                     f"({s['model_executed_gflops']:.0f} executed GFLOP/s there){extra}.")
    if s["flop_model"] != "padded":
        notes.append(f"{name}: {s['flop_model_text']} (bert_tf's forward skips padding there), so executed "
                     f"FLOPs count {s['executed_tokens']:,} tokens for the dense layers; the input padding of "
                     f"{100 * s['input_padding']:.1f}% costs attention only.")
    if not s["tokens_verified"]:
        notes.append(f"{name}: saw {s['real_tokens_seen']} real tokens, the workload has "
                     f"{report['workload']['real_tokens']}: its tokenizer disagrees with the workload")
    if (s.get("other_cpu_load") or 0) > 0.15:
        notes.append(f"{name}: other processes used {s['other_cpu_load']:.2f} cores during this engine's "
                     f"run; its figures are pessimistic")
    if (s.get("stolen_cpu") or 0) > 0.05:
        notes.append(f"{name}: the hypervisor took {s['stolen_cpu']:.2f} cores from this VM during this "
                     f"engine's run; its figures are pessimistic")
    if s["runs"] != report["runs"]:
        notes.append(f"{name}: {s['runs']} timed passes (see --runs)")
    return notes


def build_notes(report: dict) -> list[str]:
    notes = []
    engines = report["engines"]
    for name, entry in engines.items():
        s = entry.get("summary")
        if s:
            notes.extend(_interleaved_notes(s) if ENGINES[name].kind == "interleaved" else _engine_notes(name, s, report))
    start = next((r["best_gflops"] for r in engines.get("matmul_numpy", {}).get("matmul", [])), None)
    end = next((r["best_gflops"] for r in (report.get("matmul_numpy_end") or {}).get("matmul", [])), None)
    if start and end and abs(end / start - 1) > 0.1:
        notes.insert(0, f"**The machine's speed changed during the run: numpy's matmul did {start:.0f} GFLOP/s at the "
                        f"start and {end:.0f} at the end, with no visible load inside this VM (a busy host?). "
                        f"Engines measured at different times are not comparable to 10%; rerun.**")
    exported = report.get("onnx_export") or {}
    if "exporter" in exported:
        notes.append(f"ort_sorted and ort_budget run the model exported with {exported['exporter']}, "
                     f"graph optimisation ORT_ENABLE_ALL, 2 intra-op threads, sequential execution.")
    for label, diff in report.get("agreement", {}).items():
        if diff is not None:
            notes.append(f"agreement, {label}: max abs difference {diff:.2e}")
    return notes
