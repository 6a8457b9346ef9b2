"""The report as markdown: the engines' table, the interleaved run, the matmul peaks, start-up, notes."""

from __future__ import annotations

from bench.context import MATMUL_SHAPES
from bench.registry import BASELINE, BF16, ENGINES
from bench.report import TARGETS


def _interleaved(summary: dict) -> list[str]:
    lines = [f"Interleaved, one process: each of bert_tf's {summary['batches']} batches runs through every "
             f"variant, then back in reverse order; a pass sums the batches (median of {summary['runs']} passes, "
             f"min-max). Time vs bert_tf is computed pass by pass, so drift between passes cancels.", "",
             "| variant | s per pass | executed GFLOP/s | % of the interleaved matmul peak (median, range) "
             "| % of the run's matmul peak | time vs bert_tf (median, range) |",
             "|---|---|---|---|---|---|"]
    for name, v in summary["variants"].items():
        frac = f"{100 * v['executed_fraction_of_peak']:.0f}%" if "executed_fraction_of_peak" in v else "-"
        local = "-"
        if "fraction_of_interleaved_peak" in v:
            a, b = v["fraction_of_interleaved_peak_range"]
            local = f"{100 * v['fraction_of_interleaved_peak']:.1f}% ({100 * a:.1f}-{100 * b:.1f})"
        lo, hi = v["time_vs_bert_tf_range"]
        lines.append(f"| {name}: {v['title']} | {v['median_s']:.2f} ({v['min_s']:.2f}-{v['max_s']:.2f}) | "
                     f"{v['executed_gflops']:.0f} | {local} | {frac} | "
                     f"{v['time_vs_bert_tf']:.3f} ({lo:.3f}-{hi:.3f}) |")
    for name, why in (summary.get("left_out") or {}).items():
        lines += ["", f"{name} was left out of the interleaved run: {why}."]
    return lines


def _gb(n) -> str:
    return "-" if n is None else f"{n / 1e9:.2f} GB"


def render(report: dict) -> str:
    """The markdown report printed on stdout and pasted into bench/README.md."""
    lines = _header(report) + [""] + _model_table(report) + targets_section(report)
    for name, entry in report["engines"].items():
        if ENGINES[name].kind == "interleaved":
            lines.append("")
            if entry.get("summary"):
                lines.extend(_interleaved(entry["summary"]))
            else:
                lines.append(f"Interleaved: {_why_missing(entry)}")
    lines += [""] + _matmul_table(report) + _startup_table(report)
    notes = report.get("notes", [])
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


def _why_missing(entry: dict) -> str:
    return entry.get("error") or entry.get("skipped")


def _header(report: dict) -> list[str]:
    lines = []
    m, w = report["machine"], report["workload"]
    busy = max([e.get("other_cpu_load") or 0 for e in report["engines"].values()] + [0])
    if busy > 0.15:
        lines.append(f"**WARNING: other processes used up to {busy:.2f} of {m['cores']} cores while engines ran; "
                     f"the figures below are pessimistic and the ratios less reliable. Rerun on a quiet machine.**")
        lines.append("")
    lines.append(f"Machine: {m.get('cpu_described', m['cpu'])}, {m['cores']} cores ({', '.join(m['simd'])}); "
                 f"{report['date']}; "
                 f"{report['threads']} intra-op threads per engine; median of {report['runs']} timed passes "
                 f"after a warm-up (min-max in brackets).")
    if "bf16" in m:
        onednn = m.get("onednn") or {}
        said = (f"; oneDNN: {onednn['isa']}, its bfloat16 matmul kernel {onednn.get('matmul_bf16', '?')}"
                if "isa" in onednn else f"; oneDNN said nothing ({onednn.get('error', 'no output')})")
        lines.append(f"bfloat16: {m['bf16']}; int8: {m['int8']}{said}.")
        if not m["native_bf16"]:
            lines.append("**This CPU has no native bfloat16: the bfloat16 engines ran emulated; their speeds are "
                         "not what the bfloat16 targets are about (fidelity still is).**")
    plan = report.get("bert_tf_plan")
    if plan:
        cap = f"at most {plan['batch_size']} sentences and " if plan["batch_size"] else ""
        lines.append(f"Batches: the peers take {report['batch_size']} sentences per model call; bert_tf (and "
                     f"ort_budget) {cap}at most {plan['max_batch_positions']} padded positions per call, bert_tf's "
                     f"default: {plan['calls']} calls of {plan['rows_min']}-{plan['rows_max']} sentences "
                     f"(median {plan['rows_median']}).")
    lines.append(f"Workload: {w['sentences']} sentences, {w['real_tokens']:,} real tokens with [CLS]/[SEP]; "
                 f"length median {w['p50']:.0f}, p90 {w['p90']:.0f}, mean {w['mean']:.1f}, "
                 f"min {w['min']}, max {w['max']}; mix: "
                 + ", ".join(f"{k}: {v}" for k, v in w["buckets"].items()) + ".")
    return lines


