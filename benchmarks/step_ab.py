"""In-process, interleaved A/B of streaming-step exports (any target) in their own runtimes.

Each NAME=FOLDER is an ``export --streaming`` folder (its metadata.json names the target and
lists the state); every folder's artifact runs its own stream from zero state through the
toolkit's StreamRunner (the runner the exporter's parity check uses), its state outputs fed
back as the next step's inputs, the folders taking turns by rounds (every other round in
reverse order), on one random frame, after 3 warm-up steps each
(benchmarks/_variants.interleaved). The median and the minimum step time per folder. Threads
are the parity runners': LiteRT at 2, ExecuTorch's XNNPACK pool at its default (the cores).

    python benchmarks/step_ab.py old=/tmp/stream/work/artifacts/action-tflite-fp32-t8-s224-streaming \\
        new=/tmp/stream/work5/artifacts/action-tflite-fp32-t8-s224-streaming --rounds 40
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _variants import interleaved, print_overhead

from actionnet_edge.export import get_exporter
from actionnet_edge.export.base import RuntimeUnavailable
from actionnet_edge.export.streaming import StreamRunner


def stepper(folder: Path, frame: np.ndarray | None):
    """One streaming step of the folder's artifact per call, its state outputs fed back; and its frame."""
    meta_file = folder / "metadata.json"
    if not meta_file.is_file():
        sys.exit(f"step_ab: {folder} is not an export folder (no metadata.json)")
    meta = json.loads(meta_file.read_text())
    if "streaming" not in meta:
        sys.exit(f"step_ab: {folder} is not a streaming export (metadata.json has no 'streaming' section)")
    exporter = get_exporter(meta["target"])
    artifact = folder / meta["artifact"]
    try:
        run = StreamRunner.load(exporter, artifact, meta["streaming"])
    except RuntimeUnavailable as e:
        sys.exit(f"step_ab: {artifact}: {e}")
    state = run.init_state()
    if frame is None:
        frame = np.random.default_rng(0).standard_normal(run.inputs[0][1]).astype(np.float32)

    def step() -> None:
        nonlocal state
        state = run.step(frame, state)[2]

    return step, frame


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", metavar="NAME=FOLDER")
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="timed steps per folder and round")
    a = p.parse_args()
    calls, frame = {}, None
    for arg in a.folders:
        name, _, folder = arg.partition("=")
        calls[name], frame = stepper(Path(folder), frame)
    print_overhead(interleaved(calls, a.rounds, a.steps, warmup=3))


if __name__ == "__main__":
    main()
