"""`actionnet-edge cam`: class activation maps over the T frames of a video (paper Fig. 1)."""
from __future__ import annotations

import json

import click


@click.command("cam")
@click.argument("video", type=click.Path())
@click.option("--checkpoint", "-c", "checkpoints", multiple=True, type=click.Path(dir_okay=False),
              help="Checkpoint (default: the bundled model). Repeat to compare models, one row each (e.g. TSN, TSM, ACTION).")
@click.option("--out", "-o", default="cam.png", show_default=True, type=click.Path(dir_okay=False), help="PNG grid to write (checked writable before the work).")
@click.option("--label", default=None, help="Class to explain, by name (default: each model's prediction).")
@click.option("--size", type=int, default=None,
              help="Input side in px [default: the checkpoint's]; larger gives finer maps (about size/32 cells a side).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def command(video, checkpoints, out, label, size, as_json):
    """CAMs of one or more checkpoints on VIDEO (a video file or a folder of frames):
    the frames on the first row, one CAM row per model (paper Fig. 1)."""
    from ..cam import cam_video

    summary = cam_video(video, list(checkpoints) or [None], out, label, size)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for r in summary["rows"]:
        click.echo(f"{r['method']:<28} CAM for {r['target']!r} (p={r['target_prob']:.3f}); top-1 {r['top1']!r} (p={r['top1_prob']:.3f})")
    click.echo(f"wrote {summary['out']}")
