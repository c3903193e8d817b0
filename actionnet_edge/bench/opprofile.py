"""Where the time goes: per-op profiles of an artifact in its own runtime.

- ExecuTorch: the program runs with ETDump enabled (in a child process, same threads) and
  ``executorch.devtools.Inspector`` reads the events; XNNPACK reports each of its kernels
  ("Convolution (NHWC, F32) IGEMM", ...), ops outside the delegate appear as
  ``native_call_*``, and every ``DELEGATE_CALL`` is one delegated partition.

LiteRT's Python package has no per-op timer; its per-op profile comes from LiteRT's own
``benchmark_model --enable_op_profiling=true`` (docs/benchmarks.md).
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

from .runtimes import measure

log = logging.getLogger(__name__)


def read_etdump(etdump: Path) -> dict:
    """The Execute events of an ETDump, by kernel kind: mean ms (``kinds``) and calls per run
    (``calls``), the delegated and outside-the-delegate ms, the partitions and Method::execute's ms."""
    from executorch.devtools import Inspector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = Inspector(etdump_path=str(etdump)).to_dataframe()
    col = "avg (ms)"
    kinds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    delegated = outside = 0.0
    partitions = 0
    df = df[df["event_block_name"] == "Execute"]  # not the one-off load/init events
    for name, ms, is_del in zip(df["event_name"], df[col], df["is_delegated_op"]):
        if name in ("Method::execute", "OPERATOR_CALL"):
            continue
        if name == "DELEGATE_CALL":
            partitions += 1
            continue
        kind = re.sub(r"\s*#\d+$", "", str(name))
        kinds[kind] += float(ms)
        calls[kind] += 1  # one event per op instance: the op's calls per run
        if is_del:
            delegated += float(ms)
        else:
            outside += float(ms)
    execute = df[df["event_name"] == "Method::execute"][col]
    return {"kinds": dict(kinds), "calls": dict(calls), "delegated_ms": delegated, "outside_delegate_ms": outside,
            "partitions": partitions, "method_execute_ms": float(execute.iloc[0]) if len(execute) else None}


def etdump_profile(pte: Path, shape: tuple[int, ...], threads: int, runs: int = 5, top: int = 8,
                   streaming: dict | None = None) -> dict:
    """Per-op mean time of a .pte (ms per clip), grouped by kernel kind, with the non-delegated share.
    With ``streaming`` (the artifact's metadata.json section) one run is one streaming step on a
    ``shape`` frame, its state carried, and the times are per step."""
    with tempfile.TemporaryDirectory(prefix="ane-etdump-") as tmp:
        etdump = Path(tmp) / "run.etdp"
        res = measure("executorch", artifact=pte, config=None, shape=shape, threads=threads, warmup=1, runs=runs,
                      etdump=etdump, streaming=streaming)
        if "error" in res or "skipped" in res or not etdump.exists():
            return {"summary": f"no ETDump: {res.get('error') or res.get('skipped') or 'not written'}"}
        ev = read_etdump(etdump)
    return {"runtime": "executorch", "source": "ETDump + executorch.devtools.Inspector", "threads": threads,
            "method_execute_ms": ev["method_execute_ms"],
            **_table(ev["kinds"], ev["calls"], ev["delegated_ms"], ev["outside_delegate_ms"], ev["partitions"], top,
                     "step" if streaming else "clip")}


def _table(kinds: dict[str, float], calls: dict[str, int], delegated: float, outside: float, partitions: int,
           top: int, per: str = "clip") -> dict:
    """The profile's fields: ms per kernel kind ranked into ``top`` rows with
    their calls per ``per`` (a clip or a streaming step) and share, the op and Transpose counts, and
    the one-line summary."""
    total = delegated + outside
    ranked = sorted(kinds.items(), key=lambda kv: -kv[1])[:top]
    transposes = sum(n for k, n in calls.items() if k.startswith("Transpose"))
    return {
        "per": per, "delegated_ms": delegated, "outside_delegate_ms": outside, "partitions": partitions,
        "op_calls": sum(calls.values()), "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
        "top": [{"op": k, "calls": calls[k], "ms": v, "share": v / total if total else 0.0} for k, v in ranked],
        "summary": (f"{partitions} XNNPACK partition(s), {sum(calls.values())} op calls per {per} "
                    f"({transposes} of them Transpose); ops outside the delegate take "
                    f"{100 * outside / total if total else 0:.1f}% of op time; the largest kernels: "
                    + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in ranked[:3] if total)),
    }


def profile_rows(rows: list[dict], threads: int) -> dict:
    """Per-op profiles of the ACTION (else first variant's) ExecuTorch artifacts, and of the TSM ones
    next to them (what ACTION adds, op by op); of the streaming step too (mode "frame")."""
    prof = {}
    ok = [r for r in rows if r.get("status") == "ok" and r["threads"] == threads and r.get("artifact")]
    variant = "action" if any(r["variant"] == "action" for r in ok) else (ok[0]["variant"] if ok else None)
    for r in ok:
        beside = variant == "action" and r["variant"] == "tsm"
        if (r["variant"] != variant and not beside) or r["runtime"] != "executorch":
            continue
        step = r.get("mode", "clip") == "frame"
        key = f"{r['variant']} {r['runtime']} {r['precision']} ({threads} thr){', streaming step' if step else ''}"
        log.info("per-op profile: %s", key)
        try:
            if step:
                section = json.loads((Path(r["artifact"]).parent / "metadata.json").read_text())["streaming"]
                prof[key] = etdump_profile(Path(r["artifact"]), (1, 3, r["size"], r["size"]), threads,
                                           streaming=section)
            else:
                prof[key] = etdump_profile(Path(r["artifact"]), (1, r["segments"], 3, r["size"], r["size"]), threads)
        except Exception as e:  # a profiler problem must not lose the measurements
            log.warning("profile of %s failed: %s", key, e)
            prof[key] = {"summary": f"profile failed: {type(e).__name__}: {e}"}
    return prof
