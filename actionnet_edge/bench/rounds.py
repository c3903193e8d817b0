"""The bench's timing rounds: every measurement once per round, each in its own process, the
order reversed every other round so that a slow spell of a shared machine falls on all variants;
the runs of all rounds pooled into the row."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from ..progress import progress
from . import adb
from .machine import Machine, set_floor
from .options import BenchOptions, Source
from .runtimes import file_mb, measure, summarize

log = logging.getLogger(__name__)

#: round medians of one measurement further apart than this (max / min - 1) make a note in the report
UNSTABLE_ROUNDS = 0.30

# (source, runtime, precision, artifact | None, (status, reason) if not measurable)
Plan = list[tuple[Source, str, str, "Path | None", "tuple | None"]]
# (row, source, runtime, artifact, threads, the measurements of each round)
Job = tuple[dict, Source, str, Path, int, list[dict]]


def make_rows(plan: Plan, opts: BenchOptions) -> tuple[list[dict], list[Job]]:
    """A report row per planned measurement and thread count, and the jobs to time. The variants of
    one runtime, precision and thread count run back to back, so that the pairs the goals compare
    are measured seconds apart, not minutes."""
    rows: list[dict] = []
    jobs: list[Job] = []
    for src, rt, prec, artifact, reason in plan:
        for threads in opts.threads:
            row = {"variant": src.variant, "mode": src.mode, "runtime": rt, "precision": prec, "threads": threads,
                   "device": opts.device or "local", "segments": src.segments, "size": src.size,
                   "artifact": str(artifact) if artifact else None,
                   "file_mb": file_mb(artifact), "macs": src.macs, "params": src.params,
                   "latency_ms_median": None, "latency_ms_p90": None, "latency_ms_min": None, "peak_rss_mb": None}
            rows.append(row)
            if reason or artifact is None:
                status, why = reason or ("error", "no artifact")
                row.update(status=status, reason=why)
            else:
                jobs.append((row, src, rt, artifact, threads, []))
    order = {(rt, prec, th): i for i, (rt, prec, th) in enumerate(dict.fromkeys(
        (j[2], j[0]["precision"], j[4]) for j in jobs))}
    jobs.sort(key=lambda j: order[(j[2], j[0]["precision"], j[4])])
    return rows, jobs


def run_rounds(jobs: list[Job], opts: BenchOptions, serial: str | None, echo: Callable[[str], None]) -> None:
    """Time every job once per round (one round on a phone), appending each result to its job."""
    rounds = 1 if serial else opts.rounds
    total, done, t_start = len(jobs) * rounds, 0, time.perf_counter()
    with progress(total, "bench", unit="run") as bar:
        for r in range(rounds):
            for row, src, rt, artifact, threads, got in jobs if r % 2 == 0 else jobs[::-1]:
                res = _time_job(src, rt, artifact, threads, opts, serial, echo)
                bar.update(1)
                if res is None:  # dry run
                    continue
                done += 1
                got.append(res)
                _log_result(res, row, src, done, total, r, rounds, (time.perf_counter() - t_start) / done * (total - done))


def _time_job(src: Source, rt: str, artifact, threads: int, opts: BenchOptions, serial: str | None,
              echo: Callable[[str], None]) -> dict | None:
    """One timing of one artifact: on the phone ``serial`` over adb, else in a host worker process."""
    if serial:
        return adb.run_on_device(serial, rt, artifact, opts.binaries[rt], threads=threads, warmup=opts.warmup,
                                 runs=opts.runs, dry_run=opts.dry_run, echo=echo)
    shape = (1, 3, src.size, src.size) if src.mode == "frame" else (1, src.segments, 3, src.size, src.size)
    return measure(rt, artifact=artifact, config=src.config, shape=shape, threads=threads,
                   warmup=opts.warmup, runs=opts.runs, max_seconds=opts.max_seconds, streaming=src.streaming)


def _log_result(res: dict, row: dict, src: Source, done: int, total: int, r: int, rounds: int, eta: float) -> None:
    what = f"{src.variant} {row['runtime']}{' per frame' if src.mode == 'frame' else ''} {row['precision']} " \
           f"{row['threads']} thr"
    if "error" in res or "skipped" in res:
        log.warning("[%d/%d] %s: %s", done, total, what, res.get("error") or res.get("skipped"))
        return
    log.info("[%d/%d]%s %s: median %.2f ms, p90 %.2f ms, peak RSS %.0f MiB (ETA %.0f s)", done, total,
             f" round {r + 1}/{rounds}:" if rounds > 1 else "", what, res.get("latency_ms_median") or float("nan"),
             res.get("latency_ms_p90") or float("nan"), res.get("peak_rss_mb") or float("nan"), eta)


def pool_rounds(jobs: list[Job], machine: Machine | None) -> None:
    """Each job's row from its rounds: the runs of all rounds pooled, the round medians, the peak
    RSS of the largest round, and (``machine`` given) the compute floor."""
    for row, src, rt, artifact, threads, got in jobs:
        bad = next((x for x in got if "error" in x or "skipped" in x), None)
        if bad is not None or not got:
            row.update(status="error" if bad is None or "error" in bad else "skipped",
                       reason=(bad or {}).get("error") or (bad or {}).get("skipped") or "not measured")
            continue
        row.update({k: v for k, v in got[0].items() if k != "latencies_ms"})
        pooled = [v for x in got for v in x.get("latencies_ms", [])]
        if pooled:
            row.update(summarize(pooled))
        row["rounds"] = len(got)
        if len(got) > 1:
            row["latency_ms_round_medians"] = [x.get("latency_ms_median") for x in got]
        if any(x.get("peak_rss_mb") for x in got):
            row["peak_rss_mb"] = max(x.get("peak_rss_mb") or 0 for x in got)
        row["status"] = "ok"
        if machine is not None and src.macs:
            set_floor(row, machine, src.macs)


def round_spreads(rows: list[dict], limit: float = UNSTABLE_ROUNDS) -> list[tuple[str, float]]:
    """(name, max / min - 1) of the measurements whose round medians differ by more than ``limit``:
    a slow spell of a shared machine slows a whole process, so it shows as a round apart."""
    out = []
    for r in rows:
        meds = [m for m in r.get("latency_ms_round_medians") or [] if m]
        if len(meds) > 1 and max(meds) / min(meds) - 1 > limit:
            out.append((f"{r['variant']} {r['runtime']} {r['precision']} {r['threads']} thr"
                        f"{' per frame' if r.get('mode') == 'frame' else ''}", max(meds) / min(meds) - 1))
    return out


def unstable_note(rows: list[dict]) -> str | None:
    """The report's note when round medians differ by more than UNSTABLE_ROUNDS."""
    unstable = round_spreads(rows)
    if not unstable:
        return None
    (worst, spread), n = max(unstable, key=lambda u: u[1]), len(unstable)
    return (f"the machine's speed changed during the run: the round medians of {n} measurement"
            f"{'s' if n > 1 else ''} differ by more than {UNSTABLE_ROUNDS:.0%} (most: {worst}, {spread:+.0%}); "
            "ratios between runtimes of this run moved with them (see 'Round medians'; the variants "
            "timed in turns are not affected)")
