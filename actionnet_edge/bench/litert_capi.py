"""LiteRT's per-op profiler, through the C API of the ``libLiteRt.so`` that ai-edge-litert ships.

The Python bindings of ai-edge-litert time nothing per op, but the library beside them exports
LiteRT's CompiledModel C API with its profiler (``LiteRtCompiledModelGetProfiler``): with the
runtime option ``enable_profiling = true`` the XNNPACK delegate reports each of its kernels
("Convolution (NHWC, F32) IGEMM", ...) and TFLite each op it runs itself -- the events
``benchmark_model --enable_op_profiling=true`` prints, read here without building it.

Run as a child process (a C API misuse must not take the caller down)::

    python -m actionnet_edge.bench.litert_capi model.tflite --threads 2 --runs 5

prints one JSON object: per op (event tag), its kind (XNNPACK delegate or TFLite), ms and calls
per run, and the interpreter's Invoke ms.
"""
from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

import numpy as np

CPU = 1  # kLiteRtHwAcceleratorCpu
FLOAT32 = 1  # kLiteRtElementTypeFloat32, the first field of LiteRtRankedTensorType
LOCK_WRITE = 1  # kLiteRtTensorBufferLockModeWrite
# tflite::Profiler::EventType: the interpreter's "Invoke" is DEFAULT, XNNPACK's kernels are
# DELEGATE_PROFILED_OPERATOR_INVOKE, ops TFLite runs itself OPERATOR_INVOKE
DEFAULT = 1
OPERATOR_INVOKE, DELEGATE_OPERATOR_INVOKE, DELEGATE_PROFILED_OPERATOR_INVOKE = 2, 4, 8
EVENT_TYPES = {1, 2, 4, 8, 16, 32, 64, 128, 256}
# ProfiledEventData: tag (char*), event type (enum), start and elapsed (us, uint64) come first;
# the two MemoryUsage records after them have changed size between releases, so the record's
# size is found from the events themselves (the candidates a 16-, 24- or 32-byte MemoryUsage give)
STRIDES = (88, 104, 120)


class LiteRtError(RuntimeError):
    pass


def library() -> ctypes.CDLL:
    import ai_edge_litert

    path = Path(ai_edge_litert.__file__).parent / "libLiteRt.so"
    if not path.exists():
        raise LiteRtError(f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '')} ships no libLiteRt.so")
    return ctypes.CDLL(str(path))


