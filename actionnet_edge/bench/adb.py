"""Benchmarks on an Android phone over adb, with the runtimes' own benchmark binaries.

- ExecuTorch: ``executor_runner`` (examples/portable/executor_runner, built with the XNNPACK
  backend and the threadpool) with ``--model_path``, ``--num_executions`` and ``--cpu_threads``;
  it logs ``Iteration i of N: X ms`` per run and ``Model executed successfully N time(s) in X ms.``.
  It has no warm-up flag, so it runs warm-up + timed executions and the first ones are dropped.
- LiteRT: ``benchmark_model`` (tensorflow/lite/tools/benchmark) with ``--graph``,
  ``--num_threads``, ``--warmup_runs``, ``--num_runs``, ``--use_xnnpack=true`` and
  ``--report_peak_memory_footprint=true``; it prints ``count=... min=... max=... avg=... std=...``
  per phase, ``Inference timings in us: Init: .., First inference: .., Warmup (avg): ..,
  Inference (avg): ..`` and ``Overall peak memory footprint (MB) via periodic monitoring: X``.
  ``--enable_op_profiling=true`` adds its per-op table.

The commands are plain lists so that ``--dry-run`` prints exactly what would run.
"""
from __future__ import annotations

import logging
import re
import shlex
import subprocess
from pathlib import Path

from ..errors import ActionNetError
from .runtimes import summarize

log = logging.getLogger(__name__)

REMOTE_DIR = "/data/local/tmp/actionnet_edge"
BINARIES = {"executorch": "executor_runner", "litert": "benchmark_model"}


def parse_device(device: str) -> str:
    """'adb:SERIAL' -> SERIAL."""
    if not device.startswith("adb:") or not device[4:]:
        raise ActionNetError(f"unknown device '{device}'; use adb:SERIAL (the serial `adb devices` lists)")
    return device[4:]


def device_commands(serial: str, runtime: str, artifact: Path, binary: Path, *, threads: int, warmup: int,
                    runs: int, op_profiling: bool = False) -> list[list[str]]:
    """The adb commands that push ``artifact`` and ``binary`` and run one benchmark."""
    if runtime not in BINARIES:
        raise ActionNetError(f"runtime '{runtime}' cannot run on a device over adb; use one of: {', '.join(BINARIES)}")
    adb = ["adb", "-s", serial]
    model = f"{REMOTE_DIR}/{artifact.name}"
    exe = f"{REMOTE_DIR}/{BINARIES[runtime]}"
    if runtime == "executorch":
        run = [exe, f"--model_path={model}", f"--num_executions={warmup + runs}", f"--cpu_threads={threads}"]
    else:
        run = [exe, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
               f"--num_runs={runs}", "--use_xnnpack=true", "--report_peak_memory_footprint=true"]
        if op_profiling:
            run.append("--enable_op_profiling=true")
    return [
        [*adb, "shell", "mkdir", "-p", REMOTE_DIR],
        [*adb, "push", str(artifact), model],
        [*adb, "push", str(binary), exe],
        [*adb, "shell", "chmod", "755", exe],
        [*adb, "shell", shlex.join(run)],
    ]


_ET_ITER = re.compile(r"Iteration\s+(\d+)\s+of\s+(\d+):\s*([0-9.eE+-]+)\s*ms")
_ET_TOTAL = re.compile(r"Model executed successfully\s+(\d+)\s+time\(s\) in\s+([0-9.eE+-]+)\s*ms")
_TFL_COUNT = re.compile(r"count=(\d+)((?:\s+\w+=[0-9.eE+-]+)+)")
_TFL_TIMINGS = re.compile(r"Inference timings in us:.*?Inference \(avg\):\s*([0-9.eE+-]+)")
_TFL_PEAK = re.compile(r"peak memory footprint \(MB\)[^:]*:\s*(?:init=[0-9.eE+-]+\s+overall=)?([0-9.eE+-]+)", re.I)
_TFL_SIZE = re.compile(r"input model file size \(MB\):\s*([0-9.eE+-]+)")


def parse_executor_runner(text: str, warmup: int) -> dict:
    """Rows fields from ``executor_runner`` output (per-iteration lines; warm-up ones dropped)."""
    iters = [float(m.group(3)) for m in _ET_ITER.finditer(text)]
    if iters:
        timed = iters[warmup:] if len(iters) > warmup else iters
        return {**summarize(timed), "peak_rss_mb": None}
    total = _ET_TOTAL.search(text)
    if total:  # older runners print only the total: the mean is all there is
        n, ms = int(total.group(1)), float(total.group(2))
        return {"latency_ms_median": None, "latency_ms_p90": None, "latency_ms_min": None,
                "latency_ms_mean": ms / n, "runs": n, "peak_rss_mb": None}
    raise ActionNetError("executor_runner output has no timings (no 'Iteration i of N' or "
                         "'Model executed successfully' line)")


def parse_benchmark_model(text: str) -> dict:
    """Row fields from LiteRT ``benchmark_model`` output (the last ``count=`` line = timed runs)."""
    counts = list(_TFL_COUNT.finditer(text))
    timings = _TFL_TIMINGS.search(text)
    if not counts and not timings:
        raise ActionNetError("benchmark_model output has no timings (no 'count=' or 'Inference timings' line)")
    row: dict = {"latency_ms_median": None, "latency_ms_p90": None, "latency_ms_min": None}
    if counts:
        last = counts[-1]
        kv = dict(re.findall(r"(\w+)=([0-9.eE+-]+)", last.group(2)))
        row["runs"] = int(last.group(1))
        for key, name in (("min", "latency_ms_min"), ("avg", "latency_ms_mean"), ("median", "latency_ms_median"),
                          ("p90", "latency_ms_p90"), ("std", "latency_ms_std")):
            if key in kv:
                row[name] = float(kv[key]) / 1e3  # benchmark_model reports microseconds
    if timings and row.get("latency_ms_mean") is None:
        row["latency_ms_mean"] = float(timings.group(1)) / 1e3
    peak = _TFL_PEAK.search(text)
    row["peak_rss_mb"] = float(peak.group(1)) if peak else None
    size = _TFL_SIZE.search(text)
    if size:
        row["file_mb"] = float(size.group(1))
    return row


def parse_output(runtime: str, text: str, warmup: int) -> dict:
    """Parse a device benchmark's output into the fields of a report row."""
    return parse_executor_runner(text, warmup) if runtime == "executorch" else parse_benchmark_model(text)


def run_on_device(serial: str, runtime: str, artifact: Path, binary: Path, *, threads: int, warmup: int,
                  runs: int, dry_run: bool = False, echo=log.info) -> dict | None:
    """Push and run one benchmark on the phone; with ``dry_run`` only print the commands."""
    if not dry_run and not binary.is_file():
        raise ActionNetError(f"benchmark binary '{binary}' does not exist (see docs/benchmarks.md to obtain it)")
    cmds = device_commands(serial, runtime, artifact, binary, threads=threads, warmup=warmup, runs=runs)
    if dry_run:
        for c in cmds:
            echo(shlex.join(c))
        return None
    out = ""
    for c in cmds:
        try:
            p = subprocess.run(c, capture_output=True, text=True, timeout=1800)
        except FileNotFoundError:
            raise ActionNetError("adb is not on PATH (install Android platform-tools)") from None
        if p.returncode != 0:
            raise ActionNetError(f"'{shlex.join(c)}' failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
        out = p.stdout + p.stderr
    row = parse_output(runtime, out, warmup)
    row["device_log_tail"] = out.strip().splitlines()[-5:]
    return row


