"""In-process, interleaved A/B of streaming-step ``.tflite`` exports in LiteRT.

Each NAME=FOLDER is an ``export --streaming --target tflite`` folder (its metadata.json lists the
state); every file runs its own stream from zero state, its state outputs fed back as the next
step's inputs, the files taking turns by rounds (every other round in reverse order), on one
random frame. The median and the minimum step time per file.

    python benchmarks/step_ab.py old=/tmp/stream/work/artifacts/action-tflite-fp32-t8-s224-streaming \\
        new=/tmp/stream/work5/artifacts/action-tflite-fp32-t8-s224-streaming --rounds 40
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", metavar="NAME=FOLDER")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps per file and round (after 3 warm-up steps)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    from ai_edge_litert.interpreter import Interpreter

    runs = {}
    for arg in a.folders:
        name, _, folder = arg.partition("=")
        folder = Path(folder)
        files = sorted(folder.glob("*.tflite"))
        if not folder.is_dir() or not files or not (folder / "metadata.json").is_file():
            sys.exit(f"step_ab: {folder} is not a streaming .tflite export folder (a .tflite and metadata.json)")
        st = json.loads((folder / "metadata.json").read_text())["streaming"]
        runner = Interpreter(model_path=str(files[0]), num_threads=a.threads).get_signature_runner()
        state = {s["name"]: np.zeros(s["shape"], np.float32) for s in st["state"]}
        runs[name] = (runner, state, {s["output"]: s["name"] for s in st["state"]}, [], st["inputs"][0]["shape"])
    frame = np.random.default_rng(0).standard_normal(next(iter(runs.values()))[4]).astype(np.float32)
    for rnd in range(a.rounds):
        for name in (list(runs) if rnd % 2 == 0 else list(runs)[::-1]):
            runner, state, back, times, _ = runs[name]
            for i in range(3 + a.steps):
                t0 = time.perf_counter()
                out = runner(frame=frame, **state)
                dt = time.perf_counter() - t0
                state.update({back[k]: v for k, v in out.items() if k in back})
                if i >= 3:
                    times.append(dt * 1e3)
    for name, (_, _, _, t, _) in runs.items():
        print(f"{name}: median {np.median(t):.2f} ms, min {np.min(t):.2f} ms ({len(t)} steps)")


if __name__ == "__main__":
    main()
