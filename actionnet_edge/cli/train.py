"""`actionnet-edge train`: train a model from a YAML recipe (DDP under torchrun)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..logs import LOG_NAME, capture
from .recipes import recipe_path


@click.command("train", epilog="Examples: actionnet-edge train synthetic --output runs/synth\n\n"
               "actionnet-edge train jester_mbv2_action --data-root /data/jester   (list: actionnet-edge recipes)")
@click.argument("recipe", type=click.Path(dir_okay=False), required=False)
@click.option("--data-root", default=None, metavar="DIR", help="Dataset folder (overrides data.root).")
@click.option("--output", default=None, metavar="DIR", help="Run folder [default: runs/<recipe name>].")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUTPUT (last.pt) with its own recipe, stored there; RECIPE and --set "
                   "may be left out, and where given must agree with it. The one exception: --set "
                   "train.epochs=N with N above the run's epochs extends it (its schedule, fractions of the "
                   "run, stretched to N). --data-root may point where its data now is.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set train.lr=0.02 (repeatable).")
@click.option("--max-steps", default=None, type=click.IntRange(min=1), help="Stop after N optimizer steps (smoke runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object.")
def command(recipe, data_root, output, resume, overrides, max_steps, as_json):
    """Train (or resume) the model of RECIPE (a YAML file or a shipped recipe's name); writes last.pt, best.pt, metrics.jsonl, recipe.yaml, tb/.

    A progress bar with throughput and ETA is drawn on stderr when it is a terminal (not with -q)."""
    from ..errors import ActionNetError
    from ..train.loop import fit

    if recipe is None and not (resume and output):
        raise ActionNetError("give a RECIPE (or --resume --output DIR to continue a run)")
    if data_root is not None and not Path(data_root).exists():
        raise ActionNetError(f"data root not found: {data_root}")
    out = Path(output) if output else Path("runs") / Path(recipe).stem
    if resume:
        r = _resumed(out, recipe, overrides, data_root)
    else:
        from ..train.config import load_recipe
        from ..train.run_recipe import resolved_recipe

        r = resolved_recipe(load_recipe(recipe_path(recipe), overrides), data_root)
        if (out / "last.pt").exists():
            raise ActionNetError(f"{out} already has a run (last.pt): pass --resume to continue or another --output")
    with capture(out / LOG_NAME):  # other packages' output (warnings, C++ logs)
        result = fit(r, out, resume=resume, max_steps=max_steps)
    summary = {"output": str(out), "epoch": result["epoch"], "best_top1": result["best_top1"],
               "val": result.get("val", {}), "train_loss": result.get("train_loss"),
               "epochs_trained": result["epochs_trained"]}
    if as_json:
        click.echo(json.dumps(summary))
    elif result["epochs_trained"] == 0:
        click.echo(f"nothing to train: {out} has finished its {r.train.epochs} epochs (best val top-1 "
                   f"{summary['best_top1']:.4f}); pass --set train.epochs=N to extend it")
    else:
        click.echo(f"done: epoch {summary['epoch'] + 1}, val top-1 {summary['val']['top1']:.4f}, "
                   f"best {summary['best_top1']:.4f}; checkpoints in {out}")


def _resumed(out: Path, recipe: str | None, overrides: tuple[str, ...], data_root: str | None):
    """The run's own recipe from ``out/last.pt``, checked against RECIPE/--set, epochs extended by --set."""
    from ..checkpoint import read_checkpoint
    from ..errors import ActionNetError
    from ..train.config import apply_overrides, load_recipe, parse_recipe
    from ..train.run_recipe import resolved_recipe, resumed_recipe

    last = out / "last.pt"
    if not last.is_file():
        raise ActionNetError(f"nothing to resume: {last} does not exist")
    stored = read_checkpoint(last).get("recipe")
    epochs = (apply_overrides({}, overrides).get("train") or {}).get("epochs")
    given = None
    if recipe is not None:
        run_root = (stored.get("data") or {}).get("root") if isinstance(stored, dict) else None
        given = resolved_recipe(load_recipe(recipe_path(recipe), overrides),
                                data_root if data_root is not None else run_root)
    elif overrides and isinstance(stored, dict):
        given = parse_recipe(apply_overrides(stored, overrides), source="--set")
    run = resumed_recipe(stored, str(last), given, epochs if isinstance(epochs, int) else None)
    return resolved_recipe(run, data_root)
