"""Eager PyTorch with glibc's malloc defaults vs keep_freed_memory (actionnet_edge/malloc.py).

    python benchmarks/malloc_ab.py --temporal shift --runs 20 --rounds 3 --threads 2

Each setting runs in its own fresh process (the setting is per process), alternating, ``--rounds``
times: a fresh MobileNetV2 (8 x 224 by default), 3 untimed forwards, then ``--runs`` timed ones,
each with the minor page faults it took (``getrusage``). Prints, per setting, the median and min
forward, the page faults per forward and the process's peak RSS (VmHWM).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
spec = json.loads(sys.argv[1])
from actionnet_edge.malloc import keep_freed_memory
state = keep_freed_memory()
import torch
from actionnet_edge import create_model
torch.set_num_threads(spec["threads"])
model = create_model("mobilenet_v2", temporal=spec["temporal"], num_segments=spec["segments"], num_classes=27).eval()
x = torch.randn(1, spec["segments"], 3, spec["size"], spec["size"])
ms, faults = [], []
with torch.inference_mode():
    for _ in range(3):
        model(x)
    for _ in range(spec["runs"]):
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        model(x)
        ms.append((time.perf_counter() - t0) * 1e3)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
hwm = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"state": state, "ms": ms, "faults": faults, "peak_rss_mb": hwm}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--temporal", default="shift", help="none, shift, action, ...")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    a = p.parse_args()
    spec = json.dumps({k: getattr(a, k) for k in ("temporal", "runs", "threads", "segments", "size")})
    got: dict[str, list[dict]] = {"default": [], "kept": []}
    for r in range(a.rounds):
        for setting in ("default", "kept") if r % 2 == 0 else ("kept", "default"):
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "ACTIONNET_EDGE_MALLOC": setting}
            out = subprocess.run([sys.executable, "-c", CHILD, spec], env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"error: the {setting} run failed: {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                return 1
            res = json.loads(out.stdout.strip().splitlines()[-1])
            if res["state"] != setting:
                print(f"error: asked for {setting}, the process ran {res['state']}", file=sys.stderr)
                return 1
            got[setting].append(res)
    print(f"eager mobilenet_v2-{a.temporal}, {a.segments} x {a.size}, {a.threads} threads, "
          f"{a.rounds} processes x {a.runs} forwards per setting")
    for setting, runs in got.items():
        ms = [v for x in runs for v in x["ms"]]
        faults = [v for x in runs for v in x["faults"]]
        print(f"{setting:>7}: median {statistics.median(ms):6.1f} ms, min {min(ms):6.1f} ms, "
              f"{statistics.median(faults):8.0f} minor page faults per forward, "
              f"peak RSS {max(x['peak_rss_mb'] for x in runs):.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
