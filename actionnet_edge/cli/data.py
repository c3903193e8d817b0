"""`actionnet-edge data`: dataset utilities (`data synth` writes a procedural gesture set)."""
from __future__ import annotations

import click

#: per kind: default train clips, val clips, frame size (HxW)
_KINDS = {"shapes": (2000, 400, "74x74"), "hands": (192, 48, "100x132")}


@click.group("data", epilog="Example: actionnet-edge data synth --out data/synth --train 200 --val 40")
def command() -> None:
    """Dataset utilities."""


@command.command("synth", epilog="Example: actionnet-edge data synth --out data/synth --train 200 --val 40")
@click.option("--out", required=True, metavar="DIR", help="Output folder (must not exist or be empty).")
@click.option("--kind", type=click.Choice(list(_KINDS)), default="shapes", show_default=True,
              help="shapes: 8 classes of moving shapes, fixed-length clips. hands: a Jester-like set of 6 hand "
                   "gestures on a cluttered scene, 27-35 frames a clip, also written as train.csv/val.csv "
                   "(the layout of your own clips).")
@click.option("--train", "n_train", default=None, type=click.IntRange(min=1),
              help="Training clips [default: shapes 2000, hands 192].")
@click.option("--val", "n_val", default=None, type=click.IntRange(min=1),
              help="Validation clips [default: shapes 400, hands 48].")
@click.option("--size", default=None, metavar="HxW", help="Frame size in pixels [default: shapes 74x74, hands 100x132].")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=2),
              help="Frames per clip (shapes; hands clips have 27-35).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def synth(out, kind, n_train, n_val, size, frames, seed):
    """Write a procedural gesture set (classes in time-reversed pairs) in the 20BN-Jester layout."""
    d_train, d_val, d_size = _KINDS[kind]
    n_train, n_val, size = n_train or d_train, n_val or d_val, size or d_size
    if kind == "hands":
        from ..data.hands import HAND_LABELS as labels, write_hands
        from ..data.synth import _parse_hw

        path = write_hands(out, n_train, n_val, _parse_hw(size), seed)
    else:
        from ..data.synth import LABELS as labels, write_jester

        path = write_jester(out, n_train, n_val, size, frames, seed)
    click.echo(f"wrote {n_train} train + {n_val} val clips of {len(labels)} classes to {path}")