class Profiled:
    """One .tflite compiled for the CPU (XNNPACK) with the profiler on. Nothing is destroyed: it
    lives as long as the child process that profiles it."""

    def __init__(self, tflite: Path, threads: int) -> None:
        self.lib = lib = library()
        self._keep: list = []
        P = ctypes.c_void_p
        self.env, self.model, self.options, self.compiled = P(), P(), P(), P()
        self._ok(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self.env)), "LiteRtCreateEnvironment")
        self._ok(lib.LiteRtCreateModelFromFile(self.env, str(tflite).encode(), ctypes.byref(self.model)),
                 f"LiteRtCreateModelFromFile({tflite})")
        self._ok(lib.LiteRtCreateOptions(ctypes.byref(self.options)), "LiteRtCreateOptions")
        self._ok(lib.LiteRtSetOptionsHardwareAccelerators(self.options, CPU), "LiteRtSetOptionsHardwareAccelerators")
        self._opaque("runtime_options_string", "enable_profiling = true\n")
        self._opaque("xnnpack", f"num_threads = {int(threads)}\n")
        self._ok(lib.LiteRtCreateCompiledModel(self.env, self.model, self.options, ctypes.byref(self.compiled)),
                 "LiteRtCreateCompiledModel")
        sig = P()
        self._ok(lib.LiteRtGetModelSignature(self.model, ctypes.c_size_t(0), ctypes.byref(sig)), "LiteRtGetModelSignature")
        n_in, n_out = ctypes.c_size_t(), ctypes.c_size_t()
        self._ok(lib.LiteRtGetNumSignatureInputs(sig, ctypes.byref(n_in)), "LiteRtGetNumSignatureInputs")
        self._ok(lib.LiteRtGetNumSignatureOutputs(sig, ctypes.byref(n_out)), "LiteRtGetNumSignatureOutputs")
        self.inputs, types = self._buffers(sig, n_in.value, "Input")
        self.outputs, _ = self._buffers(sig, n_out.value, "Output")
        rng = np.random.default_rng(0)
        for buf, ttype in zip(self.inputs, types):  # random values (uninitialised memory may hold denormals)
            size, addr = ctypes.c_size_t(), P()
            self._ok(lib.LiteRtGetTensorBufferPackedSize(buf, ctypes.byref(size)), "LiteRtGetTensorBufferPackedSize")
            self._ok(lib.LiteRtLockTensorBuffer(buf, ctypes.byref(addr), LOCK_WRITE), "LiteRtLockTensorBuffer")
            if ctypes.c_int32.from_buffer(ttype).value == FLOAT32:
                data = rng.uniform(-1, 1, size.value // 4).astype(np.float32).view(np.uint8)
            else:
                data = rng.integers(0, 256, size.value, dtype=np.uint8)
            ctypes.memmove(addr, data.ctypes.data, size.value)
            self._ok(lib.LiteRtUnlockTensorBuffer(buf), "LiteRtUnlockTensorBuffer")
        self.profiler = P()
        self._ok(lib.LiteRtCompiledModelGetProfiler(self.compiled, ctypes.byref(self.profiler)),
                 "LiteRtCompiledModelGetProfiler")
        if not self.profiler:
            raise LiteRtError("LiteRT made no profiler for this model")

    def _ok(self, status: int, what: str) -> None:
        if status != 0:
            raise LiteRtError(f"{what} failed with LiteRtStatus {status}")

    def _opaque(self, identifier: str, toml: str) -> None:
        """Add a TOML-serialised option group (how LiteRT 2.x passes runtime and CPU options)."""
        libc = ctypes.CDLL(None)
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        payload = libc.strdup(toml.encode())
        deleter = ctypes.cast(libc.free, ctypes.c_void_p)
        ident = ctypes.c_char_p(identifier.encode())
        self._keep.append(ident)  # LiteRT may keep the pointer
        opaque = ctypes.c_void_p()
        self._ok(self.lib.LiteRtCreateOpaqueOptions(ident, ctypes.c_void_p(payload), deleter, ctypes.byref(opaque)),
                 f"LiteRtCreateOpaqueOptions({identifier})")
        self._ok(self.lib.LiteRtAddOpaqueOptions(self.options, opaque), f"LiteRtAddOpaqueOptions({identifier})")

    def _buffers(self, sig, n: int, kind: str) -> tuple[list[ctypes.c_void_p], list[ctypes.Array]]:
        """A managed buffer per signature input or output, with the tensor type each was made for."""
        lib, P = self.lib, ctypes.c_void_p
        bufs, types = [], []
        for i in range(n):
            tensor, req = P(), P()
            ttype = ctypes.create_string_buffer(256)  # LiteRtRankedTensorType (80 bytes), read and passed back
            self._ok(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex")(sig, ctypes.c_size_t(i), ctypes.byref(tensor)),
                     f"LiteRtGetSignature{kind}TensorByIndex")
            self._ok(lib.LiteRtGetRankedTensorType(tensor, ttype), "LiteRtGetRankedTensorType")
            self._ok(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
                self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(i), ctypes.byref(req)),
                f"LiteRtGetCompiledModel{kind}BufferRequirements")
            buf = P()
            self._ok(lib.LiteRtCreateManagedTensorBufferFromRequirements(self.env, ttype, req, ctypes.byref(buf)),
                     "LiteRtCreateManagedTensorBufferFromRequirements")
            bufs.append(buf)  # kept as c_void_p: a bare int would pass as a 32-bit C int
            types.append(ttype)
        return bufs, types

    def run(self) -> None:
        ins = (ctypes.c_void_p * len(self.inputs))(*(b.value for b in self.inputs))
        outs = (ctypes.c_void_p * len(self.outputs))(*(b.value for b in self.outputs))
        self._ok(self.lib.LiteRtRunCompiledModel(self.compiled, ctypes.c_size_t(0), ctypes.c_size_t(len(self.inputs)),
                                                 ins, ctypes.c_size_t(len(self.outputs)), outs), "LiteRtRunCompiledModel")

    def profile(self, runs: int) -> list[tuple[str, int, float]]:
        """(tag, event type, ms) of every event of ``runs`` runs."""
        lib = self.lib
        self._ok(lib.LiteRtResetProfiler(self.profiler), "LiteRtResetProfiler")
        self._ok(lib.LiteRtStartProfiler(self.profiler), "LiteRtStartProfiler")
        for _ in range(runs):
            self.run()
        self._ok(lib.LiteRtStopProfiler(self.profiler), "LiteRtStopProfiler")
        n = ctypes.c_int()
        self._ok(lib.LiteRtGetNumProfilerEvents(self.profiler, ctypes.byref(n)), "LiteRtGetNumProfilerEvents")
        if n.value <= 0:
            raise LiteRtError("the profiler recorded no events")
        raw = ctypes.create_string_buffer(n.value * max(STRIDES))
        self._ok(lib.LiteRtGetProfilerEvents(self.profiler, n, raw), "LiteRtGetProfilerEvents")
        return _decode(raw, n.value)


