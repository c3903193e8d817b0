"""Runs test vectors through ONNX Runtime or LiteRT inside the emulated (or any) Python.

A standalone script: it imports only NumPy and the one runtime a job needs (no torch, nothing of
actionnet_edge), so the ARM64 sysroot's Python runs it with the aarch64 wheels.

    python guest.py JOBS.json

JOBS.json is a list of ``{"target", "model", "inputs", "outputs", "steps", "input_shapes",
"input_names", "output_names", "stream"}``: ``inputs`` is a raw little-endian float32 file of ``steps`` sets of
the inputs (a stream: ``steps`` frames; its state starts at zero in the shapes after the first and output
2 + i is fed back as input 1 + i), ``outputs`` receives every output of every step in
``output_names`` order. Same protocol as the ExecuTorch runner (runner.cpp).
"""
import json
import sys

import numpy as np


def _onnx(model, input_names, output_names):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = input_names or [i.name for i in sess.get_inputs()]
    return lambda xs: sess.run(output_names or None, dict(zip(names, xs)))


def _tflite(model, input_names, output_names):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=model, num_threads=1)
    if input_names:  # named inputs and outputs: the signature runner
        runner = interp.get_signature_runner()

        def run(xs):
            out = runner(**dict(zip(input_names, xs)))
            return [out[n] for n in output_names]

        return run
    interp.allocate_tensors()
    inp, outs = interp.get_input_details(), interp.get_output_details()

    def run(xs):
        for d, x in zip(inp, xs):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in outs]

    return run


def run_job(job):
    make = {"onnx": _onnx, "tflite": _tflite}[job["target"]]
    run = make(job["model"], job.get("input_names"), job.get("output_names"))
    shapes = job["input_shapes"]
    stream = job.get("stream", False)
    fed = shapes[:1] if stream else shapes
    sizes = [int(np.prod(s)) for s in fed]
    raw = np.fromfile(job["inputs"], "<f4")
    if raw.size != job["steps"] * sum(sizes):
        raise SystemExit(f"guest: {job['inputs']} holds {raw.size} floats, expected {job['steps'] * sum(sizes)}")
    state = [np.zeros(s, np.float32) for s in shapes[1:]] if stream else []
    pos, out = 0, []
    for _ in range(job["steps"]):
        xs = []
        for s, n in zip(fed, sizes):
            xs.append(raw[pos:pos + n].reshape(s))
            pos += n
        ys = [np.asarray(y, np.float32) for y in run(xs + state)]
        if stream:
            state = ys[2:]
        out.extend(y.ravel() for y in ys)
    np.concatenate(out).astype("<f4").tofile(job["outputs"])


def main():
    for job in json.load(open(sys.argv[1])):
        run_job(job)


if __name__ == "__main__":
    main()
