"""The runtimes a benchmark can measure, and one measurement in its own subprocess."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ActionNetError, unknown_name

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("worker.py")
#: glibc malloc keeping freed memory (no mmap per large block, no trimming): an eager PyTorch
#: forward then reuses its activations' pages instead of faulting them in again
#: (benchmarks/eager_malloc.py). Set in the worker processes' environment unless the user set one.
KEEP_FREED_MEMORY = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647"


@dataclass(frozen=True)
class Runtime:
    """A CPU runtime: which artifact it runs, which export target makes it, which extra installs it."""

    name: str
    suffix: str | None  # artifact suffix; None = the PyTorch checkpoint / model itself
    target: str | None  # export target (actionnet_edge.export.EXPORTERS) producing its artifact
    extra: str | None  # pip extra
    module: str  # importable module that proves the runtime is installed
    dist: str  # distribution whose version is reported
    macos_only: bool = False

    def missing(self) -> str | None:
        """Why this runtime cannot run here (not installed / wrong OS), or None."""
        if self.macos_only and platform.system() != "Darwin":
            return f"{self.name} runs only on macOS (this is {platform.system()})"
        if importlib.util.find_spec(self.module.split(".")[0]) is None:
            return f"{self.name} is not installed; install it with: pip install 'actionnet-edge[{self.extra}]'"
        return None

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return None


RUNTIMES: dict[str, Runtime] = {
    "pytorch": Runtime("pytorch", None, None, None, "torch", "torch"),
    "executorch": Runtime("executorch", ".pte", "executorch", "executorch",
                          "executorch.extension.pybindings.portable_lib", "executorch"),
    "litert": Runtime("litert", ".tflite", "tflite", "tflite", "ai_edge_litert.interpreter", "ai-edge-litert"),
    "onnxruntime": Runtime("onnxruntime", ".onnx", "onnx", "onnx", "onnxruntime", "onnxruntime"),
    "coreml": Runtime("coreml", ".mlpackage", "coreml", "coreml", "coremltools", "coremltools", macos_only=True),
}


def list_runtimes() -> list[str]:
    """Names of the benchmarkable runtimes, in display order."""
    return list(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``; an unknown name lists the valid ones and suggests the closest."""
    if name not in RUNTIMES:
        raise unknown_name("runtime", name, RUNTIMES)
    return RUNTIMES[name]


def runtime_for_artifact(path: Path) -> Runtime:
    """The runtime that runs an artifact, from its suffix (.pt checkpoints -> pytorch)."""
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        return RUNTIMES["pytorch"]
    for rt in RUNTIMES.values():
        if rt.suffix == suffix:
            return rt
    raise ActionNetError(f"artifact '{path}' has an unknown format '{suffix}'; expected one of "
                         f".pt, {', '.join(r.suffix for r in RUNTIMES.values() if r.suffix)}")


def check_artifact(path: Path, runtime: str) -> None:
    """Raise when ``path`` is not an artifact ``runtime`` can run (by suffix and magic bytes)."""
    rt = get_runtime(runtime)
    if not path.exists():
        raise ActionNetError(f"artifact '{path}' does not exist")
    expected = runtime_for_artifact(path) if path.suffix else None
    if expected is None or expected.name != rt.name:
        want = rt.suffix or ".pt"
        raise ActionNetError(f"artifact '{path.name}' does not match runtime '{runtime}' (which runs {want} files)")
    if path.is_file():
        head = path.read_bytes()[:8]
        magic = {".pte": b"ET", ".tflite": b"TFL3"}.get(rt.suffix or "")
        if magic and magic not in head:
            raise ActionNetError(f"artifact '{path.name}' is not a valid {rt.suffix} file (bad header)")


def file_mb(path: Path | None) -> float | None:
    """Size on disk in MiB; directories (.mlpackage) are summed, an ONNX external-data file added."""
    if path is None or not path.exists():
        return None
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    data = path.with_name(path.name + ".data")
    return (path.stat().st_size + (data.stat().st_size if data.is_file() else 0)) / 2**20


