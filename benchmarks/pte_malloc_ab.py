"""The bench's own ExecuTorch measurement (one process per measurement) of the TSM and ACTION
``.pte``, with glibc's malloc defaults and with keep_freed_memory, alternating.

    python benchmarks/pte_malloc_ab.py /tmp/bench/work --precision int8 --rounds 2
"""
import argparse
import os
from pathlib import Path

from _variants import bench_artifact

from actionnet_edge.bench.runtimes import measure

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("work", type=Path)
p.add_argument("--precision", default="int8", choices=("fp32", "int8"))
p.add_argument("--rounds", type=int, default=2)
a = p.parse_args()
for _ in range(a.rounds):
    for setting in ("default", "kept"):
        os.environ["ACTIONNET_EDGE_MALLOC"] = setting  # the worker inherits it
        out = []
        for n in ("tsm", "action"):
            res = measure("executorch", artifact=bench_artifact(a.work, n, a.precision), config=None, shape=(1, 8, 3, 224, 224), threads=2,
                          warmup=5, runs=20)
            out.append(f"{n} median {res['latency_ms_median']:.2f} / min {res['latency_ms_min']:.2f} ms")
        print(f"{setting:>7}: " + " | ".join(out), flush=True)
