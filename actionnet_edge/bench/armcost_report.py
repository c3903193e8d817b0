"""`bench --arm-cost`: ARM64 instructions per inference for each artifact and emulated CPU.

Artifacts come from ``--artifact`` (their metadata.json names variant, precision and mode) or
are exported like the latency bench's (TSN / TSM / ACTION, fp32 and int8, ExecuTorch and LiteRT,
with ``--streaming`` also the streaming step). The report (report.json, report.md) holds one row
per artifact and CPU, and the issue's goals judged on the counts.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import ActionNetError
from .armcost import CPUS, GuestEnv, count_artifact, describe_artifact
from ..arm64.plugins import QEMU_VERSION, ensure_plugin_qemu

log = logging.getLogger(__name__)

UNITS = ("Guest instructions per inference on emulated ARM64 CPUs (QEMU {v} user mode, TCG plugin): "
         "instructions, not milliseconds. They ignore caches, pipelines and clock speed, and do not move "
         "with the host's load.")
RUNTIMES = {"executorch": ".pte", "litert": ".tflite"}
MAX_STREAMING_BYTES = 3_000_000


def export_artifacts(checkpoint: Path | None, opts, work: Path) -> list[tuple[Path | None, dict]]:
    """(artifact, row) per variant, precision and runtime (clip, and the step with ``opts.streaming``)."""
    from .sources import export_artifact, prepare_sources

    notes: list[str] = []
    out = []
    for src in prepare_sources(checkpoint, opts, work, notes):
        for runtime in [r for r in opts.runtimes if r in RUNTIMES]:
            for precision in opts.precisions:
                for streaming in ([False, True] if opts.streaming else [False]):
                    path, skipped = export_artifact(src, runtime, precision, work, opts, streaming=streaming)
                    row = {"runtime": runtime, "variant": src.variant, "precision": precision,
                           "mode": "step" if streaming else "clip"}
                    if skipped:
                        row["skipped"] = skipped[1]
                    out.append((path, row))
    for n in notes:
        log.info("%s", n)
    return out


def measure(items: list[tuple[Path | None, dict]], guest: GuestEnv, cpus: list[str], runs: int,
            cache: Path | None = None, echo=None) -> list[dict]:
    """One row per artifact and CPU with its instruction count (or why it has none)."""
    pq = ensure_plugin_qemu(cache, echo=echo)
    log.info("counting with %s and %s", pq.qemu, pq.plugin.name)
    rows = []
    for path, base in items:
        for cpu in cpus:
            row = {**base, "cpu": cpu}
            if path is None:
                rows.append(row)
                continue
            row.update(artifact=str(path), size_bytes=Path(path).stat().st_size)
            try:
                row.update(count_artifact(pq, guest, cpu, Path(path), runs))
            except ActionNetError as e:
                row["error"] = str(e)
            rows.append(row)
    return rows


def _find(rows: list[dict], **key) -> int | None:
    for r in rows:
        if "instructions" in r and all(r.get(k) == v for k, v in key.items()):
            return r["instructions"]
    return None


def _goal(name: str, value: float | None, limit: float, how: str) -> dict:
    if value is None:
        return {"goal": name, "status": "not measured", "limit": limit}
    met = value < limit if how == "<" else value <= limit
    return {"goal": name, "value": round(value, 4), "limit": limit, "status": "met" if met else "missed"}


def _ratio(a: int | None, b: int | None) -> float | None:
    return a / b if a is not None and b else None


def goals(rows: list[dict]) -> list[dict]:
    """The issue's ARM-instruction goals for each runtime the rows count, judged on those rows."""
    out = []
    for rt in (rt for rt in RUNTIMES if any(r.get("runtime") == rt for r in rows)):
        def n(**k):
            return _find(rows, runtime=rt, **k)

        a76 = {"cpu": "cortex-a76"}
        out.append(_goal(f"{rt}: int8 ACTION step / int8 clip on cortex-a76",
                         _ratio(n(variant="action", precision="int8", mode="step", **a76),
                                n(variant="action", precision="int8", mode="clip", **a76)), 1 / 6, "<="))
        out.append(_goal(f"{rt}: int8 / fp32 ACTION step on cortex-a76",
                         _ratio(n(variant="action", precision="int8", mode="step", **a76),
                                n(variant="action", precision="fp32", mode="step", **a76)), 0.5, "<="))
        over = _ratio(n(variant="action", precision="int8", mode="clip", **a76),
                      n(variant="tsm", precision="int8", mode="clip", **a76))
        out.append(_goal(f"{rt}: ACTION over TSM, int8 clip on cortex-a76", None if over is None else over - 1,
                         0.05, "<"))
        for cpu in ("cortex-a55", "cortex-a76"):
            out.append(_goal(f"{rt}: int8 / fp32 ACTION clip on {cpu}",
                             _ratio(n(variant="action", precision="int8", mode="clip", cpu=cpu),
                                    n(variant="action", precision="fp32", mode="clip", cpu=cpu)), 0.5, "<="))
        sizes = [r["size_bytes"] for r in rows if r.get("runtime") == rt and r.get("precision") == "int8"
                 and r.get("mode") == "step" and "size_bytes" in r]
        out.append(_goal(f"{rt}: int8 streaming artifact size (bytes)", max(sizes) if sizes else None,
                         MAX_STREAMING_BYTES, "<"))
    return out


