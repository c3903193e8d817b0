"""`actionnet-edge export`: a checkpoint to an edge artifact, verified in its own runtime."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..constants import EXPORT_TARGETS, LAYOUTS, PRECISIONS
from ..logs import LOG_NAME, capture
from .options import choice, min_sqnr_option, min_top1_int8_option, parity_thresholds, target_names



@click.command("export", epilog="Examples: actionnet-edge export --target onnx\n\n"
               "actionnet-edge export --target tflite --precision int8 --checkpoint runs/qat/last.pt")
@click.option("--target", required=True, callback=choice(target_names, "export target"),
              help=f"{', '.join(EXPORT_TARGETS)} (those installed).")
@click.option("--checkpoint", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Float or QAT checkpoint [default: the bundled model].")
@click.option("--precision", default="fp32", show_default=True, callback=choice(lambda: PRECISIONS, "precision"),
              help=f"{', '.join(PRECISIONS)}.")
@click.option("--output", type=click.Path(), default=None,
              help="Folder to create [default: exports/<checkpoint>-<target>-<precision>].")
@click.option("--segments", type=click.IntRange(min=2), default=None,
              help="Frames per clip T; with --streaming the window of frames the logits average over "
                   "[default: checkpoint's T].")
@click.option("--size", type=click.IntRange(min=32), default=None, help="Input side S [default: checkpoint's].")
@click.option("--layout", default="NCHW", show_default=True, callback=choice(lambda: LAYOUTS, "layout"),
              help="Input layout: NCHW (N,T,3,S,S) or NHWC (N,T,S,S,3).")
@click.option("--data-root", type=click.Path(), default=None, help="Dataset folder for parity (val) / calibration (train) clips.")
@click.option("--dataset", default=None, help="Reader of --data-root (jester, egogesture, ssv2, csv, synthetic).")
@click.option("--calib-clips", default=32, show_default=True, type=click.IntRange(min=1),
              help="Clips for post-training calibration (int8 from a float checkpoint).")
@click.option("--parity-clips", default=None, type=click.IntRange(min=1),
              help="Clips run through the artifact for parity [default: 32; with --streaming 8, i.e. 8 x T frames "
                   "as one stream].")
@click.option("--streaming", is_flag=True,
              help="Export the frame-by-frame step of a causal checkpoint (fp32; int8 for executorch, tflite and onnx; "
                   "fp16 for tflite): frame + state tensors in, "
                   "logits + frame_logits + new state out; names and shapes in metadata.json 'streaming'.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check (the report says nothing was checked).")
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@click.option("--min-cosine", default=None, type=float, help="fp32 cosine vs float.")
@click.option("--min-cosine-fp16", default=None, type=float, help="fp16 cosine vs float.")
@click.option("--min-top1", default=None, type=float,
              help="fp32/fp16 top-1 agreement with float (0..1).")
@min_sqnr_option
@min_top1_int8_option
@click.option("--converter", default=None, help="Exporter-specific converter (tflite: litert-torch or onnx2tf).")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
def command(target, checkpoint, precision, output, segments, size, layout, data_root, dataset, calib_clips,
            parity_clips, streaming, no_verify, force, min_cosine, min_cosine_fp16, min_top1, min_sqnr, min_top1_int8,
            converter, as_json):
    """Export a checkpoint to TARGET and check numeric parity in the target's own runtime.

    Thresholds left out take the defaults written in report.json. The converter's and runtime's
    own output goes to OUTPUT/actionnet-edge.log."""
    from ..export.api import default_output, export_model

    th = parity_thresholds(min_cosine=min_cosine, min_cosine_fp16=min_cosine_fp16, min_top1=min_top1,
                           min_sqnr_db=min_sqnr, min_top1_int8=min_top1_int8)
    options = {"converter": converter} if converter else {}
    out = Path(output) if output else default_output(checkpoint, target, precision, streaming)
    log_path = out.parent / f"{out.name}.{LOG_NAME}"
    log_path.unlink(missing_ok=True)
    with capture(log_path):
        res = export_model(checkpoint, target, out, precision=precision, segments=segments, size=size, layout=layout,
                           data_root=data_root, dataset=dataset, calib_clips=calib_clips, parity_clips=parity_clips,
                           verify=not no_verify, force=force, thresholds=th, streaming=streaming, **options)
    if log_path.exists():  # the step succeeded: its log joins the artifact
        log_path.replace(res.output / LOG_NAME)
    if as_json:
        click.echo(json.dumps({"output": str(res.output), **res.report}, indent=2))
        return
    p = res.parity
    click.echo(f"wrote {res.artifact} ({res.report['size_bytes'] / 1e6:.2f} MB) + metadata.json + report.json")
    if p.get("verified"):
        vf = p["vs_float"]
        what = f"{p['clips']} clips" + (f" = {p['frames']} frames in one stream" if "frames" in p else "")
        click.echo(f"parity passed on {what} ({p['source']}) vs {p.get('reference', 'float')}: "
                   f"max abs err {vf['max_abs_err']:.3g}, "
                   f"cosine {vf['cosine']:.6f}, SQNR {vf['sqnr_db']:.1f} dB, top-1 agreement {vf['top1_agreement']:.1%}")
    else:
        click.echo(f"parity NOT checked: {p.get('skipped')}")
    if "streaming" in res.report:
        st = res.report["streaming"]
        click.echo(f"streaming step: frame + {st['state_tensors']} state tensors ({st['state_floats']} floats) in, "
                   f"logits + frame_logits + new state out; window {st['window']} frames")
    conv = res.report["convert"]
    if "non_delegated_compute_ops" in conv:
        nd = conv["non_delegated_compute_ops"]
        click.echo(f"delegated subgraphs: {conv['delegated_subgraphs']}; non-delegated compute ops: {nd or 'none'}")
