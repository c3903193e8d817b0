"""Test vectors on an Android phone over adb: push the artifact, the vectors and the runner, run, pull.

The runner on the phone speaks the protocol of ``actionnet_edge/arm64/runner.cpp``: the ExecuTorch
runner built for Android (the same source, compiled with the Android NDK against ExecuTorch's
Android libraries); it reads the inputs from the start of vectors.bin, where ``input`` lies.
ONNX and TFLite artifacts are checked on the phone by the apps' self-test instead. Device names
and the remote folder are those of ``bench --device`` (:mod:`actionnet_edge.bench.adb`).
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..bench.adb import REMOTE_DIR, parse_device
from ..errors import ActionNetError
from .run import Artifact, result_row, split_outputs

log = logging.getLogger(__name__)

RUNNER_NAME = "actionnet_edge_runner"
ADB_TIMEOUT_S = 1800


def device_commands(serial: str, a: Artifact, runner: Path, local_out: Path) -> list[list[str]]:
    """The adb commands that check ``a``'s vectors on the phone ``serial``."""
    if a.target != "executorch":
        raise ActionNetError(f"{a.path.name}: only ExecuTorch artifacts are verified over adb (the runner); "
                             f"{a.target} artifacts are checked by the apps' self-test")
    if next(t["offset"] for t in a.vectors.meta["tensors"] if t["name"] == "input") != 0:
        raise ActionNetError(f"{a.folder}: vectors.bin does not start with the inputs (the runner reads them there)")
    adb = ["adb", "-s", serial]
    remote = f"{REMOTE_DIR}/{a.folder.name}"
    exe, model = f"{REMOTE_DIR}/{RUNNER_NAME}", f"{remote}/{a.path.name}"
    vec, out = f"{remote}/{a.vectors.meta['data']}", f"{remote}/outputs.bin"
    run = [exe, model, vec, out, str(a.vectors.meta["count"]), *(["stream"] if a.vectors.stream else [])]
    return [
        [*adb, "shell", "mkdir", "-p", remote],
        [*adb, "push", str(a.path), model],
        [*adb, "push", str(a.folder / a.vectors.meta["data"]), vec],
        [*adb, "push", str(runner), exe],
        [*adb, "shell", "chmod", "755", exe],
        [*adb, "shell", shlex.join(run)],
        [*adb, "pull", out, str(local_out)],
    ]


def verify_device(arts: list[Artifact], device: str, runner: Path | None, *, dry_run: bool = False,
                  echo=log.info) -> list[dict[str, Any]]:
    """Rows per artifact run on the phone; with ``dry_run`` only print the commands (no rows)."""
    serial = parse_device(device)
    if runner is None:
        if not dry_run:
            raise ActionNetError("--on adb:SERIAL needs --runner PATH: the ExecuTorch runner built for Android "
                                 "from actionnet_edge/arm64/runner.cpp (see docs/verify.md)")
        runner = Path(RUNNER_NAME)
    elif not runner.is_file():
        raise ActionNetError(f"runner '{runner}' does not exist")
    rows = []
    with tempfile.TemporaryDirectory(prefix="actionnet-verify-adb-") as tmp:
        for a in arts:
            out = Path(f"{a.folder.name}.outputs.bin") if dry_run else Path(tmp) / f"{a.folder.name}.out.bin"
            cmds = device_commands(serial, a, runner, out)
            if dry_run:
                for c in cmds:
                    echo(shlex.join(c))
                continue
            for c in cmds:
                _adb(c)
            rows.append(result_row(a, f"adb:{serial}", split_outputs(a, np.fromfile(out, "<f4")), None))
    return rows


def _adb(cmd: list[str]) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=ADB_TIMEOUT_S)
    except FileNotFoundError:
        raise ActionNetError("adb is not on PATH (install Android platform-tools)") from None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit code {p.returncode}"]
        raise ActionNetError(f"'{shlex.join(cmd)}' failed: {tail[0]}")