def _percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(latencies_ms: list[float]) -> dict:
    """median / p90 / min / mean of per-clip latencies (ms)."""
    return {"latency_ms_median": statistics.median(latencies_ms), "latency_ms_p90": _percentile(latencies_ms, 0.9),
            "latency_ms_min": min(latencies_ms), "latency_ms_mean": statistics.fmean(latencies_ms),
            "runs": len(latencies_ms)}


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a measuring process: one explicit thread budget for every runtime
    (OpenMP/MKL pools must not oversubscribe) and glibc's malloc keeping freed memory."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.setdefault("GLIBC_TUNABLES", KEEP_FREED_MEMORY)
    return env


def allocator_note(env: dict[str, str] | None = None) -> str:
    """One line for a report: the measuring processes' malloc setting."""
    tunables = (worker_env(1) if env is None else env).get("GLIBC_TUNABLES", "")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "the platform's malloc, untouched"
    return f"glibc malloc with GLIBC_TUNABLES={tunables}" if tunables else "glibc malloc defaults"


def measure(runtime: str, *, artifact: Path | None, config: dict | None, shape: tuple[int, ...], threads: int,
            warmup: int, runs: int, timeout: float = 1800.0, etdump: Path | None = None,
            max_seconds: float | None = None, streaming: dict | None = None, pair_clip: dict | None = None,
            interleave: dict | None = None) -> dict:
    """Time one artifact in a fresh child process; returns latency stats and the child's peak RSS.

    ``artifact`` is the file to run (a checkpoint for pytorch, or None with ``config`` to build
    a fresh model). A failure inside the child is returned as ``{"error": ...}``; a runtime
    that cannot run here as ``{"skipped": reason}``. With ``streaming`` (the artifact's
    metadata.json ``streaming`` section; ``{"window": W}`` for pytorch) one run is one
    streaming step on a (1, 3, S, S) ``shape`` frame, its state carried (see worker.py). With
    ``pair_clip`` too (the clip's ``shape``, and its ``artifact`` unless pytorch) the step and the
    clip run side by side in turns; the result then holds ``pair_clip_ms`` and ``pair_step_ms``
    (a list of T step times per clip) instead of latency statistics. With ``interleave``
    ({variant: {"artifact": ..., "config": ...}}) those clip artifacts run in turns in one process:
    the result holds ``interleaved_ms`` ({variant: [ms, ...]}).
    """
    rt = get_runtime(runtime)
    reason = rt.missing()
    if reason:
        return {"skipped": reason}
    spec = {"runtime": runtime, "artifact": str(artifact) if artifact else None, "config": config,
            "shape": list(shape), "threads": threads, "warmup": warmup, "runs": runs,
            "etdump": str(etdump) if etdump else None}
    if max_seconds:
        spec["max_seconds"] = max_seconds
    if streaming:
        spec["streaming"] = streaming
    if pair_clip:
        spec["pair_clip"] = pair_clip
    if interleave:
        spec["interleave"] = interleave
    env = worker_env(threads)
    with tempfile.TemporaryDirectory(prefix="ane-bench-") as tmp:
        spec_path, out_path, err_path = (Path(tmp) / n for n in ("spec.json", "out.txt", "err.txt"))
        spec_path.write_text(json.dumps(spec))
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen([sys.executable, str(WORKER), str(spec_path)], stdout=out, stderr=err, env=env)
            try:
                status = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return {"error": f"timed out after {timeout:.0f} s"}
        lines = [ln for ln in out_path.read_text().splitlines() if ln.startswith("{")]
        stderr_tail = err_path.read_text().strip().splitlines()[-3:]
    if not lines:
        return {"error": f"worker exited with status {status} without a result: {' | '.join(stderr_tail)}"}
    res = json.loads(lines[-1])
    if "error" in res:
        return res
    if res.get("skipped") or "pair_clip_ms" in res or "interleaved_ms" in res:
        return res
    row = summarize(res["latencies_ms"])
    row.update(res)  # keeps latencies_ms: rounds of one measurement are pooled by run_bench
    return row
