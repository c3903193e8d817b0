"""``verify``: run export folders' test vectors on the host, under ARM64 emulation or on a phone.

Every place runs the artifact's own runtime (the host's Python bindings; under QEMU the aarch64
wheels of ONNX Runtime and LiteRT in the emulated Python, and our ExecuTorch runner; on a phone
the runner over adb) and :func:`.check.judge` compares its outputs with the vectors' references.
The emulated Python runs every ONNX / TFLite artifact of one CPU in one process (starting it is
the slow part under emulation).
"""
from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActionNetError
from ..export.vectors import Vectors, read_vectors
from .check import judge

log = logging.getLogger(__name__)

RUNTIMES = {"executorch": "executorch", "tflite": "litert", "onnx": "onnxruntime", "coreml": "coreml"}
EMULATED = ("executorch", "tflite", "onnx")  # targets with an aarch64 runtime under emulation
GUEST = Path(__file__).with_name("guest.py")
EMULATION_TIMEOUT_S = 3600


@dataclass
class Artifact:
    """One export folder: its metadata.json, artifact path and test vectors."""

    folder: Path
    meta: dict[str, Any]
    path: Path
    vectors: Vectors

    @property
    def target(self) -> str:
        return self.meta["target"]

    @property
    def output_sizes(self) -> list[int]:
        """Floats per output of one step, in the artifact's output order."""
        outs = self.meta["streaming"]["outputs"] if self.vectors.stream else [self.meta["output"]]
        return [int(np.prod(o["shape"])) for o in outs]


def open_folder(folder: str | Path) -> Artifact:
    """An export folder ready to verify; a one-line error when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ActionNetError(f"export folder not found: {folder}")
    if not (folder / "metadata.json").is_file():
        raise ActionNetError(f"{folder} is not an export folder (no metadata.json); make one with 'actionnet-edge export'")
    try:
        meta = json.loads((folder / "metadata.json").read_text())
        path = folder / meta["artifact"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ActionNetError(f"{folder} is not an export folder (metadata.json: {e})") from None
    if not path.exists():
        raise ActionNetError(f"{folder}: the artifact {meta['artifact']} named in metadata.json is missing")
    return Artifact(folder, meta, path, read_vectors(folder))


def split_outputs(a: Artifact, raw: np.ndarray) -> dict[str, np.ndarray]:
    """A runner's output file (every output of every step) -> logits (and frame_logits), (n, K)."""
    sizes, n = a.output_sizes, a.vectors.meta["count"]
    if raw.size != n * sum(sizes):
        raise ActionNetError(f"{a.path.name}: the runtime wrote {raw.size} floats, expected {n * sum(sizes)}")
    steps = raw.reshape(n, sum(sizes))
    out = {"logits": steps[:, :sizes[0]]}
    if a.vectors.stream:
        out["frame_logits"] = steps[:, sizes[0]:sizes[0] + sizes[1]]
    return out


# --------------------------------------------------------------------------------------- host


def run_host(a: Artifact) -> dict[str, np.ndarray]:
    """The vectors through the artifact's runtime on this machine (its Python bindings)."""
    from ..export import get_exporter
    from ..export.streaming import StreamRunner

    exporter, x = get_exporter(a.target), a.vectors.tensors["input"]
    if a.vectors.stream:
        run = StreamRunner.load(exporter, a.path, a.meta["streaming"])
        state, logits, frame_logits = run.init_state(), [], []
        for frame in x:
            lg, fl, state = run.step(frame, state)
            logits.append(np.asarray(lg).ravel())
            frame_logits.append(np.asarray(fl).ravel())
        return {"logits": np.stack(logits), "frame_logits": np.stack(frame_logits)}
    clips = x[:, 0]
    if a.meta["layout"] == "NHWC":  # stored as the artifact takes them; the runner takes NCHW
        clips = np.ascontiguousarray(clips.transpose(0, 1, 4, 2, 3))
    return {"logits": exporter.load(a.path, layout=a.meta["layout"])(clips)}


# --------------------------------------------------------------------------------------- emulated


def _inputs_file(a: Artifact, folder: Path) -> Path:
    """The vectors' inputs as the runners read them (raw float32, one step after the other)."""
    path = folder / f"{a.folder.name}.in.bin"
    np.ascontiguousarray(a.vectors.tensors["input"], "<f4").tofile(path)
    return path


