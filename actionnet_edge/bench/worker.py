"""One latency measurement in its own process (run as a script, not imported by the package).

``python worker.py SPEC.json`` loads ONE artifact in ONE runtime with the requested thread
count, runs ``warmup`` untimed clips and ``runs`` timed clips of shape (1, T, 3, S, S), and
prints one JSON line ``{"latencies_ms": [...], "load_ms": ..., ...}`` on stdout. The parent
reads the process's peak RSS from the same line (VmHWM of /proc/self/status, the
high-water mark of this process's own memory; ``ru_maxrss`` elsewhere).

It is started by file path so that the ``actionnet_edge`` package (and with it torch) is
only imported by the runtimes that need it: ONNX Runtime and LiteRT measurements carry no
PyTorch in their memory figures. Only the standard library and numpy are imported here at
module level.

With ``spec["streaming"]`` (the ``streaming`` section of a streaming artifact's metadata.json,
or ``{"window": W}`` for PyTorch) one timed run is one streaming step of shape (1, 3, S, S):
the frame and the state go in, and the state outputs are fed back as the next run's state
inputs, as an app carries them. With ``spec["pair_clip"]`` as well, the step and the model's clip
artifact run side by side in turns (:func:`measure_pair`) and the line holds both kinds of times;
with ``spec["interleave"]``, several variants' clips in turns (:func:`measure_interleaved`).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np

# started by path: drop this directory from sys.path so `profile.py` here cannot shadow the stdlib
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]


def _adapt(shape: tuple, clip: np.ndarray) -> np.ndarray:
    """Reshape the NCHW clip to the artifact's input: as is, or NHWC (N, T, S, S, 3)."""
    if tuple(shape) == clip.shape or not shape:
        return clip
    nhwc = clip.transpose(0, 1, 3, 4, 2)
    if tuple(shape) == nhwc.shape:
        return np.ascontiguousarray(nhwc)
    raise ValueError(f"artifact input shape {tuple(shape)} does not fit a clip of shape {clip.shape}")


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


def _executorch(spec: dict, clip: np.ndarray):
    import torch
    from executorch.extension.pybindings import portable_lib as et

    torch.set_num_threads(1)  # the binding's tensor copies must not spin up a second pool (_executorch_stream)
    et._unsafe_reset_threadpool(spec["threads"])
    module = et._load_for_executorch(spec["artifact"], enable_etdump=bool(spec.get("etdump")))
    meta = module.method_meta("forward")
    x = torch.from_numpy(_adapt(tuple(meta.input_tensor_meta(0).sizes()), clip))

    def run() -> np.ndarray:
        return module.forward([x])[0].numpy()

    run.module = module  # type: ignore[attr-defined]
    return run


def _litert(spec: dict, clip: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=spec["artifact"], num_threads=spec["threads"])
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x = _adapt(tuple(inp["shape"]), clip)
    if inp["dtype"] != np.float32:  # integer I/O: quantize with the tensor's own parameters
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])

    def run() -> np.ndarray:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    return run


_ORT_SHARED_POOL = False  # measure_pair / measure_interleaved: this process's sessions share one pool


def _share_ort_pool(spec: dict) -> None:
    """For ONNX Runtime: every session this process opens from now on shares one pool of
    ``spec["threads"]`` (ExecuTorch has one XNNPACK pool per process anyway)."""
    global _ORT_SHARED_POOL
    if spec["runtime"] == "onnxruntime":
        from onnxruntime.capi import _pybind_state

        _pybind_state.set_global_thread_pool_sizes(spec["threads"], 1)
        _ORT_SHARED_POOL = True