def _model_table(report: dict) -> list[str]:
    lines = ["| engine | sentences/s | real tokens/s | useful / executed GFLOP/s | % of matmul peak "
             "(useful / executed; executed vs the matmul just before and after the engine) | padding | in model "
             "| peak RSS | RSS embedding | vs bert_tf words | fidelity to float32 (token cosine: mean / min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = report["engines"].get(BASELINE, {}).get("summary")
    for name, entry in report["engines"].items():
        if ENGINES[name].kind != "model":
            continue
        s = entry.get("summary")
        if s is None:
            lines.append(f"| {name} | {_why_missing(entry)} ||||||||||")
            continue
        lo, hi = s["sentences_per_s_range"]
        frac = (f"{100 * s['useful_fraction_of_peak']:.0f}% / {100 * s['executed_fraction_of_peak']:.0f}%"
                if "useful_fraction_of_peak" in s else "-")
        if "executed_fraction_of_local_peak" in s:
            frac += (f" ({100 * s['executed_fraction_of_local_peak']:.0f}% of "
                     f"{s['local_peak_gflops']:.0f})")
        if "executed_fraction_of_bf16_peak" in s:
            frac += f"; of the bfloat16 peak: {100 * s['executed_fraction_of_bf16_peak']:.0f}% executed"
        ratio = f"{s['sentences_per_s'] / base['sentences_per_s']:.2f}x" if base else "-"
        share = f"{100 * s['model_share']:.0f}%" if "model_share" in s else "-"
        padding = f"{100 * s['padding_overhead']:.1f}%"
        if s["input_padding"] != s["padding_overhead"]:
            padding += f" (input {100 * s['input_padding']:.1f}%)"
        lines.append(f"| {name} | {s['sentences_per_s']:.1f} ({lo:.1f}-{hi:.1f}) | {s['real_tokens_per_s']:,.0f} | "
                     f"{s['useful_gflops']:.0f} / {s['executed_gflops']:.0f} | {frac} | "
                     f"{padding} | {share} | {_gb(s['peak_rss'])} | "
                     f"{_gb(s['rss_embedding_max'])} | {ratio} | {_fidelity(s)} |")
    return lines


def _fidelity(s: dict) -> str:
    fid = s.get("fidelity")
    if fid is None:
        return "-" if s.get("precision", "float32") == "float32" else "not measured"
    if "mean_cosine" not in fid:
        return f"vs {fid['reference']}: {fid['missing']}"
    layer = " (last layer)" if fid.get("layers") == "last" else ""
    return f"{fid['mean_cosine']:.6f} / {fid['min_cosine']:.6f} vs {fid['reference']}{layer}"


def targets_section(report: dict) -> list[str]:
    """The ratios of the targets, each beside its target (`report.TARGETS`), from this run; the peers against the
    fidelity bar."""
    t = report.get("targets") or {}
    bf16 = report["engines"].get(BF16)
    if bf16 is None:
        return peers_section(t) if t else []
    th = {**TARGETS, **t["thresholds"]}  # a report written before a target was added: today's
    rows = []

    def row(label, key, target, fmt):
        value = t.get(key)
        if value is None:
            return
        ok = "yes" if value >= target else "**no**"
        rows.append(f"| {label} | {fmt(value)} | {fmt(target)} | {ok} |")

    times = lambda v: f"{v:.2f}x"  # noqa: E731
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    cos = lambda v: f"{v:.5f}"  # noqa: E731
    row(f"bert_tf bf16 / fastest peer ({t.get('fastest_peer')}, {t.get('fastest_peer_sentences_per_s', 0):.1f} "
        f"sentences/s)", "vs_fastest_peer", th["vs_fastest_peer"], times)
    row(f"bert_tf bf16 / fastest faithful peer (holds the fidelity bar; below) ({t.get('fastest_faithful_peer')}, "
        f"{t.get('fastest_faithful_peer_sentences_per_s', 0):.1f} sentences/s)", "vs_fastest_faithful_peer",
        th["vs_fastest_faithful_peer"], times)
    row("bert_tf bf16 / ONNX Runtime int8, model time, interleaved", "interleaved_bf16_vs_ort_int8",
        th["vs_fastest_peer"], times)
    row("bert_tf int8 / ONNX Runtime int8 (separate processes)", "int8_vs_ort_int8", th["int8_vs_peer_int8"], times)
    row(f"bert_tf int8 / OpenVINO static int8 ({t.get('fastest_openvino_int8')}, separate processes)",
        "int8_vs_openvino_int8", th["int8_vs_peer_int8"], times)
    row(f"bert_tf int8, pools split as `bert-tf embed --precision int8` runs it / OpenVINO static int8 "
        f"({t.get('fastest_openvino_int8')}, separate processes)", "int8_split_vs_openvino_int8",
        th["int8_vs_peer_int8"], times)
    row(f"bert_tf int8-litert (LiteRT's XNNPACK kernels) / OpenVINO static int8 ({t.get('fastest_openvino_int8')}, "
        f"separate processes)", "int8_litert_vs_openvino_int8", th["int8_vs_peer_int8"], times)
    row("bert_tf int8 / ONNX Runtime int8, model time, interleaved", "interleaved_int8_vs_ort_int8",
        th["int8_vs_peer_int8"], times)
    row("bert_tf bf16 / bert_tf float32 (separate processes)", "vs_bert_tf_float32", th["vs_bert_tf_float32"], times)
    row("bert_tf bf16 / bert_tf float32, model time, interleaved", "interleaved_vs_bert_tf_float32",
        th["vs_bert_tf_float32"], times)
    row("bert_tf bf16 share of the bfloat16 matmul peak, executed FLOPs, whole pass",
        "executed_fraction_of_bf16_peak", th["fraction_of_bf16_peak"], pct)
    row("the same, model calls only", "model_fraction_of_bf16_peak", th["fraction_of_bf16_peak"], pct)
    row("the same, model calls, interleaved with the bfloat16 matmul", "interleaved_fraction_of_bf16_peak",
        th["fraction_of_bf16_peak"], pct)
    row("bert_tf bf16 token cosine to float32, mean", "mean_cosine", th["mean_cosine"], cos)
    row("bert_tf bf16 token cosine to float32, minimum", "min_cosine", th["min_cosine"], cos)
    lines = ["", f"The targets (bfloat16 {t['bf16']}):", ""]
    if rows:
        lines += ["| ratio | this run | target | met |", "|---|---|---|---|"] + rows
    if not bf16.get("summary"):
        lines.append(f"{BF16} did not run: {_why_missing(bf16)}.")
    real = t.get("real_fidelity") or {}
    if real:
        lines += ["", f"Fidelity on the real all-MiniLM-L6-v2 ({(report.get('real_fidelity') or {}).get('sentences')} "
                      f"natural sentences, token vectors, each mode against its own float32; the bar is mean >= "
                      f"{th['mean_cosine']}, min >= {th['min_cosine']}):", "",
                  "| mode | mean | min | holds the bar |", "|---|---|---|---|"]
        for mode, f in real.items():
            ok = "yes" if f["mean_cosine"] >= th["mean_cosine"] and f["min_cosine"] >= th["min_cosine"] else "**no**"
            lines.append(f"| {mode} | {f['mean_cosine']:.6f} | {f['min_cosine']:.6f} | {ok} |")
    return lines + peers_section(t)


def _cosines(fidelity: dict | None) -> str:
    return "-" if not fidelity else f"{fidelity['mean_cosine']:.5f} / {fidelity['min_cosine']:.5f}"


def peers_section(t: dict) -> list[str]:
    """The peers, fastest first, with their fidelity and the verdict: the fastest of any fidelity and the
    fastest that holds the bar, named."""
    peers = t.get("peers") or {}
    if not peers:
        return []
    th = t["thresholds"]
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    lines = ["", f"The peers, fastest first (CPU: {t.get('cpu')}). Faithful: every token cosine measured for it "
                 f"holds mean >= {th['mean_cosine']} and min >= {th['min_cosine']} against float32 (on the "
                 f"bench's weights, and on the real all-MiniLM-L6-v2 where the run measured it); the "
                 f"CTranslate2 engines return the last layer only, so theirs compare the last layer.", "",
             "| peer | sentences/s | precision | fidelity, bench (mean / min, vs) | fidelity, real model | faithful |",
             "|---|---|---|---|---|---|"]
    for name, p in peers.items():
        bench = _cosines(p["bench"]) + (f" vs {p['bench']['reference']}" if p["bench"] else "")
        if p["layers"] != "last4":
            bench += f" ({p['layers']} layer)"
        lines.append(f"| {name} | {p['sentences_per_s']:.1f} | {p['precision']} | {bench} | {_cosines(p['real'])} "
                     f"| {verdict[p['faithful']]} |")
    fastest = t["fastest_peer"]
    lines += ["", f"The fastest peer of this run, any fidelity: **{fastest}** ({t['fastest_peer_sentences_per_s']:.1f} "
                  f"sentences/s; faithful: {verdict[peers[fastest]['faithful']]})"
              + (f"; the faster Hugging Face bfloat16 mode: {t['best_hf_bf16']}." if t.get("best_hf_bf16") else ".")]
    if t.get("fastest_faithful_peer"):
        lines.append(f"The fastest faithful peer: **{t['fastest_faithful_peer']}** "
                     f"({t['fastest_faithful_peer_sentences_per_s']:.1f} sentences/s).")
    else:
        lines.append("No peer of this run is known to be faithful.")
    if t.get("unmeasured_peers"):
        lines.append(f"Reduced precision without a fidelity measured in this run (their reference engine did not run), "
                     f"not counted as faithful: {', '.join(t['unmeasured_peers'])}.")
    return lines


def _matmul_row(label: str, results: list[dict]) -> str:
    return f"| {label} | " + " | ".join(f"{r['best_gflops']:.0f} / {r['median_gflops']:.0f}" for r in results) + " |"


def _matmul_table(report: dict) -> list[str]:
    lines = ["Matmul, 2 threads, GFLOP/s (best / median of 8), float32 unless the engine's name says bf16:", "",
             "| library | " + " | ".join("x".join(map(str, s)) for s in MATMUL_SHAPES) + " |",
             "|---|" + "---|" * len(MATMUL_SHAPES)]
    for name, entry in report["engines"].items():
        if ENGINES[name].kind != "matmul":
            continue
        lines.append(_matmul_row(name, entry["matmul"]) if "matmul" in entry else f"| {name} | {_why_missing(entry)} |")
    if report.get("matmul_numpy_end"):
        lines.append(_matmul_row("matmul_numpy, again at the end", report["matmul_numpy_end"]["matmul"]))
    peak = report.get("peak_gflops")
    if peak:
        lines += ["", f"Matmul peak used for the percentages: {peak:.0f} GFLOP/s ({report['peak_source']})."]
    if report.get("bf16_peak_gflops"):
        lines += [f"bfloat16 peak used for the bfloat16 engines' shares: {report['bf16_peak_gflops']:.0f} GFLOP/s "
                  f"({report['bf16_peak_source']})."]
    return lines


def _startup_table(report: dict) -> list[str]:
    load = [(name, entry["summary"]) for name, entry in report["engines"].items()
            if entry.get("summary") and entry["summary"].get("ready_s") is not None]
    if not load:
        return []
    lines = ["", "Start-up (fresh process, checkpoint files in the page cache):", "",
             "| engine | import (TF / torch / ORT) | load weights | ready to embed (load + first tiny call) "
             "| RSS ready | RSS after the warm-up pass |",
             "|---|---|---|---|---|---|"]
    for name, s in load:
        imp = f"{s['import_s']:.1f} s" if "import_s" in s else "-"
        ld = f"{s['load_s']:.1f} s" if "load_s" in s else "-"
        lines.append(f"| {name} | {imp} | {ld} | {s['ready_s']:.1f} s | {_gb(s.get('rss_ready'))} "
                     f"| {_gb(s.get('rss_warm'))} |")
    return lines
