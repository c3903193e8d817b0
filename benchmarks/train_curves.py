"""Learning curves on a small set of one's own clips: train a recipe, then plot val top-1 per epoch.

``train`` runs the one training loop (:func:`actionnet_edge.train.loop.fit`) on one thread with
a recipe and ``--set`` overrides, building the datasets with the recipe's ``data.augment``;
it writes the run folder (``metrics.jsonl``) and prints one ``RESULT`` line. ``plot`` draws
the val top-1 per epoch of several run folders into one PNG and writes their figures as JSON
next to it. ``plain`` runs the plain loop of issue 28 outside the toolkit (``_plain_loop.py``).
The Jester-like set is made by ``actionnet-edge data synth --kind hands``.

    actionnet-edge data synth --kind hands --out data/hands
    python benchmarks/train_curves.py train recipes/custom_csv.yaml --data-root data/hands --out runs/curves/custom_csv
    python benchmarks/train_curves.py plot runs/curves/custom_csv --png docs/img/custom_csv_hands.png
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

import _plain_loop


def train(args: argparse.Namespace) -> None:
    from actionnet_edge.data import build_dataset
    from actionnet_edge.train.config import load_recipe
    from actionnet_edge.train.loop import fit

    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe, args.set)
    d = recipe.data
    root = args.data_root or d.root
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # MobileNetV2's (ImageNet) normalisation
    sets = [build_dataset(d.dataset, root, split, segments=d.segments, size=d.size, train=split == "train",
                          mean=mean, std=std, seed=d.seed, flip=d.flip and split == "train", augment=d.augment)
            for split in ("train", "val")]
    out = Path(args.out)
    if (out / "metrics.jsonl").exists():
        raise SystemExit(f"{out} already holds a run")
    start = time.time()
    fit(recipe, out, train_set=sets[0], val_set=sets[1], device="cpu")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print("RESULT", out.name, json.dumps({"val_top1": [round(r["val_top1"], 3) for r in rows],
                                          "train_loss": [round(r["train_loss"], 3) for r in rows],
                                          "seconds": round(time.time() - start)}), flush=True)


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    summary = {}
    for run in args.runs:
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        name = Path(run).name
        top1 = [r["val_top1"] for r in rows]
        summary[name] = {"val_top1": [round(v, 4) for v in top1],
                         "train_loss": [round(r["train_loss"], 4) for r in rows]}
        ax.plot(range(1, len(top1) + 1), top1, marker="o", label=name)
    if args.chance:
        ax.axhline(args.chance, color="grey", linestyle=":", label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(args.title, fontsize=10)
    png = Path(args.png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png)
    png.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {png} and {png.with_suffix('.json')}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one recipe")
    t.add_argument("recipe")
    t.add_argument("--data-root", default=None, help="overrides data.root")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    t.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("plot", help="plot val top-1 per epoch of run folders")
    p.add_argument("runs", nargs="+")
    p.add_argument("--png", required=True)
    p.add_argument("--title", default="val top-1 per epoch")
    p.add_argument("--chance", type=float, default=None)
    q = sub.add_parser("plain", help="the plain loop outside the toolkit (docs/training.md)")
    _plain_loop.add_arguments(q)
    args = ap.parse_args()
    {"train": train, "plot": plot, "plain": _plain_loop.run}[args.cmd](args)


if __name__ == "__main__":
    main()
