"""`actionnet-edge data`: dataset utilities (`data synth` writes the synthetic gesture set)."""
from __future__ import annotations

import click


@click.group("data", epilog="Example: actionnet-edge data synth --out data/synth --train 200 --val 40")
def command() -> None:
    """Dataset utilities."""


@command.command("synth", epilog="Example: actionnet-edge data synth --out data/synth --train 200 --val 40")
@click.option("--out", required=True, metavar="DIR", help="Output folder (must not exist or be empty).")
@click.option("--train", "n_train", default=2000, show_default=True, type=click.IntRange(min=1), help="Training clips.")
@click.option("--val", "n_val", default=400, show_default=True, type=click.IntRange(min=1), help="Validation clips.")
@click.option("--size", default="74x74", show_default=True, metavar="HxW", help="Frame size in pixels.")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=2), help="Frames per clip.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def synth(out, n_train, n_val, size, frames, seed):
    """Write the synthetic gesture set (time-reversed pairs) in the 20BN-Jester layout."""
    from ..data.synth import LABELS, write_jester

    path = write_jester(out, n_train, n_val, size, frames, seed)
    click.echo(f"wrote {n_train} train + {n_val} val clips of {len(LABELS)} classes to {path}")
