"""`actionnet-edge verify`: an export's test vectors on the host, on emulated ARM64 CPUs or on a phone."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import ActionNetError
from .bench import _csv

from ..arm64 import CPUS


@click.command("verify")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--on", "where", default="host", show_default=True, metavar="host|arm64|adb:SERIAL",
              help="Where to run: this machine's runtimes, their ARM64 builds under QEMU, or a phone over adb.")
@click.option("--cpu", "cpus", default=",".join(CPUS), show_default=True, callback=_csv("emulated CPU", list(CPUS)),
              help="Emulated CPUs for --on arm64 (comma-separated).")
@click.option("--runner", type=click.Path(path_type=Path), default=None,
              help="--on adb: the ExecuTorch runner built for Android (from actionnet_edge/arm64/runner.cpp).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
@click.option("--dry-run", is_flag=True, help="--on adb: print the adb commands only.")
def command(folders: tuple[Path, ...], where: str, cpus: list[str], runner: Path | None, as_json: bool,
            dry_run: bool) -> int:
    """Run the test vectors of export FOLDERS and compare with their references.

    One row per artifact, runtime and CPU: max abs error, cosine, SQNR and top-1 agreement against
    the PyTorch model and against the exporting machine's runtime, and whether the tolerances
    recorded at export were met. Exits 1 when any check fails.
    """
    from ..verify.check import table
    from ..verify.run import open_folder, verify_arm64, verify_host

    arts = [open_folder(f) for f in folders]
    if where == "host":
        rows = verify_host(arts)
    elif where == "arm64":
        rows = verify_arm64(arts, cpus)
    elif where.startswith("adb:"):
        from ..verify.device import verify_device

        rows = verify_device(arts, where, runner, dry_run=dry_run, echo=click.echo)
        if dry_run:
            return 0
    else:
        raise ActionNetError(f"unknown --on '{where}'; use host, arm64 or adb:SERIAL")
    click.echo(json.dumps(rows, indent=2, default=float) if as_json else table(rows))
    failed = [r for r in rows if r["passed"] is False]
    if all(r["passed"] is None for r in rows):
        click.echo("nothing was verified (every runtime was unavailable)", err=True)
        return 1
    if failed:
        click.echo(f"{len(failed)} of {len(rows)} check rows FAILED", err=True)
        return 1
    return 0
