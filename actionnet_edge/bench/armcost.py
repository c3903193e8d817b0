"""Guest instructions per inference on emulated ARM64 CPUs (QEMU user mode + our TCG plugin).

The guest marks each measured inference with ``prctl(MARK, 1)`` before and ``prctl(MARK, 0)``
after (an option Linux rejects with EINVAL, so it costs one syscall and changes nothing); the
plugin (``assets/armcost_plugin.c``) counts the instructions executed between the two, summed
over the guest's threads. Start-up, model loading and a first warm-up inference are outside the
regions. LiteRT runs in the guest's Python (one interpreter thread, the default XNNPACK
delegate); ExecuTorch runs in a cross-compiled runner that marks around ``Method::execute``.

The counts are instructions, not time: they say nothing of caches, pipelines or clock speed,
but they do not move with the host's load, so ratios between variants are steady.
"""
from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ActionNetError
from .options import TEMPORAL_TO_VARIANT
from ..arm64.cache import CPUS
from ..arm64.plugins import PluginQemu

log = logging.getLogger(__name__)

MARK = 0x41524D43  # "ARMC"; the plugin's ARMCOST_MARK
RUNNER_THREADS_ENV = "ACTIONNET_RUNNER_THREADS"  # the ExecuTorch runner's threadpool size
GUEST_TIMEOUT = 1800.0  # seconds for one emulated process

# Runs inside the emulated Python: LiteRT with one thread, fixed inputs, one unmarked warm-up.
_LITERT_GUEST = r"""
import ctypes, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, runs, mark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
libc = ctypes.CDLL(None)
it = Interpreter(model_path=path, num_threads=1)
it.allocate_tensors()
rng = np.random.default_rng(0)
for d in it.get_input_details():
    dt = np.dtype(d["dtype"])
    if dt.kind == "f":
        x = rng.standard_normal(d["shape"]).astype(dt)
    else:
        info = np.iinfo(dt)
        x = rng.integers(max(info.min, -128), min(info.max, 127), d["shape"]).astype(dt)
    it.set_tensor(d["index"], x)
it.invoke()
for _ in range(runs):
    libc.prctl(mark, 1, 0, 0, 0)
    it.invoke()
    libc.prctl(mark, 0, 0, 0, 0)
"""


@dataclass(frozen=True)
class GuestEnv:
    """The aarch64 side: a sysroot for ``qemu -L``, its Python, the folder of aarch64 wheels,
    and the ExecuTorch runner (None: no ``.pte`` counts)."""

    sysroot: Path
    python: Path
    site: Path
    runner: Path | None = None


def parse_regions(text: str, what: str) -> list[int]:
    """The plugin's output: instructions per marked region, or a one-line error."""
    regions, errors = [], []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "region":
            regions.append(int(rest.split()[1]))
        elif kind == "error":
            errors.append(rest)
    if errors:
        raise ActionNetError(f"{what}: {errors[0]}")
    if not regions:
        raise ActionNetError(f"{what}: no marked region (the guest issued no prctl({MARK:#x}, 1/0) markers "
                             "around its inference)")
    return regions


def count_regions(pq: PluginQemu, cpu: str, sysroot: Path, argv: list[str], env: dict[str, str] | None = None,
                  what: str = "guest", timeout: float = GUEST_TIMEOUT) -> list[int]:
    """Run ``argv`` (an aarch64 program) on emulated ``cpu``; instructions per marked region."""
    if cpu not in CPUS:
        from ..errors import unknown_name

        raise unknown_name("emulated CPU", cpu, list(CPUS))
    with tempfile.TemporaryDirectory(prefix="armcost-") as tmp:
        out = Path(tmp) / "regions.txt"
        cmd = [str(pq.qemu), "-cpu", cpu, "-L", str(sysroot), "-plugin", f"{pq.plugin},out={out}", *map(str, argv)]
        try:
            res = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ActionNetError(f"{what} on {cpu}: no result in {timeout:.0f} s under emulation") from None
        if res.returncode != 0:
            tail = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip()][-1:] or ["no output"]
            raise ActionNetError(f"{what} on {cpu} failed (exit {res.returncode}): {tail[0][:300]}")
        if not out.is_file():
            raise ActionNetError(f"{what} on {cpu}: the counting plugin wrote nothing")
        return parse_regions(out.read_text(), f"{what} on {cpu}")


