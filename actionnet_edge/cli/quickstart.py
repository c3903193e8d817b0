"""`actionnet-edge quickstart`: the bundled model, profiled and exported to every installed target."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..constants import EXPORT_TARGETS
from ..errors import ActionNetError
from ..logs import LOG_NAME, capture, console_level
from ..progress import progress
from .options import min_sqnr_option, min_top1_int8_option, parity_thresholds

log = logging.getLogger(__name__)


def run_quickstart(out: Path, checkpoint: str | None = None, parity_clips: int = 32, force: bool = False,
                   thresholds=None) -> dict:
    """Profile the model, then export + verify it for each installed target (fp32; int8 where
    the target has an int8 path). Returns the summary written to ``out/summary.json``; the
    converters' own output goes to ``out/actionnet-edge.log``; ``thresholds`` (parity.Thresholds)
    default to export's."""
    from ..bench.macs import profile_model
    from ..checkpoint import load_checkpoint

    out = Path(out)
    if out.exists() and not force:
        raise ActionNetError(f"output {out} already exists; pass --force to replace its exports")
    ckpt = load_checkpoint(checkpoint)  # None: the bundled model (clear error if missing)
    prof = profile_model(ckpt.model, int(ckpt.preprocess["size"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG_NAME).unlink(missing_ok=True)
    with capture(out / LOG_NAME):
        rows = _export_all(out, checkpoint, parity_clips, force, thresholds)
    summary = {"checkpoint": str(ckpt.path), "profile": {k: v for k, v in prof.to_dict().items() if k != "breakdown"},
               "exports": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _jobs() -> tuple[list[tuple[str, str]], list[dict]]:
    """(target, precision) pairs to export, and the rows of the targets not installed."""
    from ..export import EXPORTERS

    jobs, skipped = [], []
    for name, exporter in EXPORTERS.items():
        try:
            exporter.check_available()
        except ActionNetError as e:
            skipped.append({"target": name, "precision": "-", "status": "skipped", "detail": str(e)})
            continue
        int8 = name in ("executorch", "tflite", "onnx") and "int8" in exporter.precisions
        jobs += [(name, p) for p in ["fp32"] + (["int8"] if int8 else [])]
    return jobs, skipped


def _export_all(out: Path, checkpoint: str | None, parity_clips: int, force: bool, thresholds) -> list[dict]:
    """One row per export (a progress bar over them); a failed one is logged and the rest go on."""
    jobs, rows = _jobs()
    with progress(len(jobs), "exports", unit="export") as bar:
        for name, precision in jobs:
            bar.set_postfix_str(f"{name} {precision}")
            rows.append(_export_one(out, checkpoint, name, precision, parity_clips, force, thresholds))
            bar.update(1)
    order = {name: i for i, name in enumerate(EXPORT_TARGETS)}
    return sorted(rows, key=lambda r: order.get(r["target"], len(order)))


def _export_one(out: Path, checkpoint, name: str, precision: str, parity_clips: int, force: bool, thresholds) -> dict:
    from ..export.api import export_model

    row = {"target": name, "precision": precision}
    try:
        with console_level(logging.WARNING):  # the export's INFO lines go to the log; one line here
            res = export_model(checkpoint, name, out / f"{name}-{precision}", precision=precision,
                               parity_clips=parity_clips, force=force, thresholds=thresholds)
    except ActionNetError as e:
        log.warning("%s %s failed: %s (details in %s)", name, precision, e, out / LOG_NAME)
        row.update(status="failed", detail=str(e))
        return row
    p = res.parity
    row.update(status="ok" if p.get("verified") else "not verified", artifact=str(res.artifact),
               size_mb=round(res.report["size_bytes"] / 1e6, 3), export_s=res.report["export_seconds"])
    if p.get("verified"):
        vf = p["vs_float"]
        row.update(cosine=vf["cosine"], sqnr_db=vf["sqnr_db"], top1_agreement=vf["top1_agreement"],
                   max_abs_err=vf["max_abs_err"], ms_per_clip=round(1000 * p["runtime_seconds_per_clip"], 1))
    else:
        row["detail"] = p.get("skipped")
    log.info("%s %s: %s, %s", name, precision, row["status"], res.artifact)
    return row


@click.command("quickstart", epilog="Example: actionnet-edge quickstart --out out/quickstart --force")
@click.option("--out", "out", type=click.Path(), default="quickstart", show_default=True, help="Folder for exports + summary.json.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="[default: the bundled model]")
@click.option("--parity-clips", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--force", is_flag=True, help="Replace earlier exports in --out.")
@min_sqnr_option
@min_top1_int8_option
@click.option("--json", "as_json", is_flag=True, help="Print summary.json.")
def command(out, checkpoint, parity_clips, force, min_sqnr, min_top1_int8, as_json):
    """Profile the bundled model and export it to every installed target, each verified for parity."""
    th = parity_thresholds(min_sqnr_db=min_sqnr, min_top1_int8=min_top1_int8)
    s = run_quickstart(Path(out), checkpoint, parity_clips, force, th)
    if as_json:
        click.echo(json.dumps(s, indent=2))
    else:
        p = s["profile"]
        click.echo(f"{p['arch']} + {p['temporal']}: {p['num_segments']} x {p['size']} px, "
                   f"{p['params'] / 1e6:.2f} M params, {p['macs'] / 1e9:.2f} GMACs per clip")
        click.echo(f"{'target':<11} {'prec':<5} {'status':<13} {'MB':>6} {'cosine':>9} {'SQNR dB':>8} {'top-1':>6} {'ms/clip':>8}")
        for r in s["exports"]:
            fmt = lambda k, f: format(r[k], f) if k in r else "-"  # noqa: E731
            click.echo(f"{r['target']:<11} {r['precision']:<5} {r['status']:<13} {fmt('size_mb', '.2f'):>6} "
                       f"{fmt('cosine', '.6f'):>9} {fmt('sqnr_db', '.1f'):>8} {fmt('top1_agreement', '.0%'):>6} "
                       f"{fmt('ms_per_clip', '.1f'):>8}")
            if r["status"] not in ("ok",):
                click.echo(f"    {r.get('detail', '')}")
        click.echo(f"summary: {Path(out) / 'summary.json'}")
    if any(r["status"] == "failed" for r in s["exports"]):
        raise SystemExit(1)
