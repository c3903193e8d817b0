"""Shared by the benchmarks/ A/B scripts: the bench's artifacts of each variant, and timing the
variants interleaved in one process (every other round reversed)."""
import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

VARIANTS = ("tsn", "tsm", "action")


SUFFIXES = {"executorch": ".pte", "tflite": ".tflite"}


def bench_artifact(work: Path, variant: str, precision: str, segments: int = 8, size: int = 224,
                   target: str = "executorch") -> Path:
    """The ``.pte`` (or ``target``'s artifact) that benchmarks/run_bench.sh left in ``work``; a
    one-line exit if there is none."""
    folder = work / "artifacts" / f"{variant}-{target}-{precision}-t{segments}-s{size}"
    found = next(folder.glob(f"*{SUFFIXES[target]}"), None)
    if found is None:
        raise SystemExit(f"error: no {SUFFIXES[target]} in {folder}: run benchmarks/run_bench.sh with WORK={work} first")
    return found


def timing_arguments(p: argparse.ArgumentParser, rounds: int = 12) -> None:
    """The A/B scripts' shared options: rounds, runs, threads and the clip shape."""
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)


def interleaved(calls: dict[str, Callable[[], object]], rounds: int, runs: int, warmup: int) -> dict[str, list[float]]:
    """``warmup`` untimed calls of each, then ``rounds`` rounds of ``runs`` timed calls (ms) of each."""
    names = list(calls)
    for n in names:
        for _ in range(warmup):
            calls[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            for _ in range(runs):
                t = time.perf_counter()
                calls[n]()
                times[n].append((time.perf_counter() - t) * 1e3)
    return times


def print_overhead(times: dict[str, list[float]], label: str = "") -> None:
    """Each variant's median and min, and the overhead over TSM of each ACTION entry (``action``, ``action_*``)."""
    med = {n: statistics.median(t) for n, t in times.items()}
    low = {n: min(t) for n, t in times.items()}
    for n in times:
        print(f"{label}{n}: median {med[n]:.2f} ms, min {low[n]:.2f} ms ({len(times[n])} runs)")
    for n in (n for n in times if n.startswith("action") and "tsm" in times):
        print(f"{n} over tsm: median {100 * (med[n] / med['tsm'] - 1):+.1f}%, "
              f"min {100 * (low[n] / low['tsm'] - 1):+.1f}%")
