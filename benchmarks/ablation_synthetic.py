"""TSN vs TSM vs ACTION on the synthetic gestures: top-1 overall and within time-reversed pairs.

Every class of the synthetic set has a twin that is the same clip played backwards, so a
model that cannot order frames (TSN) can only guess within a pair (50%). The script trains
the three temporal variants with ONE recipe (``recipes/synthetic.yaml`` plus ``--set``
overrides shared by all) and writes ``benchmarks/results/ablation_synthetic.{md,json}``.

It also trains the causal ACTION of the streaming models (every temporal op reads only
current and past frames) with both consensus rules, average of the frames' logits and the
last frame's logits, and scores each causal model with both read-outs, next to the offline
ACTION: what streaming costs in accuracy.

    python benchmarks/ablation_synthetic.py                       # the recipe as shipped
    python benchmarks/ablation_synthetic.py --set model.width_mult=0.5 --set train.epochs=3
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from actionnet_edge.bench.macs import human, profile_model
from actionnet_edge.data.synth import LABELS, PAIRS
from actionnet_edge.train.config import load_recipe
from actionnet_edge.train.loop import build_datasets, fit

log = logging.getLogger("ablation")
ROOT = Path(__file__).resolve().parents[1]
#: (method, run folder, recipe overrides)
VARIANTS = (("TSN", "none", ["model.temporal=none"]), ("TSM", "shift", ["model.temporal=shift"]),
            ("ACTION", "action", ["model.temporal=action"]),
            ("ACTION causal, average", "action_causal_avg",
             ["model.temporal=action", "model.causal=true", "model.consensus=avg"]),
            ("ACTION causal, last frame", "action_causal_last",
             ["model.temporal=action", "model.causal=true", "model.consensus=last"]))


@torch.no_grad()
def pair_scores(model: torch.nn.Module, dataset, batch_size: int = 32) -> dict[str, float]:
    """Top-1 over all classes, and within pairs: the true class beats its time-reversed twin."""
    twin = {a: b for a, b in PAIRS} | {b: a for a, b in PAIRS}
    model.eval()
    n = top1 = pair = 0
    per_pair = {a: [0, 0] for a, _ in PAIRS}  # first class of the pair -> [correct within pair, clips]
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([s.clip for s in samples])
        y = torch.tensor([s.label for s in samples])
        logits = model(x)
        top1 += (logits.argmax(1) == y).sum().item()
        other = torch.tensor([twin[int(v)] for v in y])
        won = (logits.gather(1, y[:, None]) > logits.gather(1, other[:, None]))[:, 0]
        pair += won.sum().item()
        for label, w in zip(y.tolist(), won.tolist()):
            per_pair[min(label, twin[label])][0] += int(w)
            per_pair[min(label, twin[label])][1] += 1
        n += len(y)
    pairs = {f"{LABELS[a]} / {LABELS[b]}": per_pair[a][0] / max(1, per_pair[a][1]) for a, b in PAIRS}
    return {"top1": top1 / n, "pair_top1": pair / n, "samples": n, "per_pair": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "synthetic.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--work", default=str(ROOT / "runs" / "ablation"), help="Run folders.")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    rows = []
    for name, folder, extra in VARIANTS:
        recipe = load_recipe(args.recipe, args.overrides + extra)
        run = Path(args.work) / folder
        start = time.time()
        fit(recipe, run, resume=(run / "last.pt").is_file())
        from actionnet_edge.checkpoint import load_checkpoint

        ck = load_checkpoint(run / "last.pt")
        _, val = build_datasets(recipe, None, tuple(ck.preprocess["mean"]), tuple(ck.preprocess["std"]))
        minutes = round((time.time() - start) / 60, 1)
        scores = pair_scores(ck.model, val)
        readouts = {}
        if recipe.model.causal:  # the same causal model read out both ways
            trained = ck.model.config["consensus"]
            for rule in ("avg", "last"):
                ck.model.config["consensus"] = rule
                readouts[rule] = scores if rule == trained else pair_scores(ck.model, val)
            ck.model.config["consensus"] = trained
        prof = profile_model(ck.model, recipe.data.size)
        rows.append({"method": name, "temporal": recipe.model.temporal, "causal": recipe.model.causal,
                     "consensus": recipe.model.consensus, **scores, "readouts": readouts,
                     "macs": prof.macs, "params": prof.params, "train_minutes": minutes})
        log.info("%s: top-1 %.4f, within pairs %.4f", name, scores["top1"], scores["pair_top1"])
    r = load_recipe(args.recipe, args.overrides)
    setup = (f"mobilenet_v2 width {r.model.width_mult}, {r.data.segments} frames at {r.data.size} px, "
             f"{r.data.num_train} train / {r.data.num_val} val clips, {r.train.epochs} epochs, "
             f"batch {r.train.batch_size}, lr {r.train.lr}, from scratch")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation_synthetic.json").write_text(json.dumps({"setup": setup, "recipe": r.to_dict(),
                                                             "overrides": args.overrides, "rows": rows}, indent=2))
    lines = [f"Synthetic gestures (8 classes, 4 time-reversed pairs): {setup}.", "",
             "| Method | Top-1 | Top-1 within pairs (chance 50%) | MACs / clip | Params | Train min |",
             "|---|---|---|---|---|---|"]
    offline = [x for x in rows if not x["causal"]]
    causal = [x for x in rows if x["causal"]]
    lines += [f"| {x['method']} | {100 * x['top1']:.1f}% | {100 * x['pair_top1']:.1f}% | {human(x['macs'])} | "
              f"{human(x['params'])} | {x['train_minutes']} |" for x in offline]
    names = list(rows[0]["per_pair"]) if rows else []
    lines += ["", "Within-pair top-1 per pair (the true class scores above its time-reversed twin):", "",
              "| Method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {x['method']} | " + " | ".join(f"{100 * x['per_pair'][k]:.1f}%" for k in names) + " |" for x in rows]
    action = next((x for x in offline if x["temporal"] == "action"), None)
    if causal and action:
        lines += ["", "Streaming: causal ACTION (temporal ops read only current and past frames) vs offline ACTION, "
                  "top-1 (within pairs). Each causal model is trained with one consensus rule and read out with both: "
                  "the average of the T frames' logits (what a stream's running average gives after T frames) "
                  "and the last frame's logits alone.", "",
                  "| Model (trained with) | Read-out: average of frames | Read-out: last frame | Train min |",
                  "|---|---|---|---|",
                  f"| ACTION offline (average) | {100 * action['top1']:.1f}% ({100 * action['pair_top1']:.1f}%) | - | "
                  f"{action['train_minutes']} |"]
        lines += [f"| {x['method']} | " + " | ".join(
            f"{100 * x['readouts'][r]['top1']:.1f}% ({100 * x['readouts'][r]['pair_top1']:.1f}%)" for r in ("avg", "last"))
            + f" | {x['train_minutes']} |" for x in causal]
    (out / "ablation_synthetic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