def _ort_session(spec: dict):
    """An ONNX Runtime session at ``spec["threads"]``: its own thread pool, or with
    ``_ORT_SHARED_POOL`` the process's one pool of that size (two sessions with pools of their own
    take turns badly: the idle one's spinning workers took the cores, a clip measured 78-82 ms next
    to a streaming session and 38-50 ms sharing the pool with it)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if _ORT_SHARED_POOL:
        opts.use_per_session_threads = False
    else:
        opts.intra_op_num_threads = spec["threads"]
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(spec["artifact"], opts, providers=["CPUExecutionProvider"])


def _onnxruntime(spec: dict, clip: np.ndarray):
    sess = _ort_session(spec)
    inp = sess.get_inputs()[0]
    x = _adapt(tuple(d if isinstance(d, int) else clip.shape[i] for i, d in enumerate(inp.shape)), clip)

    def run() -> np.ndarray:
        return sess.run(None, {inp.name: x})[0]

    return run


def _coreml(spec: dict, clip: np.ndarray):
    if platform.system() != "Darwin":
        raise RuntimeError("skipped: CoreML runs only on macOS")
    import coremltools as ct

    model = ct.models.MLModel(spec["artifact"], compute_units=ct.ComputeUnit.CPU_AND_NE)
    desc = model.get_spec().description
    name = desc.input[0].name
    shape = tuple(desc.input[0].type.multiArrayType.shape)
    x = _adapt(shape, clip)

    def run() -> np.ndarray:
        return np.asarray(next(iter(model.predict({name: x}).values())))

    return run


LOADERS = {"pytorch": _pytorch, "executorch": _executorch, "litert": _litert,
           "onnxruntime": _onnxruntime, "coreml": _coreml}


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


def _executorch_stream(spec: dict):
    import torch
    from executorch.extension.pybindings import portable_lib as et

    # The binding moves tensors with torch ops. With torch's own pool at 2+ threads its OpenMP
    # workers spin after every copy and take a core from XNNPACK's threadpool: a step at 2 threads
    # measured median 7.0 ms / p90 11 ms that way, 5.4 / 5.9 ms with torch at one thread, which is
    # what an app linking only the ExecuTorch runtime gets (export/executorch.py one_torch_thread).
    torch.set_num_threads(1)
    et._unsafe_reset_threadpool(spec["threads"])
    module = et._load_for_executorch(spec["artifact"], enable_etdump=bool(spec.get("etdump")))

    def call(inputs: list) -> list:
        # the binding returns fresh tensors (no output pointer repeats between calls, an output is
        # unchanged by the next call), so the state goes back in as is: cloning its 71 tensors cost
        # 0.5 ms of a 6 ms step
        return module.forward([torch.as_tensor(x) for x in inputs])

    call.module = module  # type: ignore[attr-defined]  # measure() writes its ETDump
    return call, _zero_state(spec)


def _litert_stream(spec: dict):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=spec["artifact"], num_threads=spec["threads"]).get_signature_runner()
    ins, outs = _names(spec)

    def call(inputs: list) -> list:
        out = runner(**dict(zip(ins, inputs)))
        return [out[n] for n in outs]

    return call, _zero_state(spec)


def _onnxruntime_stream(spec: dict):
    sess = _ort_session(spec)
    ins, outs = _names(spec)

    def call(inputs: list) -> list:
        return sess.run(outs, dict(zip(ins, inputs)))

    return call, _zero_state(spec)


def _coreml_stream(spec: dict):
    if platform.system() != "Darwin":
        raise RuntimeError("skipped: CoreML runs only on macOS")
    import coremltools as ct

    model = ct.models.MLModel(spec["artifact"], compute_units=ct.ComputeUnit.CPU_AND_NE)
    ins, outs = _names(spec)

    def call(inputs: list) -> list:
        out = model.predict(dict(zip(ins, inputs)))
        return [np.asarray(out[n]) for n in outs]

    return call, _zero_state(spec)


STREAM_LOADERS = {"pytorch": _pytorch_stream, "executorch": _executorch_stream, "litert": _litert_stream,
                  "onnxruntime": _onnxruntime_stream, "coreml": _coreml_stream}


def _stream_run(spec: dict, frame: np.ndarray):
    """One streaming step per call, the state outputs fed back as the next call's state."""
    call, state = STREAM_LOADERS[spec["runtime"]](spec)

    def run():
        nonlocal state
        out = call([frame, *state])
        state = out[2:]
        return np.asarray(out[0])

    run.module = getattr(call, "module", None)  # type: ignore[attr-defined]
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
    run = _stream_run(spec, clip) if spec.get("streaming") else LOADERS[spec["runtime"]](spec, clip)
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
        run.module.write_etdump_result_to_file(spec["etdump"], spec["etdump"] + ".debug")  # type: ignore[attr-defined]
    return result


def measure_pair(spec: dict) -> dict:
    """The streaming step and the clip of the same model, loaded side by side and timed in turns.

    ``spec`` is the frame measurement's; ``spec["pair_clip"]`` overrides what differs for the
    clip (its ``shape``, and its ``artifact`` except for pytorch). Each of ``runs`` blocks times
    one clip, then T steps (T = the clip's frames), each after one untimed call of its own kind, so
    that neither starts cold from the other's cache. A slow spell of a shared machine, which
    lasts from a fraction of a second to seconds, then falls on both halves of a block alike: the
    blocks' step/clip ratios are steadier than the ratio of two medians taken in two processes.
    ONNX Runtime's two sessions share one thread pool (``_ort_session``); ExecuTorch has one
    XNNPACK pool per process; LiteRT's interpreters keep their own, whose workers sleep when idle.
    """
    _share_ort_pool(spec)
    cspec = {k: v for k, v in spec.items() if k != "streaming"} | spec["pair_clip"]
    clip_in = np.random.default_rng(0).standard_normal(tuple(cspec["shape"])).astype(np.float32)
    frame = np.random.default_rng(0).standard_normal(tuple(spec["shape"])).astype(np.float32)
    clip_run = LOADERS[spec["runtime"]](cspec, clip_in)
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
    runs = {v: LOADERS[spec["runtime"]]({**spec, **item}, clip) for v, item in spec["interleave"].items()}
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
