"""Shared by the benchmarks/ A/B scripts: the bench's artifacts of each variant, and timing the
variants interleaved in one process (every other round reversed)."""
import statistics
import time
from pathlib import Path
from typing import Callable

VARIANTS = ("tsn", "tsm", "action")


def bench_pte(work: Path, variant: str, precision: str, segments: int = 8, size: int = 224) -> Path:
    """The ``.pte`` that benchmarks/run_bench.sh left in ``work``; a one-line exit if there is none."""
    folder = work / "artifacts" / f"{variant}-executorch-{precision}-t{segments}-s{size}"
    pte = next(folder.glob("*.pte"), None)
    if pte is None:
        raise SystemExit(f"error: no .pte in {folder}: run benchmarks/run_bench.sh with WORK={work} first")
    return pte


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
