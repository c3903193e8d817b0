"""Benchmark reports: the goals (met or not), a Markdown table and PNG charts.

The JSON report is the source of truth; Markdown and PNG are drawn from it, so a report
can be re-rendered later (``render(json.load(...), out_dir)``).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from ..constants import DEFAULT_BENCH_VARIANTS

log = logging.getLogger(__name__)

UNITS = {"latency_ms_*": "milliseconds per clip (1 x T frames); rows with mode 'frame': per streaming step (one frame, "
         "state carried)", "peak_rss_mb": "MiB (2^20 bytes), peak resident set "
         "of the measuring process", "file_mb": "MiB (2^20 bytes) on disk",
         "macs": "multiply-accumulates per clip (mode 'frame': per frame = clip MACs / T)",
         "frame_over_clip": "frame row's median / the same runtime's clip median (T frames); "
         "frame_over_clip_min: the same with the minimum latencies; frame_over_clip_paired: the step and the "
         "clip loaded in one process and timed in turns, the median over blocks of (mean of T steps) / clip",
         "latency_ms_median_in_turns": "median ms per clip with the variants of one runtime and precision loaded "
         "in one process and timed in turns (over_tsm_in_turns: ACTION's / TSM's - 1, what the goal is judged on)",
         "latency_ms_round_medians": "each round's median ms (one process per round), in the order of the rounds",
         "params": "parameters", "floor_ms": "MACs / peak MAC rate of `threads` cores (see machine.assumption)",
         "x_floor": "latency_ms_median / floor_ms"}

#: goal thresholds from issue 5
SPEEDUP_VS_EAGER = 5.0
SPEEDUP_VS_ORT = 1.3
FP32_FLOOR_X = 1.5
INT8_FLOOR_X = 3.0
ACTION_OVER_TSM = 0.10
INT8_MAX_MB = 3.0
#: goal from issue 7: a streaming step costs less than 1/6 of a T-frame clip
STREAM_FRAME_OVER_CLIP = 1 / 6


def _find(rows: list[dict], mode: str = "clip", **key) -> dict | None:
    for r in rows:
        if r.get("status") == "ok" and r.get("mode", "clip") == mode and all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _goal(name: str, value: float | None, threshold: float, op: str, detail: str) -> dict:
    met = None if value is None else (value >= threshold if op == ">=" else value < threshold if op == "<"
                                      else value <= threshold)
    return {"goal": name, "value": None if value is None else round(value, 3), "threshold": f"{op} {threshold:g}",
            "met": met, "detail": detail}


def goals(rows: list[dict]) -> list[dict]:
    """The issue's goals as ratios from one run (same threads), met / missed / not measured (None)."""
    out: list[dict] = []
    frames = [r for r in rows if r.get("mode") == "frame"]
    rows = [r for r in rows if r.get("mode", "clip") == "clip"]
    variant = "action" if any(r.get("variant") == "action" for r in rows) else (rows[0]["variant"] if rows else None)
    for threads in sorted({r["threads"] for r in rows if r.get("threads")}):
        eager = _find(rows, variant=variant, runtime="pytorch", precision="fp32", threads=threads)
        ort = _find(rows, variant=variant, runtime="onnxruntime", precision="fp32", threads=threads)
        for rt in ("executorch", "litert"):
            q = _find(rows, variant=variant, runtime=rt, precision="int8", threads=threads)
            v = eager["latency_ms_median"] / q["latency_ms_median"] if q and eager else None
            out.append(_goal(f"{rt} int8 speed-up over PyTorch eager fp32 ({variant}, {threads} thr)", v,
                             SPEEDUP_VS_EAGER, ">=", "eager median / int8 median"))
            v = ort["latency_ms_median"] / q["latency_ms_median"] if q and ort else None
            out.append(_goal(f"{rt} int8 speed-up over ONNX Runtime fp32 ({variant}, {threads} thr)", v,
                             SPEEDUP_VS_ORT, ">=", "ORT fp32 median / int8 median"))
        for r in rows:
            if r.get("status") != "ok" or r["threads"] != threads or r["variant"] != variant or r["runtime"] == "pytorch":
                continue
            limit = INT8_FLOOR_X if r["precision"] == "int8" else FP32_FLOOR_X
            out.append(_goal(f"{r['runtime']} {r['precision']} within {limit:g}x of the {r['precision']} floor "
                             f"({variant}, {threads} thr)", r.get("x_floor"), limit, "<=",
                             f"median {r['latency_ms_median']:.2f} ms vs floor {r.get('floor_ms') or 0:.2f} ms"))
        for r in rows:
            if r.get("status") != "ok" or r["threads"] != threads or r["variant"] != "action":
                continue
            tsm = _find(rows, variant="tsm", runtime=r["runtime"], precision=r["precision"], threads=threads)
            if not tsm:
                continue
            if r.get("over_tsm_in_turns") is not None:  # judged on the variants timed in turns in one process
                v = r["over_tsm_in_turns"]
                how = (f"timed in turns in one process ({r.get('runs_in_turns')} clips each): "
                       f"{_fmt(r.get('latency_ms_median_in_turns'))} ms vs {_fmt(tsm.get('latency_ms_median_in_turns'))} "
                       f"ms; separate rows {r['latency_ms_median']:.2f} vs {tsm['latency_ms_median']:.2f} ms")
            else:
                v = r["latency_ms_median"] / tsm["latency_ms_median"] - 1.0
                how = f"{r['latency_ms_median']:.2f} ms vs {tsm['latency_ms_median']:.2f} ms"
            out.append(_goal(f"ACTION overhead over TSM, {r['runtime']} {r['precision']} ({threads} thr)", v,
                             ACTION_OVER_TSM, "<", how))
    for rt in ("executorch", "litert"):
        sizes = [r for r in rows if r.get("runtime") == rt and r.get("precision") == "int8" and r.get("file_mb")]
        for r in {(x["variant"], x["file_mb"]): x for x in sizes}.values():
            out.append(_goal(f"{rt} int8 file size ({r['variant']})", r["file_mb"], INT8_MAX_MB, "<", "MiB on disk"))
    for r in frames:
        if r.get("status") != "ok":
            continue
        paired = r.get("frame_over_clip_paired") is not None
        how = (f"step and clip timed in turns in one process ({r.get('paired_blocks')} blocks): "
               f"{_fmt(r.get('paired_step_ms_median'))} ms per frame vs {_fmt(r.get('paired_clip_ms_median'))} ms per "
               "clip" if paired else
               f"{r['latency_ms_median']:.2f} ms per frame vs {_fmt(r.get('clip_latency_ms_median'))} ms per clip")
        out.append(_goal(f"streaming per-frame cost under 1/6 of a {r['segments']}-frame clip, {r['runtime']} "
                         f"{r['precision']} ({r['variant']}, {r['threads']} thr)",
                         r["frame_over_clip_paired"] if paired else r.get("frame_over_clip"),
                         STREAM_FRAME_OVER_CLIP, "<", how))
    return out