def _guest_job(a: Artifact, inputs: Path, outputs: Path) -> dict[str, Any]:
    section = a.meta.get("streaming") if a.vectors.stream else None
    return {"target": a.target, "model": str(a.path.resolve()), "inputs": str(inputs), "outputs": str(outputs),
            "steps": int(a.vectors.meta["count"]), "stream": section is not None,
            "input_shapes": ([i["shape"] for i in section["inputs"]] if section
                             else [list(a.vectors.tensors["input"].shape[1:])]),
            "input_names": [i["name"] for i in section["inputs"]] if section else None,
            "output_names": [o["name"] for o in section["outputs"]] if section else None}


def _emulate(cmd: list[str], env: dict[str, str] | None, what: str) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=EMULATION_TIMEOUT_S)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit code {p.returncode}"]
        raise ActionNetError(f"{what} failed under emulation: {tail[0]}")
    return time.perf_counter() - t0


def run_emulated(arts: list[Artifact], env, cpu: str) -> dict[int, tuple[dict[str, np.ndarray], float]]:
    """Outputs (and seconds) per index into ``arts`` under ``qemu-aarch64 -cpu cpu`` (``env``: an Arm64Env)."""
    results: dict[int, tuple[dict[str, np.ndarray], float]] = {}
    with tempfile.TemporaryDirectory(prefix="actionnet-verify-") as tmp:
        tmp_p, jobs = Path(tmp), []
        for i, a in enumerate(arts):
            inputs, outputs = _inputs_file(a, tmp_p), tmp_p / f"{i}.out.bin"
            if a.target == "executorch":
                argv = [env.runner, a.path.resolve(), inputs, outputs, a.vectors.meta["count"]]
                secs = _emulate(env.command(cpu, argv + (["stream"] if a.vectors.stream else [])), None,
                                f"the ExecuTorch runner on {a.path.name} ({cpu})")
                results[i] = (split_outputs(a, np.fromfile(outputs, "<f4")), secs)
            else:
                jobs.append((i, _guest_job(a, inputs, outputs)))
        if jobs:
            (tmp_p / "jobs.json").write_text(json.dumps([j for _, j in jobs]))
            secs = _emulate(env.command(cpu, [env.python, GUEST, tmp_p / "jobs.json"]), env.environment(),
                            f"the emulated Python ({', '.join(arts[i].path.name for i, _ in jobs)}, {cpu})")
            for i, job in jobs:
                results[i] = (split_outputs(arts[i], np.fromfile(job["outputs"], "<f4")), secs / len(jobs))
    return results


# --------------------------------------------------------------------------------------- rows


def result_row(a: Artifact, cpu: str, out: dict[str, np.ndarray] | None, secs: float | None,
               skipped: str | None = None) -> dict[str, Any]:
    """A table row: the artifact, where it ran, and :func:`.check.judge`'s figures (or why it was skipped)."""
    base = {"artifact": a.path.name, "folder": str(a.folder), "target": a.target, "precision": a.meta["precision"],
            "kind": a.vectors.meta["kind"], "runtime": RUNTIMES.get(a.target, a.target), "cpu": cpu}
    if skipped is not None:
        return {**base, "skipped": skipped, "passed": None}
    return {**base, **judge(a.vectors, out), "seconds": None if secs is None else round(secs, 2)}


def verify_host(arts: list[Artifact]) -> list[dict[str, Any]]:
    """One row per artifact, run on this machine."""
    import platform

    from ..export import RuntimeUnavailable

    rows = []
    for a in arts:
        t0 = time.perf_counter()
        try:
            out = run_host(a)
        except RuntimeUnavailable as e:
            rows.append(result_row(a, f"host ({platform.machine()})", None, None, str(e)))
            continue
        rows.append(result_row(a, f"host ({platform.machine()})", out, time.perf_counter() - t0))
    return rows


def verify_arm64(arts: list[Artifact], cpus: list[str], cache: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows per CPU and artifact under QEMU (the emulated runtimes set up first when missing)."""
    from .. import arm64

    env = arm64.ensure(cache)
    runnable = [a for a in arts if a.target in EMULATED]
    rows = []
    for cpu in cpus:
        log.info("verifying %d artifact(s) on emulated %s", len(runnable), cpu)
        results = run_emulated(runnable, env, cpu)
        for i, a in enumerate(runnable):
            rows.append(result_row(a, cpu, *results[i]))
        rows += [result_row(a, cpu, None, None, f"no aarch64 {a.target} runtime")
                 for a in arts if a.target not in EMULATED]
    return rows
