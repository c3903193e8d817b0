"""Where the time goes: per-op profiles of an artifact in its own runtime.

- ExecuTorch: the program runs with ETDump enabled (in a child process, same threads) and
  ``executorch.devtools.Inspector`` reads the events; XNNPACK reports each of its kernels
  ("Convolution (NHWC, F32) IGEMM", ...), ops outside the delegate appear as
  ``native_call_*``, and every ``DELEGATE_CALL`` is one delegated partition.
- LiteRT: the Python bindings expose no op timer, so the .tflite runs (in a child process,
  same threads) through the C API of the ``libLiteRt.so`` they ship, with LiteRT's profiler on
  (:mod:`.litert_capi`): XNNPACK reports each of its kernels as ExecuTorch's does, ops TFLite
  runs itself appear under their builtin names. Where that library is missing or refuses,
  the profile falls back to the graph's op counts (:func:`litert_ops`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections import Counter, defaultdict
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
    """The fields both runtimes' profiles share: ms per kernel kind ranked into ``top`` rows with
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


def litert_ops(tflite: Path, threads: int) -> dict:
    """How many XNNPACK partitions LiteRT makes of a .tflite, and the graph's ops.

    The interpreter's node list keeps the nodes a delegate replaced next to its DELEGATE
    nodes, so it cannot tell which ops stay on reference kernels; per-op times (and that)
    come from ``benchmark_model --enable_op_profiling=true``.
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite), num_threads=threads)
    interp.allocate_tensors()
    ops = Counter(op["op_name"] for op in interp._get_ops_details())  # noqa: SLF001 (the public API has no op list)
    graph = {k: v for k, v in ops.items() if k != "DELEGATE"}
    return {
        "runtime": "litert", "source": "interpreter node list after XNNPACK delegation", "threads": threads,
        "partitions": ops.get("DELEGATE", 0), "graph_ops": graph,
        "summary": (f"{ops.get('DELEGATE', 0)} XNNPACK partition(s) over a graph of {sum(graph.values())} ops ("
                    + ", ".join(f"{k} x{v}" for k, v in sorted(graph.items()))
                    + "); which ops stay outside the delegate, and per-op times: "
                      "benchmark_model --enable_op_profiling=true."),
    }


def litert_profile(tflite: Path, threads: int, runs: int = 5, top: int = 8, timeout: float = 600.0,
                   per: str = "clip") -> dict:
    """Per-op mean time of a .tflite (ms per clip) from LiteRT's own profiler, grouped like
    :func:`etdump_profile`; the graph's op counts (:func:`litert_ops`) when the profiler cannot run.
    A streaming step's ``.tflite`` runs on random inputs like any other (``per="step"``): the op
    times do not depend on the state's values."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "actionnet_edge.bench.litert_capi", str(tflite), "--threads",
                           str(threads), "--runs", str(runs)], capture_output=True, text=True, env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        log.warning("LiteRT profiler did not run on %s (%s); op counts only", tflite.name, why)
        fallback = litert_ops(tflite, threads)
        fallback["summary"] = f"LiteRT profiler did not run ({why}). " + fallback["summary"]
        return fallback
    res = json.loads(lines[-1])
    kinds: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for o in res["ops"]:  # one row per op name, whichever of TFLite or XNNPACK ran it
        kinds[o["op"]] += o["ms"]
        calls[o["op"]] += o["calls"]
    return {"runtime": "litert", "source": "LiteRT profiler (CompiledModel C API of ai-edge-litert's libLiteRt.so)",
            "threads": threads, "invoke_ms": res.get("invoke_ms"),
            **_table(dict(kinds), dict(calls), sum(o["ms"] for o in res["ops"] if o["kind"] == "delegate"),
                     sum(o["ms"] for o in res["ops"] if o["kind"] == "tflite"),
                     litert_ops(tflite, threads)["partitions"], top, per)}
