"""In-process A/B of the TSN / TSM / ACTION ``.pte`` of one precision: the variants interleaved
(every other round reversed) in one process, so a slow spell of a shared machine falls on all.

    python benchmarks/pte_ab.py /tmp/bench/work --precision int8 --rounds 12 --runs 8 --threads 2

The folder is the bench's ``--work`` (``artifacts/<variant>-executorch-<precision>-t8-s224/*.pte``,
as ``benchmarks/run_bench.sh`` leaves them). Prints each variant's median and min and ACTION's
overhead over TSM.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from executorch.extension.pybindings import portable_lib as et

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("work", type=Path)
p.add_argument("--precision", default="int8", choices=("fp32", "int8"))
p.add_argument("--rounds", type=int, default=12)
p.add_argument("--runs", type=int, default=8)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--segments", type=int, default=8)
p.add_argument("--size", type=int, default=224)
a = p.parse_args()
names = ("tsn", "tsm", "action")
paths = {n: sorted((a.work / "artifacts" / f"{n}-executorch-{a.precision}-t{a.segments}-s{a.size}").glob("*.pte"))
         for n in names}
missing = [n for n, found in paths.items() if not found]
if missing:
    sys.exit(f"error: no {a.precision} .pte for {', '.join(missing)} under {a.work / 'artifacts'} (run benchmarks/run_bench.sh)")
torch.set_num_threads(1)  # as the bench worker: the binding's copies must not start a second pool
et._unsafe_reset_threadpool(a.threads)
mods = {n: et._load_for_executorch(str(paths[n][0])) for n in names}
x = torch.randn(1, a.segments, 3, a.size, a.size)
times: dict[str, list[float]] = {n: [] for n in names}
for n in names:
    for _ in range(5):
        mods[n].forward([x])
for r in range(a.rounds):
    for n in names if r % 2 == 0 else names[::-1]:
        for _ in range(a.runs):
            t = time.perf_counter()
            mods[n].forward([x])
            times[n].append((time.perf_counter() - t) * 1e3)
med = {n: statistics.median(t) for n, t in times.items()}
low = {n: min(t) for n, t in times.items()}
for n in names:
    print(f"{a.precision} {n}: median {med[n]:.2f} ms, min {low[n]:.2f} ms ({len(times[n])} runs)")
print(f"ACTION over TSM: median {100 * (med['action'] / med['tsm'] - 1):+.1f}%, "
      f"min {100 * (low['action'] / low['tsm'] - 1):+.1f}%")