def markdown(report: dict) -> str:
    lines = ["# ARM64 instruction counts", "", report["units"], "",
             "| variant | runtime | precision | mode | cpu | instructions / inference | spread (ppm) | size (KB) |",
             "|---|---|---|---|---|---:|---:|---:|"]
    for r in report["rows"]:
        count = f"{r['instructions']:,}" if "instructions" in r else (r.get("error") or r.get("skipped") or "-")
        spread = f"{r['spread_ppm']:.1f}" if "spread_ppm" in r else ""
        size = f"{r['size_bytes'] / 1024:.0f}" if "size_bytes" in r else ""
        lines.append(f"| {r.get('variant')} | {r.get('runtime')} | {r.get('precision')} | {r.get('mode')} | "
                     f"{r['cpu']} | {count} | {spread} | {size} |")
    lines += ["", "## Goals (instructions)", "", "| goal | value | limit | status |", "|---|---:|---:|---|"]
    for g in report["goals"]:
        value = "" if "value" in g else "-"
        if "value" in g:
            value = f"{g['value']:,}" if g["value"] >= 100 else f"{g['value']:.4f}"
        limit = f"{g['limit']:,}" if g["limit"] >= 100 else f"{g['limit']:.4f}"
        lines.append(f"| {g['goal']} | {value} | {limit} | {g['status']} |")
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], out: Path, command: str | None = None) -> dict:
    """report.json and report.md in ``out`` (each written to a temp name, then renamed)."""
    report = {"kind": "arm-cost", "units": UNITS.format(v=QEMU_VERSION), "command": command, "rows": rows,
              "goals": goals(rows)}
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.json", json.dumps(report, indent=2)), ("report.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
    return report


def check_artifacts(artifacts: list[Path]) -> None:
    """Only existing .pte and .tflite files can be counted."""
    for a in artifacts:
        if Path(a).suffix in RUNTIMES.values() and not Path(a).exists():
            raise ActionNetError(f"artifact not found: {a}")
        if Path(a).suffix not in RUNTIMES.values() or not Path(a).is_file():
            raise ActionNetError(f"--arm-cost counts .pte and .tflite files; '{a}' is not one")


def run_arm_cost(checkpoint: Path | None, artifacts: list[Path], opts, guest: GuestEnv, cpus: list[str] | None,
                 out: Path, work: Path | None = None, runs: int = 3, command: str | None = None, echo=None,
                 cache: Path | None = None) -> dict:
    """Count every artifact on every CPU and write the report."""
    cpus = list(cpus or CPUS)
    check_artifacts(artifacts)
    if artifacts:
        items = [(Path(a), {k: v for k, v in describe_artifact(Path(a)).items() if k not in ("artifact", "size_bytes")})
                 for a in artifacts]
    else:
        items = export_artifacts(checkpoint, opts, Path(work or out / "work"))
    rows = measure(items, guest, cpus, runs, cache=cache, echo=echo)
    return write_report(rows, out, command)
