"""Recompute a committed report's floors with this machine's clock probe, measurements untouched.

    python benchmarks/refloor.py benchmarks/results/<run>

For a report taken with an older clock probe (before 2026-12-02 17:40 UTC it chained `add reg,
imm`, which Intel's Golden Cove and later cores fold at rename, so a Xeon of family 6 read 11.3
GHz): run it on the machine the report was taken on. Rewrites report.json, report.md and the
charts; the report's ``machine.refloored`` says when and from which clock.
"""
import json
import sys
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

from actionnet_edge.bench.machine import Machine, _assumption, probe_clock_ghz, set_floor
from actionnet_edge.bench.report import goals, render


def main() -> None:
    out = Path(sys.argv[1])
    report = json.loads((out / "report.json").read_text())
    m = report["machine"]
    machine = Machine(**{f.name: m[f.name] for f in fields(Machine) if f.name in m})
    machine.measured_macs_per_s = {p: {int(t): r for t, r in d.items()} for p, d in machine.measured_macs_per_s.items()}
    old, clock = machine.clock_ghz, probe_clock_ghz()
    if not clock:
        sys.exit("refloor: no clock probe on this machine (x86-64 with a C compiler)")
    machine.clock_ghz = max(clock, machine.reported_clock_ghz or 0)
    machine.assumption = _assumption(machine)
    for row in report["rows"]:
        if row.get("macs") and row.get("latency_ms_median"):
            set_floor(row, machine, row["macs"])
    report["goals"] = goals(report["rows"])
    report["machine"] = {**m, "clock_ghz": machine.clock_ghz, "assumption": machine.assumption,
                         "refloored": f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}: clock {old} -> "
                                      f"{machine.clock_ghz} GHz (benchmarks/refloor.py)"}
    render(report, out)
    print(f"{out}: clock {old} -> {machine.clock_ghz} GHz; floors and goals rewritten")


if __name__ == "__main__":
    main()
