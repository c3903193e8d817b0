"""One latency measurement in its own process (run as a script, not imported by the package).

``python worker.py SPEC.json`` opens ONE artifact with its exporter's loader
(``get_exporter(target).load`` / ``.load_multi``) at the requested thread count, runs ``warmup``
untimed and ``runs`` timed clips (1, T, 3, S, S), and prints one JSON line with the latencies
and this process's peak RSS. With ``spec["streaming"]`` one run is one streaming step, its state
outputs fed back as the next step's state; ``spec["pair_clip"]`` and ``spec["interleave"]`` time
the step next to its clip (:func:`measure_pair`) or several variants in turns
(:func:`measure_interleaved`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

#: the export target whose loader opens each runtime's artifacts
TARGETS = {"executorch": "executorch", "litert": "tflite", "onnxruntime": "onnx", "coreml": "coreml"}
_ORT_SHARED_POOL = False  # measure_pair / measure_interleaved: this process's sessions share one pool


def _pytorch(spec: dict, clip: np.ndarray):
    import torch

    torch.set_num_threads(spec["threads"])
    from actionnet_edge.checkpoint import load_checkpoint
    from actionnet_edge.models import build_from_config

    if spec.get("artifact"):
        model = load_checkpoint(spec["artifact"]).model
    else:
        model = build_from_config(spec["config"])
    model.eval()
    x = torch.from_numpy(clip)

    def run() -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    return run


def _load_options(spec: dict) -> dict:
    """The loader's keywords for this measurement: threads, ETDump, ORT's shared pool."""
    runtime = spec["runtime"]
    opts: dict = {"threads": spec["threads"]} if runtime != "coreml" else {}
    if runtime == "executorch":
        import torch

        torch.set_num_threads(1)  # the binding's tensor copies must not spin up a second pool
        opts["etdump"] = bool(spec.get("etdump"))
    if runtime == "onnxruntime" and _ORT_SHARED_POOL:
        opts["shared_pool"] = True
    return opts


def _artifact(spec: dict, clip: np.ndarray):
    """An exported artifact, opened by its exporter in the layout its metadata.json names."""
    from actionnet_edge.export import get_exporter

    path = Path(spec["artifact"])
    meta = path.parent / "metadata.json"
    layout = json.loads(meta.read_text()).get("layout", "NCHW") if meta.is_file() else "NCHW"
    runner = get_exporter(TARGETS[spec["runtime"]]).load(path, layout=layout, **_load_options(spec))

    def run() -> np.ndarray:
        return runner(clip)

    run.write_etdump = getattr(runner, "write_etdump", None)  # type: ignore[attr-defined]
    return run


def _share_ort_pool(spec: dict) -> None:
    """For ONNX Runtime: every session this process opens from now on shares one pool of
    ``spec["threads"]`` (two sessions with pools of their own take turns badly: the idle one's
    spinning workers take the cores). ExecuTorch has one XNNPACK pool per process anyway."""
    global _ORT_SHARED_POOL
    if spec["runtime"] == "onnxruntime":
        from onnxruntime.capi import _pybind_state

        _pybind_state.set_global_thread_pool_sizes(spec["threads"], 1)
        _ORT_SHARED_POOL = True


def _clip_run(spec: dict, clip: np.ndarray):
    return _pytorch(spec, clip) if spec["runtime"] == "pytorch" else _artifact(spec, clip)


# ---- streaming step: call(list of inputs) -> list of outputs, and the zero state --------------------------
def _names(spec: dict) -> tuple[list[str], list[str]]:
    st = spec["streaming"]
    return [i["name"] for i in st["inputs"]], [o["name"] for o in st["outputs"]]


def _zero_state(spec: dict) -> list[np.ndarray]:
    return [np.zeros(s["shape"], np.float32) for s in spec["streaming"]["state"]]


def _pytorch_stream(spec: dict):
    import torch

    torch.set_num_threads(spec["threads"])
    from actionnet_edge.checkpoint import load_checkpoint
    from actionnet_edge.models import build_from_config
    from actionnet_edge.models.streaming import to_streaming

    model = load_checkpoint(spec["artifact"]).model if spec.get("artifact") else build_from_config(spec["config"])
    stream = to_streaming(model, spec["streaming"].get("window"))

    def call(inputs: list) -> list:
        with torch.inference_mode():
            return list(stream(*(torch.as_tensor(x) for x in inputs)))

    return call, stream.init_state(1, spec["shape"][-1])


def _artifact_stream(spec: dict):
    """A streaming-step artifact opened by its exporter's ``load_multi``."""
    from actionnet_edge.export import get_exporter

    ins, outs = _names(spec)
    call = get_exporter(TARGETS[spec["runtime"]]).load_multi(Path(spec["artifact"]), input_names=ins,
                                                            output_names=outs, **_load_options(spec))
    return call, _zero_state(spec)


def _stream_run(spec: dict, frame: np.ndarray):
    """One streaming step per call, the state outputs fed back as the next call's state."""
    call, state = _pytorch_stream(spec) if spec["runtime"] == "pytorch" else _artifact_stream(spec)

    def run():
        nonlocal state
        out = call([frame, *state])
        state = out[2:]
        return np.asarray(out[0])

    run.write_etdump = getattr(call, "write_etdump", None)  # type: ignore[attr-defined]
    return run


