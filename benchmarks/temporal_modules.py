"""Eager cost of each temporal module at the ten shapes where MobileNetV2 has one (8 frames, 224 px).

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 \
        python benchmarks/temporal_modules.py --threads 2 --reps 50

Times TSM's shift, ACTION's learnable shift and its STE / CE / ME paths and the whole ACTION
module, summed over the ten inverted-residual blocks with a residual (24 x 56^2, 2 x 32 x 28^2,
3 x 64 x 14^2, 2 x 96 x 14^2, 2 x 160 x 7^2, for N*T = 8), in eval, with the malloc setting the bench's
workers get (above). "ste (Conv3d)" is STE computed the official way, its Conv3d on (N, 1, T, H, W).
"""
import argparse
import time

import torch

from actionnet_edge.models.temporal import CE, ME, STE, Action, LearnableShift, TemporalShift

SHAPES = [(24, 56)] + [(32, 28)] * 2 + [(64, 14)] * 3 + [(96, 14)] * 2 + [(160, 7)] * 2


def ste_conv3d(mod: STE, x: torch.Tensor) -> torch.Tensor:
    nt, _, h, w = x.shape
    t = mod.num_segments
    f = x.mean(1, keepdim=True).view(nt // t, t, 1, h, w).transpose(1, 2)  # N, 1, T, H, W
    return torch.sigmoid(mod.conv(f).transpose(1, 2).reshape(nt, 1, h, w))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--segments", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    t = a.segments
    xs = [torch.randn(t, c, s, s) for c, s in SHAPES]
    kinds = {"tsm shift": TemporalShift, "learnable shift": LearnableShift, "ste": STE, "ce": CE, "me": ME,
             "action (all)": Action}
    calls = {name: [m.eval() for m in (cls(c, t) for c, _ in SHAPES)] for name, cls in kinds.items()}
    calls = {k: [m.__call__ for m in v] for k, v in calls.items()}
    calls["ste (Conv3d)"] = [lambda x, m=m: ste_conv3d(m, x) for m in (STE(c, t).eval() for c, _ in SHAPES)]
    print(f"eager, {a.threads} threads, sum over the {len(SHAPES)} MobileNetV2 blocks, mean of {a.reps} reps")
    with torch.inference_mode():
        for name, fns in calls.items():
            for _ in range(5):
                for fn, x in zip(fns, xs):
                    fn(x)
            t0 = time.perf_counter()
            for _ in range(a.reps):
                for fn, x in zip(fns, xs):
                    fn(x)
            print(f"{name:>16}: {(time.perf_counter() - t0) / a.reps * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