def _fmt(v, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _human(n: int | None) -> str:
    if not n:
        return "-"
    for div, s in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}{s}"
    return str(n)


def markdown(report: dict) -> str:
    """The report as Markdown: context, one row per measurement, the goals, per-op profiles."""
    rows = report["rows"]
    lines = _header(report) + _rows_table(rows) + _turns_table(rows) + _rounds_table(rows) + _streaming_table(rows)
    if report.get("goals"):
        lines += ["", "## Goals", "", "| goal | value | target | met |", "|---|---:|---|---|"]
        for g in report["goals"]:
            met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
            lines.append(f"| {g['goal']} | {_fmt(g['value'], '.3g')} | {g['threshold']} | {met} |")
    lines += _profiles_tables(report.get("profiles") or {})
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if report.get("charts"):
        lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["charts"]]
    return "\n".join(lines) + "\n"


def _header(report: dict) -> list[str]:
    m, c = report["machine"], report["config"]
    return [
        f"# actionnet-edge bench: {c['arch']} (width {c['width_mult']}), {c['segments']} frames x {c['size']} px",
        "",
        f"- date: {report['created']}",
        f"- machine: {m['cpu_model']} ({m['arch']}), {m['physical_cores']} physical / {m['logical_cores']} logical "
        f"cores, {m['vector']}, {m['clock_ghz']} GHz; {m['os']}; load average at start {m.get('load_avg')}",
        f"- runtimes: {', '.join(f'{k} {v}' for k, v in m['runtimes'].items() if v)}",
        f"- floor assumption: {m['assumption']}",
        *([f"- memory allocator: {m['malloc']}"] if m.get("malloc") else []),
        f"- command: `{report['command']}`",
        f"- warm-up {c['warmup']}, runs {c['runs']}"
        + (f" in each of {c['rounds']} rounds (every other round in reversed order; the runs of all rounds pooled)"
           if c.get("rounds", 1) > 1 else "") + "; each measurement in its own process",
        "",
    ]


