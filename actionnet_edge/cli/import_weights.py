"""`actionnet-edge import`: a published ACTION-Net / TSM checkpoint -> this project's checkpoint."""
from __future__ import annotations

import json

import click

from .options import TEMPORAL_HELP, arch_names, choice, temporal_names


@click.command("import")
@click.argument("src", metavar="SRC")
@click.option("--output", "-o", required=True, metavar="CKPT", help="Checkpoint to write.")
@click.option("--labels", default=None, metavar="FILE",
              help="Class names: a Jester/EgoGesture/TSM list (one a line), SSv2's labels.json, or a JSON list.")
@click.option("--arch", default=None, callback=choice(arch_names, "arch"),
              help="Expected backbone (checked against what the file holds).")
@click.option("--temporal", default=None, callback=choice(temporal_names, "temporal module"),
              help=f"Expected temporal module: {TEMPORAL_HELP} (checked against what the file holds).")
@click.option("--segments", default=None, type=click.IntRange(min=2),
              help="Frames per clip of the source's recipe [default: from the file name, else 8].")
@click.option("--json", "as_json", is_flag=True, help="Print what was found as one JSON object.")
def command(src, output, labels, arch, temporal, segments, as_json):
    """Recognise SRC (V-Sense/ACTION-Net, TSM offline or online) and write it as CKPT, exactly or not at all."""
    from ..weights import import_weights

    found = import_weights(src, output, labels=labels, arch=arch, temporal=temporal, segments=segments)
    if as_json:
        click.echo(json.dumps(found))
    else:
        m = found["model"]
        click.echo(f"found: {found['found']}")
        click.echo(f"wrote {output}: {m['arch']}/{m['temporal']}, T={m['num_segments']}, {m['num_classes']} classes")