def guest_environment(guest: GuestEnv) -> dict[str, str]:
    """The guest's environment: its wheels on the path, nothing of the host's venv, one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LD_"))}
    return {**env, "PYTHONPATH": str(guest.site), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            RUNNER_THREADS_ENV: "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0"}


def litert_regions(pq: PluginQemu, guest: GuestEnv, cpu: str, artifact: Path, runs: int) -> list[int]:
    """Instructions of each of ``runs`` marked ``invoke()`` calls of a ``.tflite`` in the guest's LiteRT."""
    with tempfile.TemporaryDirectory(prefix="armcost-") as tmp:
        script = Path(tmp) / "litert_guest.py"
        script.write_text(_LITERT_GUEST)
        return count_regions(pq, cpu, guest.sysroot, [guest.python, script, Path(artifact).resolve(), runs, MARK],
                             guest_environment(guest), what=f"{Path(artifact).name} (LiteRT)")


def executorch_regions(pq: PluginQemu, guest: GuestEnv, cpu: str, artifact: Path, runs: int) -> list[int]:
    """Instructions of each ``execute()`` of a ``.pte`` in the runner (the first is the warm-up)."""
    if guest.runner is None:
        raise ActionNetError(f"{Path(artifact).name}: no aarch64 ExecuTorch runner to count .pte files with")
    sizes = _pte_input_floats(Path(artifact))
    with tempfile.TemporaryDirectory(prefix="armcost-") as tmp:
        import numpy as np

        rng = np.random.default_rng(0)
        one = np.concatenate([rng.standard_normal(n).astype("<f4") for n in sizes])
        inputs = Path(tmp) / "inputs.bin"
        inputs.write_bytes(np.tile(one, runs + 1).tobytes())
        return count_regions(pq, cpu, guest.sysroot,
                             [guest.runner, Path(artifact).resolve(), inputs, Path(tmp) / "outputs.bin", runs + 1],
                             guest_environment(guest), what=f"{Path(artifact).name} (ExecuTorch)")[1:]


def _pte_input_floats(path: Path) -> list[int]:
    """Elements of each float32 input of the program's ``forward``: from the metadata.json beside it
    (the clip, or the streaming step's frame and state), else read with the host's ExecuTorch."""
    meta_file = path.parent / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    shapes = [t["shape"] for t in (meta.get("streaming") or {}).get("inputs", [])] or \
        ([meta["input"]["shape"]] if "input" in meta else [])
    if not shapes:
        try:
            from executorch.runtime import Runtime

            prog = Runtime.get().load_program(path).metadata("forward")
            shapes = [prog.input_tensor_meta(i).sizes() for i in range(prog.num_inputs())]
        except Exception as e:
            raise ActionNetError(f"{path.name}: no metadata.json beside it and the host's ExecuTorch cannot read "
                                 f"its inputs ({e})") from None
    return [math.prod(int(d) for d in s) for s in shapes]


def summarize(regions: list[int]) -> dict:
    """Instructions per inference (the median region) and how far the regions spread (ppm)."""
    med = statistics.median(regions)
    spread = (max(regions) - min(regions)) / med * 1e6 if med else 0.0
    return {"instructions": int(round(med)), "regions": list(regions), "spread_ppm": round(spread, 3)}


def count_artifact(pq: PluginQemu, guest: GuestEnv, cpu: str, artifact: Path, runs: int = 3) -> dict:
    """One artifact on one CPU: :func:`summarize` of its marked inferences."""
    suffix = Path(artifact).suffix
    if suffix == ".tflite":
        regions = litert_regions(pq, guest, cpu, artifact, runs)
    elif suffix == ".pte":
        regions = executorch_regions(pq, guest, cpu, artifact, runs)
    else:
        raise ActionNetError(f"{Path(artifact).name}: ARM instruction counts are for .pte and .tflite files")
    log.info("%s on %s: %s instructions per inference", Path(artifact).name, cpu, f"{statistics.median(regions):,.0f}")
    return summarize(regions)


def describe_artifact(path: Path) -> dict:
    """Variant, precision and mode (clip or streaming step) from the metadata.json beside it."""
    meta_file = Path(path).parent / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    config = meta.get("model_config") or meta.get("model") or {}
    variant = TEMPORAL_TO_VARIANT.get(config.get("temporal"), config.get("temporal") or "unknown")
    return {"artifact": str(path), "runtime": "executorch" if Path(path).suffix == ".pte" else "litert",
            "variant": variant, "precision": meta.get("precision", "unknown"),
            "mode": "step" if meta.get("streaming") else "clip", "size_bytes": Path(path).stat().st_size}