def _rows_table(rows: list[dict]) -> list[str]:
    lines = ["| variant | runtime | precision | threads | median ms | p90 ms | min ms | x floor | peak RSS MiB | "
             "file MiB | MACs | status |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        status = r.get("status", "ok")
        if status != "ok":
            status = f"{status}: {r.get('reason', '')}"
        lines.append(f"| {r['variant']}{' (per frame)' if r.get('mode') == 'frame' else ''} | {r['runtime']}{' @' + r['device'] if r.get('device') not in (None, 'local') else ''} | "
                     f"{r['precision']} | {r['threads']} | {_fmt(r.get('latency_ms_median'))} | "
                     f"{_fmt(r.get('latency_ms_p90'))} | {_fmt(r.get('latency_ms_min'))} | {_fmt(r.get('x_floor'))} | "
                     f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {_fmt(r.get('file_mb'))} | {_human(r.get('macs'))} | {status} |")
    return lines


def _turns_table(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    turns = [r for r in rows if r.get("over_tsm_in_turns") is not None]
    if turns:
        lines += ["", "## Variants timed in turns", "",
                  "The variants' clips of one runtime and precision loaded in one process and timed in turns (the "
                  "order reversed every other turn): what the ACTION-over-TSM goal is judged on.", "",
                  "| runtime | precision | threads | TSN median ms | TSM median ms | ACTION median ms | ACTION over TSM |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in turns:
            same = {x["variant"]: x for x in rows if x.get("mode", "clip") == "clip"
                    and (x["runtime"], x["precision"], x["threads"]) == (r["runtime"], r["precision"], r["threads"])}
            ms = [_fmt(same.get(v, {}).get("latency_ms_median_in_turns")) for v in DEFAULT_BENCH_VARIANTS]
            lines.append(f"| {r['runtime']} | {r['precision']} | {r['threads']} | {' | '.join(ms)} | "
                         f"{100 * r['over_tsm_in_turns']:+.1f}% |")
    return lines


def _rounds_table(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    rounds = [r for r in rows if len(r.get("latency_ms_round_medians") or []) > 1]
    if rounds:
        lines += ["", "## Round medians", "",
                  "Each measurement's median in each round (its own process each time), in round order. A slow "
                  "spell of a shared machine slows a whole process: it shows as one round far from the others, "
                  "and moves the pooled median and every ratio between runtimes with it.", "",
                  "| variant | runtime | precision | threads | round medians ms | max / min |", "|---|---|---|---:|---|---:|"]
        for r in rounds:
            meds = [m for m in r["latency_ms_round_medians"] if m]
            spread = f"{max(meds) / min(meds):.2f}" if meds else "-"
            lines.append(f"| {r['variant']}{' (per frame)' if r.get('mode') == 'frame' else ''} | {r['runtime']} | "
                         f"{r['precision']} | {r['threads']} | {', '.join(_fmt(m) for m in r['latency_ms_round_medians'])} "
                         f"| {spread} |")
    return lines


def _streaming_table(rows: list[dict]) -> list[str]:
    lines: list[str] = []
    frames = [r for r in rows if r.get("mode") == "frame"]
    if frames:
        lines += ["", "## Streaming: per frame vs clip", "",
                  "One streaming step (one frame in, the state carried to the next) next to one clip of T frames "
                  "of the same model and runtime; goal: per-frame cost under 1/6 of a clip's "
                  f"({STREAM_FRAME_OVER_CLIP:.3f}), judged on the step and the clip loaded in one process and timed "
                  "in turns (median over blocks of T steps and one clip), where measured, else on the two rows' "
                  "medians; the ratios of the medians and of the minimum latencies of the separate rows are "
                  "beside it.",
                  "", "| variant | runtime | precision | threads | per-frame median ms | clip median ms (T frames) | "
                  "frame / clip | frame / clip (min) | frame / clip (in turns) | under 1/6 |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in frames:
            met = {True: "yes", False: "**no**", None: "not measured"}[r.get("streaming_goal_met")]
            lines.append(f"| {r['variant']} | {r['runtime']} | {r['precision']} | {r['threads']} | "
                         f"{_fmt(r.get('latency_ms_median'))} | {_fmt(r.get('clip_latency_ms_median'))} "
                         f"({r['segments']}) | {_fmt(r.get('frame_over_clip'), '.3f')} | "
                         f"{_fmt(r.get('frame_over_clip_min'), '.3f')} | "
                         f"{_fmt(r.get('frame_over_clip_paired'), '.3f')} | {met} |")
    return lines


def _profiles_tables(profiles: dict) -> list[str]:
    lines: list[str] = []
    for key, prof in profiles.items():
        lines += ["", f"## Where the time goes: {key}", "", prof.get("summary", ""), ""]
        if prof.get("top"):
            per = prof.get("per", "clip")
            lines += [f"| op | calls per {per} | ms per {per} (profiled run) | share |", "|---|---:|---:|---:|"]
            lines += [f"| {t['op']} | {t.get('calls', '-')} | {t['ms']:.3f} | {100 * t['share']:.1f}% |"
                      for t in prof["top"]]
    return lines


def charts(report: dict, out_dir: Path) -> list[Path]:
    """latency and MACs per variant and runtime (bench.png); accuracy vs MACs (accuracy_vs_macs.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r.get("status") == "ok" and r.get("latency_ms_median")
            and r.get("mode", "clip") == "clip"]
    paths = []
    if rows:
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        series = list(dict.fromkeys((r["runtime"], r["precision"], r["threads"]) for r in rows))
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 1]})
        width = 0.8 / max(1, len(series))
        for i, (rt, prec, thr) in enumerate(series):
            ys = []
            for v in variants:
                r = _find(rows, variant=v, runtime=rt, precision=prec, threads=thr)
                ys.append(r["latency_ms_median"] if r else 0.0)
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(variants))]
            ax.bar(xs, ys, width, label=f"{rt} {prec} ({thr} thr)")
        ax.set_xticks(range(len(variants)), [v.upper() for v in variants])
        ax.set_ylabel("median latency per clip (ms)")
        ax.set_yscale("log")
        ax.set_title(f"{report['config']['segments']}x{report['config']['size']}, {report['machine']['cpu_model']}")
        # below the bars: inside, it covers the tallest ones
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.09), frameon=False)
        macs = {r["variant"]: r.get("macs") or 0 for r in rows}
        ax2.bar(range(len(variants)), [macs[v] / 1e9 for v in variants], color="gray")
        ax2.set_xticks(range(len(variants)), [v.upper() for v in variants])
        ax2.set_ylabel("GMACs per clip")
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "bench.png"))
        plt.close(fig)
    acc = report.get("accuracy") or {}
    if acc:
        macs = {r["variant"]: r["macs"] for r in report["rows"] if r.get("macs") and r.get("mode", "clip") == "clip"}
        pts = [(v, macs[v] / 1e9, a) for v, a in acc.items() if v in macs]
        if pts:
            fig, ax = plt.subplots(figsize=(5, 4))
            for v, g, a in pts:
                ax.scatter(g, a, s=60)
                ax.annotate(v.upper(), (g, a), textcoords="offset points", xytext=(5, 5))
            ax.set_xlabel("GMACs per clip")
            ax.set_ylabel("top-1 accuracy (%)")
            ax.set_title("accuracy vs MACs (paper Fig. 4 style)")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            paths.append(_save(fig, out_dir / "accuracy_vs_macs.png"))
            plt.close(fig)
    return paths


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path


def write_text(path: Path, text: str) -> None:
    """Write atomically (temp file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def render(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and the charts into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report["charts"] = [p.name for p in charts(report, out_dir)]
    write_text(out_dir / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    write_text(out_dir / "report.md", markdown(report))
    return {"json": out_dir / "report.json", "markdown": out_dir / "report.md",
            **{Path(p).stem: out_dir / p for p in report["charts"]}}
