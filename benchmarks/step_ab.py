"""In-process, interleaved A/B of streaming-step ``.tflite`` exports in LiteRT.

Each NAME=FOLDER is an ``export --streaming --target tflite`` folder (its metadata.json lists the
state); every file runs its own stream from zero state, its state outputs fed back as the next
step's inputs, the files taking turns by rounds (every other round in reverse order), on one
random frame, after 3 warm-up steps each (benchmarks/_variants.interleaved). The median and\nthe minimum step time per file.

    python benchmarks/step_ab.py old=/tmp/stream/work/artifacts/action-tflite-fp32-t8-s224-streaming \\
        new=/tmp/stream/work5/artifacts/action-tflite-fp32-t8-s224-streaming --rounds 40
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _variants import interleaved, print_overhead


def stepper(folder: Path, threads: int, frame: np.ndarray | None):
    """One streaming step of the folder's .tflite per call, its state outputs fed back; and its frame."""
    from ai_edge_litert.interpreter import Interpreter

    files = sorted(folder.glob("*.tflite"))
    if not folder.is_dir() or not files or not (folder / "metadata.json").is_file():
        sys.exit(f"step_ab: {folder} is not a streaming .tflite export folder (a .tflite and metadata.json)")
    st = json.loads((folder / "metadata.json").read_text())["streaming"]
    runner = Interpreter(model_path=str(files[0]), num_threads=threads).get_signature_runner()
    state = {s["name"]: np.zeros(s["shape"], np.float32) for s in st["state"]}
    back = {s["output"]: s["name"] for s in st["state"]}
    if frame is None:
        frame = np.random.default_rng(0).standard_normal(st["inputs"][0]["shape"]).astype(np.float32)

    def step() -> None:
        out = runner(frame=frame, **state)
        state.update({back[k]: v for k, v in out.items() if k in back})

    return step, frame


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", metavar="NAME=FOLDER")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps per file and round")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    calls, frame = {}, None
    for arg in a.folders:
        name, _, folder = arg.partition("=")
        calls[name], frame = stepper(Path(folder), a.threads, frame)
    print_overhead(interleaved(calls, a.rounds, a.steps, warmup=3))


if __name__ == "__main__":
    main()
