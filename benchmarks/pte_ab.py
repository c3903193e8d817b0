"""In-process A/B of the TSN / TSM / ACTION ``.pte`` of one precision: the variants interleaved
(every other round reversed) in one process, so a slow spell of a shared machine falls on all.

    python benchmarks/pte_ab.py /tmp/bench/work --precision int8 --rounds 12 --runs 8 --threads 2

The folder is the bench's ``--work`` (``artifacts/<variant>-executorch-<precision>-t8-s224/*.pte``,
as ``benchmarks/run_bench.sh`` leaves them). Prints each variant's median and min and ACTION's
overhead over TSM.
"""
import argparse
from pathlib import Path

import torch
from _variants import VARIANTS, bench_artifact, interleaved, print_overhead, timing_arguments
from executorch.extension.pybindings import portable_lib as et

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("work", type=Path)
p.add_argument("--precision", default="int8", choices=("fp32", "int8"))
timing_arguments(p)
a = p.parse_args()
paths = {n: bench_artifact(a.work, n, a.precision, a.segments, a.size) for n in VARIANTS}
torch.set_num_threads(1)  # as the bench worker: the binding's copies must not start a second pool
et._unsafe_reset_threadpool(a.threads)
mods = {n: et._load_for_executorch(str(path)) for n, path in paths.items()}
x = torch.randn(1, a.segments, 3, a.size, a.size)
times = interleaved({n: (lambda m=m: m.forward([x])) for n, m in mods.items()}, a.rounds, a.runs, warmup=5)
print_overhead(times, f"{a.precision} ")
