"""`actionnet-edge evaluate`: top-1/top-5, per-class accuracy and a confusion matrix."""
from __future__ import annotations

import json
import logging

import click

from .options import choice, dataset_names

log = logging.getLogger(__name__)


@click.command("evaluate", epilog="Example: actionnet-edge evaluate --checkpoint runs/synthetic/best.pt --dataset synthetic")
@click.option("--checkpoint", "checkpoint", default=None, metavar="CKPT",
              help="Checkpoint to evaluate [default: the bundled model].")
@click.option("--dataset", default="synthetic", show_default=True, callback=choice(dataset_names, "dataset"),
              help="jester, egogesture, ssv2, csv or synthetic.")
@click.option("--data-root", default=None, metavar="DIR",
              help="Dataset folder in its official layout [default for synthetic: generated in memory].")
@click.option("--split", default="val", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--clips", default=1, show_default=True, type=click.IntRange(min=1),
              help="Clips per video (10 in the paper's test protocol).")
@click.option("--crops", default=1, show_default=True, type=click.Choice(["1", "3"]), help="Crops per clip.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Data loader processes (0: decode in the main process, several times slower on small CPUs).")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Only the first N samples.")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Write metrics.json, confusion.json and confusion.png here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (top1/top5 as fractions).")
def command(checkpoint, dataset, data_root, split, clips, crops, batch_size, workers, limit, out_dir, as_json):
    """Evaluate a checkpoint on a dataset split (1-clip centre crop, or 10 clips x 3 crops)."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..data import build_dataset
    from ..errors import ActionNetError
    from ..train.evaluate import evaluate, format_report, write_report

    if out_dir:
        from ..fsutil import check_writable

        check_writable(out_dir, "--out folder")  # before the evaluation, whose results would be lost
    ckpt = load_checkpoint(checkpoint)
    cfg, pre = ckpt.model.config, ckpt.preprocess
    ds = build_dataset(dataset, data_root, split, segments=int(cfg["num_segments"]), size=int(pre["size"]),
                       train=False, mean=pre["mean"], std=pre["std"], clips=clips, crops=int(crops))
    class_map = None
    if list(ds.labels) != ckpt.labels:
        missing = [n for n in ds.labels if n not in ckpt.labels]
        if missing and len(ds.labels) != len(ckpt.labels):
            raise ActionNetError(f"the dataset's classes do not match the checkpoint's ({len(ds.labels)} vs "
                                 f"{len(ckpt.labels)}; e.g. '{missing[0]}' is unknown to the model)")
        if missing:
            log.warning("dataset class names differ from the checkpoint's; matching them by index")
        else:
            class_map = [ckpt.labels.index(n) for n in ds.labels]
    if limit is not None and limit < len(ds):
        ds = torch.utils.data.Subset(ds, range(limit))
        ds.labels = ds.dataset.labels
    result = evaluate(ckpt.model, ds, labels=ckpt.labels, class_map=class_map, batch_size=batch_size,
                      num_workers=workers)
    result.update({"checkpoint": str(ckpt.path), "checkpoint_sha256": ckpt.sha256, "dataset": dataset,
                   "data_root": data_root, "split": split, "clips": clips, "crops": int(crops)})
    if out_dir:
        paths = write_report(result, out_dir)
        log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{ckpt.path.name} on {dataset} {split} ({clips} clip(s) x {crops} crop(s))")
        click.echo(format_report(result))
