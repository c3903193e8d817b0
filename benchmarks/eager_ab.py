"""In-process A/B of PyTorch eager TSN / TSM / ACTION: the variants interleaved (every other round
reversed) in one process, so a slow spell of a shared machine falls on all of them alike.

    python benchmarks/eager_ab.py /tmp/bench/work/checkpoints --rounds 10 --runs 8 --threads 2

The folder holds tsn.pt, tsm.pt and action.pt, as `benchmarks/run_bench.sh` leaves them in
$WORK/checkpoints. Prints each variant's median and min and ACTION's overhead over TSM.
"""
import argparse
from pathlib import Path

from _variants import VARIANTS, interleaved, print_overhead, timing_arguments

from actionnet_edge.malloc import keep_freed_memory

print(f"malloc: {keep_freed_memory()} (as in actionnet-edge bench; ACTIONNET_EDGE_MALLOC=default for glibc's defaults)")
import torch  # noqa: E402

from actionnet_edge.checkpoint import load_checkpoint  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("checkpoints", type=Path)
timing_arguments(p, rounds=10)
a = p.parse_args()
torch.set_num_threads(a.threads)
models = {n: load_checkpoint(a.checkpoints / f"{n}.pt").model.eval() for n in VARIANTS}
x = torch.randn(1, a.segments, 3, a.size, a.size)
with torch.inference_mode():
    times = interleaved({n: (lambda m=m: m(x)) for n, m in models.items()}, a.rounds, a.runs, warmup=3)
print_overhead(times)
