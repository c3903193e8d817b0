"""Eager PyTorch forward under glibc malloc settings: minor page faults and median ms per forward.

    python benchmarks/eager_malloc.py --threads 2 --runs 20

Each setting runs in its own process: MobileNetV2-TSM (fresh weights), a (1, T, 3, S, S) clip,
``--warmup`` untimed forwards, then ``--runs`` timed ones; minor page faults come from
``resource.getrusage`` around the timed forwards. Settings: glibc's defaults; ``GLIBC_TUNABLES``
keeping freed memory (what the bench's worker processes get, docs/benchmarks.md); the same two
knobs set in-process with ``mallopt`` (what actionnet_edge/malloc.py did until it was removed);
with ``--preload LIB`` also that allocator (jemalloc, tcmalloc) through ``LD_PRELOAD``.
Reproduces the malloc row of docs/ARCHITECTURE.md ("Cleverness kept, and what it pays").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from actionnet_edge.bench.runtimes import KEEP_FREED_MEMORY as KEEP_FREED

CHILD = r"""
import ctypes, json, resource, statistics, sys, time
a = json.loads(sys.argv[1])
if a["mallopt"]:
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(-4, 0) == 1 and libc.mallopt(-1, 2**31 - 1) == 1  # M_MMAP_MAX, M_TRIM_THRESHOLD
import torch
from actionnet_edge.models import create_model
torch.set_num_threads(a["threads"])
torch.manual_seed(0)
model = create_model("mobilenet_v2", "shift", a["segments"], 27, 1.0).eval()
x = torch.randn(1, a["segments"], 3, a["size"], a["size"])
with torch.inference_mode():
    for _ in range(a["warmup"]):
        model(x)
    times, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(a["runs"]):
        t = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t) * 1e3)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / a["runs"]
print(json.dumps({"median_ms": statistics.median(times), "min_ms": min(times), "minor_faults": faults}))
"""


def measure(setting: str, env: dict, args: argparse.Namespace) -> dict:
    spec = {"mallopt": setting == "mallopt (in-process)", "threads": args.threads, "segments": args.segments,
            "size": args.size, "warmup": args.warmup, "runs": args.runs}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--preload", action="append", default=[], metavar="LIB",
                   help="an allocator library to measure through LD_PRELOAD (repeatable)")
    args = p.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [root, base.get("PYTHONPATH")]))
    settings = {"glibc defaults": base, f"GLIBC_TUNABLES={KEEP_FREED}": {**base, "GLIBC_TUNABLES": KEEP_FREED},
                "mallopt (in-process)": base}
    settings.update({f"LD_PRELOAD={lib}": {**base, "LD_PRELOAD": lib} for lib in args.preload})
    print(f"MobileNetV2-TSM {args.segments} x {args.size} px, eager, {args.threads} threads, {args.runs} runs")
    print("| setting | median ms | min ms | minor page faults per forward |\n|---|---|---|---|")
    for name, env in settings.items():
        r = measure(name, env, args)
        print(f"| {name} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['minor_faults']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