def _mem_mb(field: str) -> float | None:
    """VmRSS / VmHWM (peak) of this process in MiB. VmHWM belongs to this process's own address
    space, so unlike the parent's ``ru_maxrss`` of a child it does not include the parent's memory
    at fork time."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if field == "VmHWM":  # not Linux: ru_maxrss (bytes on macOS, KiB elsewhere)
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)
    return None


def measure(spec: dict) -> dict:
    """Load, warm up and time one artifact; see the module docstring for ``spec``."""
    clip = np.random.default_rng(0).standard_normal(tuple(spec["shape"])).astype(np.float32)
    t0 = time.perf_counter()
    run = _stream_run(spec, clip) if spec.get("streaming") else _clip_run(spec, clip)
    y = run()  # first call (often slower: lazy init), reported separately
    load_ms = (time.perf_counter() - t0) * 1e3
    rss_loaded = _mem_mb("VmRSS")
    for _ in range(spec["warmup"]):
        run()
    lat = []
    deadline = time.perf_counter() + spec.get("max_seconds", 1e9)
    for _ in range(spec["runs"]):
        t = time.perf_counter()
        run()
        lat.append((time.perf_counter() - t) * 1e3)
        if t > deadline and len(lat) >= 3:
            break
    result = {"latencies_ms": lat, "load_and_first_ms": load_ms, "rss_after_load_mb": rss_loaded,
              "peak_rss_mb": _mem_mb("VmHWM"), "output_shape": list(np.shape(y)), "output_finite": bool(np.isfinite(y).all())}
    if spec.get("etdump") and spec["runtime"] == "executorch":
        run.write_etdump(spec["etdump"], spec["etdump"] + ".debug")  # type: ignore[attr-defined]
    return result


def measure_pair(spec: dict) -> dict:
    """The streaming step and the clip of the same model, loaded side by side and timed in turns.

    ``spec`` is the frame measurement's; ``spec["pair_clip"]`` overrides what differs for the
    clip (its ``shape``, and its ``artifact`` except for pytorch). Each of ``runs`` blocks times
    one clip, then T steps (T = the clip's frames), each after one untimed call of its own kind, so
    that neither starts cold from the other's cache. A slow spell of a shared machine, which
    lasts from a fraction of a second to seconds, then falls on both halves of a block alike: the
    blocks' step/clip ratios are steadier than the ratio of two medians taken in two processes.
    ONNX Runtime's two sessions share one thread pool (``_share_ort_pool``); ExecuTorch has one
    XNNPACK pool per process; LiteRT's interpreters keep their own, whose workers sleep when idle.
    """
    _share_ort_pool(spec)
    cspec = {k: v for k, v in spec.items() if k != "streaming"} | spec["pair_clip"]
    clip_in = np.random.default_rng(0).standard_normal(tuple(cspec["shape"])).astype(np.float32)
    frame = np.random.default_rng(0).standard_normal(tuple(spec["shape"])).astype(np.float32)
    clip_run = _clip_run(cspec, clip_in)
    step_run = _stream_run(spec, frame)
    frames = int(cspec["shape"][1])
    for _ in range(spec["warmup"]):
        clip_run()
        step_run()
    clip_ms, step_ms = [], []
    for _ in range(spec["runs"]):
        clip_run()
        t = time.perf_counter()
        clip_run()
        clip_ms.append((time.perf_counter() - t) * 1e3)
        step_run()
        block = []
        for _ in range(frames):
            t = time.perf_counter()
            step_run()
            block.append((time.perf_counter() - t) * 1e3)
        step_ms.append(block)
    return {"pair_clip_ms": clip_ms, "pair_step_ms": step_ms, "peak_rss_mb": _mem_mb("VmHWM")}


def measure_interleaved(spec: dict) -> dict:
    """Several variants' clip artifacts of one runtime, loaded side by side and timed in turns.

    ``spec["interleave"]`` maps each variant to what differs for it (``artifact``, and ``config``
    for pytorch). Each of ``runs`` blocks times one clip of every variant, the order reversed every
    other block, so a slow spell of a shared machine falls on all of them alike; the variants
    share the runtime (and its thread pool), not anything else.
    """
    _share_ort_pool(spec)
    clip = np.random.default_rng(0).standard_normal(tuple(spec["shape"])).astype(np.float32)
    runs = {v: _clip_run({**spec, **item}, clip) for v, item in spec["interleave"].items()}
    names = list(runs)
    for _ in range(spec["warmup"]):
        for n in names:
            runs[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for b in range(spec["runs"]):
        for n in names if b % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            runs[n]()
            times[n].append((time.perf_counter() - t) * 1e3)
    return {"interleaved_ms": times, "peak_rss_mb": _mem_mb("VmHWM")}


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        spec = json.load(f)
    try:
        if spec.get("pair_clip"):
            result = measure_pair(spec)
        elif spec.get("interleave"):
            result = measure_interleaved(spec)
        else:
            result = measure(spec)
    except Exception as e:  # reported to the parent as one line, the traceback goes to stderr
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
