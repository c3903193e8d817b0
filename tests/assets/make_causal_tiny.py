"""Make ``causal_tiny.pt``: the trained causal test model of the int8 streaming tests.

A random-weight model sits at int8's noise floor (logits of ~5e-3), so its int8 artifacts
cannot be judged against a reference; this one has learnt the synthetic gestures. Causal
MobileNetV2-ACTION x0.25, T=4, 64 px, 8 classes, trained from scratch on 256 synthetic clips
(AdamW 3e-3, one step down at 3/4 of the run), one thread, seed 0:

    python tests/assets/make_causal_tiny.py tests/assets/causal_tiny.pt
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from actionnet_edge.train.config import parse_recipe
from actionnet_edge.train.loop import fit

RECIPE = {
    "model": {"arch": "mobilenet_v2", "temporal": "action", "width_mult": 0.25, "dropout": 0.0, "causal": True},
    "data": {"dataset": "synthetic", "segments": 4, "size": 64, "num_train": 256, "num_val": 64, "workers": 0,
             "seed": 0},
    "train": {"epochs": 40, "batch_size": 16, "optimizer": "adamw", "lr": 0.003, "lr_steps": [0.75],
              "weight_decay": 0.01, "log_every": 100, "seed": 0},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="checkpoint to write")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as run:
        report = fit(parse_recipe(RECIPE), run, device="cpu")
        shutil.copyfile(Path(run) / "best.pt", args.out)
    print(f"wrote {args.out}: val top-1 {report['best_top1']:.3f}")


if __name__ == "__main__":
    main()
