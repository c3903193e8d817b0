"""``run_bench``: variants x runtimes x precisions x threads, each measurement in its own process.

Sources (:mod:`.sources`): the user's artifacts as they are, else one checkpoint per variant
exported (parity checked) for each runtime and precision. Timing (:mod:`.rounds`): rounds of
separate processes, then the variants and streaming steps timed in turns (:mod:`.in_turns`).
With ``streaming=True`` a causal model is measured as its T-frame clip and as its streaming step.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Callable

from . import adb
from .in_turns import measure_pairs, measure_variants_in_turns, pair_streaming
from .machine import Machine, describe, measure_peaks
from .opprofile import profile_rows
from .options import SCHEMA, BenchOptions, Source, frame_source
from .report import UNITS, goals, render
from .rounds import Plan, make_rows, pool_rounds, run_rounds, unstable_note
from .runtimes import RUNTIMES
from .sources import artifact_sources, export_artifact, prepare_sources

log = logging.getLogger(__name__)


def run_bench(checkpoint: str | Path | None = None, artifacts: list[Path] | None = None,
              options: BenchOptions | None = None, out: Path | None = None, work: Path | None = None,
              command: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Measure, write report.json / report.md / PNGs into ``out`` (if given) and return the report dict."""
    opts = options or BenchOptions()
    opts.validate()
    notes: list[str] = []
    work = Path(work or (out / "work" if out else Path("bench_work")))
    machine = _machine(notes)
    serial = adb.parse_device(opts.device) if opts.device else None
    if artifacts:
        plan: Plan = [(src, rt, prec, path, None) for src, rt, prec, path in
                      artifact_sources([Path(a) for a in artifacts], opts)]
    else:
        plan = _export_plan(prepare_sources(Path(checkpoint) if checkpoint else None, opts, work, notes),
                            opts, work, serial)
    rows, jobs = make_rows(plan, opts)
    if jobs and not serial:  # the floor's peak rate: theory, or a measured GEMM if the cores run faster
        measure_peaks(machine, sorted(set(opts.threads)))
    run_rounds(jobs, opts, serial, echo)
    pool_rounds(jobs, None if serial else machine)
    if opts.dry_run:
        return {"schema": SCHEMA, "dry_run": True, "rows": []}
    note = unstable_note(rows)
    notes.extend([note] if note else [])
    if not serial:
        measure_variants_in_turns(jobs, opts)
    if opts.streaming:
        measure_pairs(jobs, opts)
    pair_streaming(rows)
    report = _report(rows, plan, machine, opts, notes, command, serial)
    if out:
        render(report, Path(out))
    return report


def _machine(notes: list[str]) -> Machine:
    """This machine and the runtime versions; a note when it was busy at the start."""
    machine = describe({name: rt.version() for name, rt in RUNTIMES.items()})
    if machine.load_avg and machine.load_avg[0] > 0.5 * machine.logical_cores:
        notes.append(f"the machine was busy: load average {machine.load_avg} on {machine.logical_cores} cores at "
                     "the start; latencies are noisier and slower than on a quiet machine")
    return machine


def _export_plan(sources: list[Source], opts: BenchOptions, work: Path, serial: str | None) -> Plan:
    """What to measure from the sources: every runtime and precision (and with ``streaming`` the
    streaming step too), each export made or reused from the work folder."""
    plan: Plan = []
    for src in sources:
        for rt in opts.runtimes:
            for prec in opts.precisions:
                for streaming in (False, True) if opts.streaming else (False,):
                    if rt == "pytorch":
                        if prec == "fp32":
                            plan.append((frame_source(src, {"window": src.segments}) if streaming else src,
                                         rt, prec, src.checkpoint, None))
                        continue
                    missing = None if serial else RUNTIMES[rt].missing()
                    frame = frame_source(src, None) if streaming else src
                    if missing:
                        plan.append((frame, rt, prec, None, ("skipped", missing)))
                        continue
                    artifact, reason = export_artifact(src, rt, prec, work, opts, streaming)
                    if streaming and artifact is not None:
                        frame.streaming = json.loads((artifact.parent / "metadata.json").read_text())["streaming"]
                    plan.append((frame, rt, prec, artifact, reason))
    return plan


def _report(rows: list[dict], plan: Plan, machine: Machine, opts: BenchOptions, notes: list[str],
            command: str | None, serial: str | None) -> dict:
    """The report dict: command, machine, configuration, rows, goals, notes and per-op profiles."""
    first = plan[0][0] if plan else None
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or shlex.join(sys.argv),
        "machine": machine.to_dict(),
        "config": {"arch": next((s.config.get("arch") for s, *_ in plan), None),
                   "width_mult": next((s.config.get("width_mult") for s, *_ in plan), None),
                   "segments": first.segments if first else opts.segments,
                   "size": first.size if first else opts.size, "threads": opts.threads,
                   "warmup": opts.warmup, "runs": opts.runs, "rounds": 1 if serial else opts.rounds,
                   "device": opts.device or "local", "verify": opts.verify, "streaming": opts.streaming},
        "units": UNITS,
        "rows": rows,
        "goals": [] if serial else goals(rows),
        "accuracy": opts.accuracy,
        "notes": notes,
        "profiles": {},
    }
    missed = any(g["met"] is False for g in report["goals"])
    if not serial and (opts.profile or (opts.profile is None and missed)):
        report["profiles"] = profile_rows(rows, max(opts.threads))
    return report
