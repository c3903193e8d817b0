"""In-process A/B of ``.tflite`` files in LiteRT (ai-edge-litert's Interpreter, XNNPACK): the files
interleaved (every other round reversed) in one process, so a slow spell of a shared machine
falls on all.

    python benchmarks/tflite_ab.py /tmp/bench/work --precision int8 --rounds 12 --runs 8 --threads 2
    python benchmarks/tflite_ab.py --file tsm=a.tflite --file action=b.tflite --file action_before=c.tflite

The folder is the bench's ``--work`` (``artifacts/<variant>-tflite-<precision>-t8-s224/*.tflite``,
as ``benchmarks/run_bench.sh`` leaves them); ``--file name=path`` adds (or replaces) one. Prints
each file's median and min and ACTION's overhead over TSM.
"""
import argparse
from pathlib import Path

import numpy as np
from _variants import VARIANTS, bench_artifact, interleaved, print_overhead, timing_arguments
from ai_edge_litert.interpreter import Interpreter

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("work", type=Path, nargs="?")
p.add_argument("--file", action="append", default=[], metavar="NAME=PATH")
p.add_argument("--precision", default="int8", choices=("fp32", "int8"))
timing_arguments(p)
a = p.parse_args()
paths: dict[str, Path] = {}
if a.work is not None:
    paths = {n: bench_artifact(a.work, n, a.precision, a.segments, a.size, target="tflite") for n in VARIANTS}
for spec in a.file:
    name, _, path = spec.partition("=")
    if not path or not Path(path).is_file():
        raise SystemExit(f"error: --file {spec}: expected NAME=PATH of an existing .tflite")
    paths[name] = Path(path)
if not paths:
    raise SystemExit("error: give the bench's work folder or --file NAME=PATH")


def runner(path: Path):
    it = Interpreter(model_path=str(path), num_threads=a.threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.random.default_rng(0).normal(size=inp["shape"]).astype(np.float32))
    return it.invoke


times = interleaved({n: runner(path) for n, path in paths.items()}, a.rounds, a.runs, warmup=5)
print_overhead(times, f"{a.precision} ")
