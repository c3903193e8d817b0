"""`actionnet-edge profile`: parameters and MACs counted on the real module."""
from __future__ import annotations

import json

import click

from .options import TEMPORAL_HELP, arch_names, choice, temporal_names


@click.command("profile", epilog="Example: actionnet-edge profile --temporal tsm --segments 8 --size 224")
@click.option("--arch", default="mobilenet_v2", show_default=True, callback=choice(arch_names, "arch"),
              help="Backbone: mobilenet_v2, resnet50 or bninception.")
@click.option("--temporal", default="action", show_default=True, callback=choice(temporal_names, "temporal module"),
              help=TEMPORAL_HELP + ".")
@click.option("--num-classes", default=83, show_default=True, type=click.IntRange(min=1))
@click.option("--segments", default=8, show_default=True, type=int, help="Frames per clip (T >= 2).")
@click.option("--size", default=224, show_default=True, type=click.IntRange(min=32), help="Input height and width.")
@click.option("--width-mult", default=1.0, show_default=True, type=float, help="MobileNetV2 width multiplier.")
@click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
              help="Local ImageNet state dict for the backbone (checks that it loads).")
@click.option("--compare", "do_compare", is_flag=True, help="TSN/TSM/STE/CE/ME/ACTION side by side (paper Tables 3 and 5).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(arch, temporal, num_classes, segments, size, width_mult, pretrained, do_compare, as_json):
    """Count parameters and multiply-accumulates of one clip."""
    from ..bench.macs import compare, human, profile_model
    from ..models import create_model

    if do_compare:
        rows = compare(arch, num_classes, segments, size, width_mult)
        if as_json:
            click.echo(json.dumps({"arch": arch, "num_classes": num_classes, "segments": segments, "size": size,
                                   "width_mult": width_mult, "rows": rows}, indent=2))
            return
        click.echo(f"{arch}, {segments} frames, {size} px, {num_classes} classes (delta over TSM)")
        click.echo(f"{'Method':<8} {'MACs':>9} {'dMACs':>18} {'Params':>9} {'dParams':>10}")
        for r in rows:
            d = "-" if r["temporal"] in ("none", "shift") else f"+{human(r['delta_macs'])} (+{r['delta_macs_pct']:.2f}%)"
            dp = "-" if r["temporal"] in ("none", "shift") else f"+{human(r['delta_params'])}"
            click.echo(f"{r['method']:<8} {human(r['macs']):>9} {d:>18} {human(r['params']):>9} {dp:>10}")
        return
    p = profile_model(create_model(arch, temporal, segments, num_classes, width_mult, pretrained), size)
    if as_json:
        click.echo(json.dumps(p.to_dict(), indent=2))
        return
    click.echo(f"{arch} + {temporal}: {segments} frames x {size} px, {num_classes} classes, width {width_mult}")
    click.echo(f"{'module':<28} {'params':>10} {'MACs':>10} {'temporal MACs':>14}")
    for row in p.breakdown:
        click.echo(f"{row['module']:<28} {row['params']:>10,} {human(row['macs']):>10} {human(row['temporal_macs']):>14}")
    click.echo(f"{'total':<28} {p.params:>10,} {human(p.macs):>10} {human(p.temporal_macs):>14}")
    click.echo(f"params {p.params:,} ({human(p.params)}), MACs {p.macs:,} ({human(p.macs)}) per clip; "
               f"temporal modules: {p.temporal_params:,} params, {human(p.temporal_macs)} MACs")