def _decode(raw: ctypes.Array, n: int) -> list[tuple[str, int, float]]:
    """The events in ``raw``, at the one record size under which every record reads as one: a
    known event type, a plausible time and a pointer-sized tag, all checked before any tag is
    dereferenced."""
    base = ctypes.addressof(raw)

    def fields(stride: int, i: int) -> tuple[int | None, int, int]:
        at = base + i * stride
        return (ctypes.c_void_p.from_address(at).value, ctypes.c_uint32.from_address(at + 8).value,
                ctypes.c_uint64.from_address(at + 24).value)

    for stride in STRIDES:
        records = [fields(stride, i) for i in range(n)]
        if all(tag and tag > 1 << 16 and etype in EVENT_TYPES and elapsed < 10**10 for tag, etype, elapsed in records):
            return [(ctypes.string_at(tag).decode(errors="replace"), etype, elapsed / 1000.0)
                    for tag, etype, elapsed in records]
    raise LiteRtError(f"could not read {n} profiler events at any record size {STRIDES}")


def op_profile(tflite: Path, threads: int, runs: int = 5, warmup: int = 2) -> dict:
    """Per-tag ms per run and calls per run of the op events (XNNPACK's kernels, TFLite's ops)."""
    m = Profiled(tflite, threads)
    for _ in range(warmup):
        m.run()
    events = m.profile(runs)
    ops: dict[str, dict] = {}
    invoke = [ms for tag, etype, ms in events if tag == "Invoke" and etype == DEFAULT]
    for tag, etype, ms in events:
        if etype not in (OPERATOR_INVOKE, DELEGATE_OPERATOR_INVOKE, DELEGATE_PROFILED_OPERATOR_INVOKE):
            continue
        kind = "delegate" if etype != OPERATOR_INVOKE else "tflite"
        e = ops.setdefault(f"{kind}:{tag}", {"op": tag, "kind": kind, "ms": 0.0, "calls": 0})
        e["ms"] += ms / runs
        e["calls"] += 1
    for e in ops.values():  # calls per run: whole unless the graph's control flow varies between runs
        e["calls"] = e["calls"] // runs if e["calls"] % runs == 0 else e["calls"] / runs
    return {"runs": runs, "threads": threads, "events": len(events), "ops": list(ops.values()),
            "invoke_ms": sum(invoke) / len(invoke) if invoke else None}


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m actionnet_edge.bench.litert_capi", description=__doc__.split("\n")[0])
    ap.add_argument("tflite", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args(argv)
    try:
        print(json.dumps(op_profile(a.tflite, a.threads, a.runs, a.warmup)))
    except LiteRtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
