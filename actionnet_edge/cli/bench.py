"""`actionnet-edge bench`: latency, memory, size and MACs per runtime, precision and variant."""
from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click

from ..constants import BENCH_VARIANTS, DEFAULT_BENCH_VARIANTS
from ..errors import ActionNetError, unknown_name
from ..logs import LOG_NAME, capture, console

log = logging.getLogger(__name__)


def _csv(kind: str, valid: list[str] | None = None, cast=str):
    """A click callback for comma-separated lists (checked against ``valid`` with suggestions)."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter(f"empty {kind} list", ctx=ctx, param=param)
        if valid is not None:
            for v in items:
                if v not in valid:
                    raise click.BadParameter(str(unknown_name(kind, v, valid)), ctx=ctx, param=param)
        try:
            return [cast(v) for v in items]
        except ValueError:
            raise click.BadParameter(f"'{value}' is not a comma-separated list of {kind}s", ctx=ctx, param=param) from None

    return callback


def _accuracy(ctx, param, value):
    """'tsn=85.1,tsm=88.2,action=89.0' or a JSON file {variant: top-1 %}."""
    if not value:
        return {}
    if Path(value).is_file():
        try:
            data = json.loads(Path(value).read_text())
        except ValueError as e:
            raise click.BadParameter(f"{value} is not JSON ({e})", ctx=ctx, param=param) from None
        return {str(k): float(v) for k, v in data.items()}
    out = {}
    for item in value.split(","):
        k, sep, v = item.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise click.BadParameter(f"'{item}' is not VARIANT=TOP1 (e.g. action=89.3)", ctx=ctx, param=param) from None
        if not sep:
            raise click.BadParameter(f"'{item}' is not VARIANT=TOP1", ctx=ctx, param=param)
    return out


def _runtimes() -> list[str]:
    from ..bench.runtimes import list_runtimes

    return list_runtimes()


@click.command("bench", epilog="Examples: actionnet-edge bench --runtimes pytorch,onnxruntime --precision fp32 --out out/bench\n\n"
               "actionnet-edge bench --artifact exports/model.onnx")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Checkpoint to rebuild TSN/TSM/ACTION from (default: the bundled model, else fresh weights).")
@click.option("--artifact", "artifacts", multiple=True, type=click.Path(path_type=Path),
              help="Measure these files as they are (.pt .pte .tflite .onnx .mlpackage); repeatable.")
@click.option("--runtimes", default=None, callback=_csv("runtime", _runtimes()),
              help="Comma list of pytorch, executorch, litert, onnxruntime, coreml [default: all; with --artifact: "
                   "the artifacts' own].")
@click.option("--precision", "precisions", default=None, callback=_csv("precision", ["fp32", "fp16", "int8"]),
              help="Comma list [default: fp32,int8; with --streaming fp32].")
@click.option("--threads", default="2", show_default=True, callback=_csv("thread count", None, int),
              help="Comma list of thread counts, e.g. 1,2,4.")
@click.option("--variants", default=None, callback=_csv("variant", list(BENCH_VARIANTS)),
              help="Temporal variants on the same backbone: tsn, tsm, action, and ste, ce, me (the learnable shift and one ACTION path each) [default: tsn,tsm,action; with --streaming action].")
@click.option("--streaming", is_flag=True,
              help="Causal models: per-frame latency of the streaming export next to the T-frame clip latency, "
                   "and the goal per-frame < 1/6 of a clip, judged with the step and the clip timed in turns "
                   "in one process (default model: a fresh causal one).")
@click.option("--segments", type=int, help="Frames per clip T [default: the checkpoint's, else 8].")
@click.option("--size", type=int, help="Input size S [default: the checkpoint's, else 224].")
@click.option("--warmup", default=5, show_default=True, type=int, help="Untimed runs before timing.")
@click.option("--runs", default=30, show_default=True, type=int, help="Timed runs (one clip each).")
@click.option("--max-seconds", type=float, help="Stop timing one measurement after this long (>= 3 runs).")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Measure everything this many times, in reversed order every other round, and pool the runs "
                   "(steadier side-by-side figures on a shared machine).")
@click.option("--arch", default="mobilenet_v2", show_default=True, help="Backbone when there is no checkpoint.")
@click.option("--width-mult", default=1.0, show_default=True, type=float, help="Width when there is no checkpoint.")
@click.option("--num-classes", default=27, show_default=True, type=int, help="Classes when there is no checkpoint.")
@click.option("--no-verify", is_flag=True, help="Export without the parity check (not advised).")
@click.option("--parity-clips", default=32, show_default=True, type=int, help="Clips for each export's parity check.")
@click.option("--device", help="adb:SERIAL: run on an Android phone with the runtimes' benchmark binaries.")
@click.option("--dry-run", is_flag=True, help="With --device: print the adb commands instead of running them.")
@click.option("--executorch-runner", type=click.Path(path_type=Path), help="executor_runner binary for --device.")
@click.option("--litert-benchmark", type=click.Path(path_type=Path), help="benchmark_model binary for --device.")
@click.option("--accuracy", callback=_accuracy, help="Top-1 per variant for the accuracy-vs-MACs chart: "
              "'tsn=85.1,tsm=88.2,action=89.0' or a JSON file.")
@click.option("--profile/--no-profile", "profile", default=None,
              help="Per-op profiles (ETDump) of the ExecuTorch artifacts [default: when a goal is missed].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench_out"), show_default=True,
              help="Folder for report.json, report.md and the PNG charts.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for checkpoints and exported artifacts (reused across runs) [default: OUT/work].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--arm-cost", is_flag=True, help="Count ARM64 instructions per inference of the ExecuTorch/LiteRT "
              "artifacts under QEMU (builds QEMU with plugins into the cache once) instead of timing.")
@click.option("--cpu", "cpus", default=None, callback=_csv("emulated CPU", ["cortex-a53", "cortex-a55", "cortex-a76"]),
              help="With --arm-cost: emulated CPUs [default: cortex-a53,cortex-a55,cortex-a76].")
def command(checkpoint, artifacts, runtimes, precisions, threads, variants, segments, size, warmup, runs, max_seconds,
            rounds, arch, width_mult, num_classes, no_verify, parity_clips, device, dry_run, executorch_runner,
            litert_benchmark, accuracy, profile, out, work, as_json, streaming, arm_cost, cpus):
    """Measure latency (median/p90/min), peak memory, file size and MACs per runtime and precision.

    Each measurement runs in its own process. Without --artifact, TSN, TSM and ACTION are
    rebuilt on the same backbone, exported per runtime and precision (parity checked), and
    measured side by side; the report states the goals (met or not) and where time goes.
    With --streaming, each runtime also runs the streaming step one frame at a time.
    """
    from ..bench.options import BenchOptions
    from ..bench.run import run_bench
    from ..bench.runtimes import runtime_for_artifact

    if checkpoint is not None and artifacts:
        raise ActionNetError("use --checkpoint or --artifact, not both")
    if dry_run and not device:
        raise ActionNetError("--dry-run prints the adb commands of --device adb:SERIAL; pass --device")
    precisions = precisions or (["fp32"] if streaming else ["fp32", "int8"])
    variants = variants or (["action"] if streaming else list(DEFAULT_BENCH_VARIANTS))
    explicit = runtimes is not None
    if runtimes is None:
        if artifacts:
            runtimes = []  # the artifacts' own runtimes
        elif device:
            runtimes = ["executorch", "litert"]
        else:
            runtimes = _runtimes()
    binaries = {k: v for k, v in (("executorch", executorch_runner), ("litert", litert_benchmark)) if v}
    if device and artifacts and not runtimes:
        runtimes = sorted({runtime_for_artifact(Path(a)).name for a in artifacts})
    opts = BenchOptions(runtimes=runtimes, precisions=precisions, threads=threads, variants=variants,
                        segments=segments, size=size, warmup=warmup, runs=runs, max_seconds=max_seconds, rounds=rounds,
                        arch=arch, width_mult=width_mult, num_classes=num_classes, verify=not no_verify,
                        parity_clips=parity_clips, device=device, dry_run=dry_run, binaries=binaries,
                        accuracy=accuracy, profile=profile, require_installed=explicit, streaming=streaming)
    if arm_cost:
        return _arm_cost(checkpoint, list(artifacts), opts, cpus, out, work, as_json)
    if arch != "mobilenet_v2" or checkpoint is None:
        from ..models import list_models

        if arch not in list_models():
            raise unknown_name("arch", arch, list_models())
    cmd = "actionnet-edge bench " + shlex.join(sys.argv[2:]) if len(sys.argv) > 1 else None
    if dry_run:
        run_bench(checkpoint, list(artifacts), opts, out=None, work=work, command=cmd, echo=click.echo)
        return
    with capture(out / LOG_NAME):  # the runtimes' and converters' own output
        report = run_bench(checkpoint, list(artifacts), opts, out=out, work=work, command=cmd,
                           echo=lambda line: click.echo(line, file=console()))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    from ..bench.report import markdown

    click.echo(markdown(report), nl=False)
    click.echo(f"\nwrote {out / 'report.json'}, {out / 'report.md'} and charts", err=True)


def _arm_cost(checkpoint, artifacts, opts, cpus, out, work, as_json) -> None:
    """`bench --arm-cost`: the ARM64 runtimes of actionnet_edge.arm64, counted by bench.armcost_report."""
    from ..arm64 import ensure
    from ..bench.armcost import GuestEnv
    from ..bench.armcost_report import check_artifacts, markdown, run_arm_cost

    check_artifacts(artifacts)
    env = ensure()
    guest = GuestEnv(env.sysroot, env.python, env.site, env.runner)
    with capture(Path(out) / LOG_NAME):  # the converters' and emulator's own output
        report = run_arm_cost(checkpoint, artifacts, opts, guest, cpus, out, work, command="actionnet-edge bench "
                              + shlex.join(sys.argv[2:]), echo=lambda m: click.echo(m, file=console()))
    click.echo(json.dumps(report, indent=2) if as_json else markdown(report).rstrip("\n"))
