"""`actionnet-edge train`: train a model from a YAML recipe (DDP under torchrun)."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("train")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--data-root", default=None, metavar="DIR", help="Dataset folder (overrides data.root).")
@click.option("--output", default=None, metavar="DIR", help="Run folder [default: runs/<recipe name>].")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/last.pt.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set train.lr=0.02 (repeatable).")
@click.option("--max-steps", default=None, type=click.IntRange(min=1), help="Stop after N optimizer steps (smoke runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object.")
def command(recipe, data_root, output, resume, overrides, max_steps, as_json):
    """Train (or resume) the model of RECIPE; writes last.pt, best.pt, metrics.jsonl, tb/."""
    from ..errors import ActionNetError
    from ..train.config import load_recipe
    from ..train.loop import fit

    r = load_recipe(recipe, overrides)
    if data_root is not None and not Path(data_root).exists():
        raise ActionNetError(f"data root not found: {data_root}")
    out = Path(output) if output else Path("runs") / Path(recipe).stem
    if not resume and (out / "last.pt").exists():
        raise ActionNetError(f"{out} already has a run (last.pt): pass --resume to continue or another --output")
    result = fit(r, out, data_root=data_root, resume=resume, max_steps=max_steps)
    summary = {"output": str(out), "epoch": result["epoch"], "best_top1": result["best_top1"],
               "val": result.get("val", {}), "train_loss": result.get("train_loss")}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        val = summary["val"]
        click.echo(f"done: epoch {summary['epoch'] + 1}, val top-1 {val.get('top1', float('nan')):.4f}, "
                   f"best {summary['best_top1']:.4f}; checkpoints in {out}")
