"""`actionnet-edge qat`: quantization-aware fine-tuning of a float checkpoint (PT2E)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..logs import LOG_NAME, capture
from .recipes import recipe_path

from ..constants import QUANT_BACKENDS


@click.command("qat", epilog="Example: actionnet-edge qat qat_synthetic --output runs/qat --max-steps 20")
@click.argument("recipe")
@click.option("--init", "init", default=None, metavar="CKPT",
              help="Float checkpoint to fine-tune [default: the bundled model].")
@click.option("--backend", type=click.Choice(QUANT_BACKENDS), default=None,
              help="Quantizer (overrides qat.backend): xnnpack (ExecuTorch), litert (TFLite), coreml.")
@click.option("--output", default=None, metavar="DIR", help="Run folder [default: runs/<recipe name>].")
@click.option("--data-root", default=None, metavar="DIR", help="Dataset folder (overrides data.root).")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/last.pt.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, e.g. --set qat.epochs=2 (repeatable).")
@click.option("--max-steps", default=None, type=click.IntRange(min=1), help="Stop after N optimizer steps (smoke runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def command(recipe, init, backend, output, data_root, resume, overrides, max_steps, as_json):
    """Fine-tune a float checkpoint with fake quantization; writes a QAT checkpoint (OUTPUT/last.pt)
    that `export --precision int8` takes, and qat_report.json (int8 vs float top-1)."""
    from ..errors import ActionNetError
    from ..train.config import load_recipe
    from ..quant.qat import run_qat

    r = load_recipe(recipe_path(recipe), overrides)
    if data_root is not None and not Path(data_root).exists():
        raise ActionNetError(f"data root not found: {data_root}")
    if init is not None and not Path(init).is_file():
        raise ActionNetError(f"checkpoint not found: {init}")
    out = Path(output) if output else Path("runs") / Path(recipe).stem
    if not resume and (out / "last.pt").exists():
        raise ActionNetError(f"{out} already has a run (last.pt): pass --resume to continue or another --output")
    with capture(out / LOG_NAME):  # the quantizer's and other packages' own output
        report = run_qat(r, out, init=init, backend=backend, data_root=data_root, resume=resume,
                         max_steps=max_steps)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(f"done: int8 ({report['backend']}) val top-1 {report['int8_top1']:.4f} vs float "
                   f"{report['float_top1']:.4f} ({report['int8_minus_float_points']:+.2f} points); "
                   f"QAT checkpoint {report['qat_checkpoint']}")
