#!/usr/bin/env python
"""Write the golden files the Android and iOS apps' unit tests check their mirror against.

The apps keep preprocessing, the sliding window and smoothing in one small class
(``GestureWindow`` in Kotlin and Swift) that mirrors :class:`actionnet_edge.demo.window.SlidingWindow`.
This script runs the Python reference on a few deterministic cases and writes, per case,
into ``tests/golden/`` (raw little-endian arrays, so no parser is needed beyond JSON):

* ``<case>.metadata.json``   the metadata.json an export writes (export.metadata.build_metadata)
* ``<case>.frames.u8``       uint8 (N, H, W, 3) RGB input frames, made by an integer formula
* ``<case>.preprocessed.f32`` float32 (kept, 3, size, size): every frame the window kept, preprocessed
* ``<case>.logits.f32``      float32 (clips, K): the logits sequence fed to the smoother, one row per full window
* ``<case>.scores.f32``      float32 (clips, K): the smoothed probabilities after each row
* ``cases.json``             shapes, stride, alpha, which pushes returned "ready", the frames of every clip, top-3

Usage: ``python scripts/make_golden.py [--out tests/golden]``; ``tests/test_golden.py``
checks that the reference still reproduces the committed files.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from actionnet_edge.demo.window import SlidingWindow, read_metadata
from actionnet_edge.export.metadata import build_metadata

log = logging.getLogger("make_golden")

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
BNINCEPTION = ([128 / 255, 117 / 255, 104 / 255], [1 / 255, 1 / 255, 1 / 255])
LABELS = ["swipe left", "swipe right", "thumb up", "stop sign", "no gesture"]

#: name -> frames (N, H, W), metadata (as an export writes it), stride, alpha
CASES: dict[str, dict[str, Any]] = {
    # landscape frames scaled down and centre-cropped; every frame kept; default smoothing
    "landscape": dict(frames=(6, 30, 40), stride=1, alpha=0.5,
                      meta=dict(segments=4, size=16, resize=18, mean=IMAGENET[0], std=IMAGENET[1])),
    # portrait frames, every 2nd frame kept, resize left to its default, BN-Inception normalisation
    "portrait_stride2": dict(frames=(11, 44, 26), stride=2, alpha=0.8,
                             meta=dict(segments=3, size=16, mean=BNINCEPTION[0], std=BNINCEPTION[1])),
    # no scaling (resize = shorter side): preprocessing is an exact crop; no smoothing
    "crop_only": dict(frames=(3, 16, 20), stride=1, alpha=0.0,
                      meta=dict(segments=2, size=16, resize=16, mean=IMAGENET[0], std=IMAGENET[1])),
}


def synth_frames(n: int, h: int, w: int) -> np.ndarray:
    """uint8 (n, h, w, 3): a gradient, a bright square moving right, and hashed noise.
    Pure integer arithmetic, so every platform can rebuild the same bytes."""
    t, y, x, c = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    v = (x * 255 // max(w - 1, 1) + y * 97 // max(h - 1, 1) + c * 40) % 256
    noise = ((x * 73856093) ^ (y * 19349663) ^ (t * 83492791) ^ (c * 2654435761)) % 61 - 30
    side = max(2, min(h, w) // 3)
    x0 = t * max(1, (w - side) // max(n - 1, 1))
    y0 = (h - side) // 2
    square = (x >= x0) & (x < x0 + side) & (y >= y0) & (y < y0 + side)
    v = np.where(square, 230 - c * 60, v) + noise
    return np.clip(v, 0, 255).astype(np.uint8)


def synth_logits(clips: int, k: int) -> np.ndarray:
    """float32 (clips, k): a logits sequence whose winner changes over time."""
    i, j = np.meshgrid(np.arange(clips), np.arange(k), indexing="ij")
    return (3.0 * np.sin(1.3 * i + 0.7 * j + 0.25) + 0.5 * j * (i % 2)).astype(np.float32)


def export_metadata(m: dict[str, Any]) -> dict[str, Any]:
    """A metadata.json exactly as ``actionnet-edge export`` writes it (nested keys included),
    with the machine-dependent fields fixed; a case without ``resize`` has the key removed
    so the mirrors' default (round-half-up(size * 256 / 224)) is exercised."""
    meta = build_metadata(
        target="tflite", precision="fp32", artifact="model.tflite", layout="NCHW", labels=LABELS,
        segments=m["segments"], size=m["size"], preprocess={k: m[k] for k in ("resize", "mean", "std") if k in m},
        model_config={"arch": "mobilenet_v2", "temporal": "action", "num_segments": m["segments"],
                      "num_classes": len(LABELS), "width_mult": 1.0, "dropout": 0.5},
        checkpoint_name="golden.pt", checkpoint_sha256="0" * 64)
    meta["toolkit_version"], meta["runtime"] = "golden", {}
    del meta["source"]["code_sha256"]  # changes with every code edit; the golden files must not
    if "resize" not in m:
        del meta["resize"]
    return meta


def run_case(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the reference window on one case; returns metadata, arrays and the manifest entry."""
    meta = export_metadata(spec["meta"])
    frames = synth_frames(*spec["frames"])
    win = SlidingWindow.from_metadata(meta, stride=spec["stride"], alpha=spec["alpha"])
    ready, clips, scores, top3 = [], [], [], []
    kept_frames: list[np.ndarray] = []
    for f in frames:
        r = win.push(f)
        ready.append(bool(r))
        if (win.seen - 1) % win.stride == 0:  # the frame was kept
            kept_frames.append(win.frames[-1])
        if r:
            clip = win.clip()
            window = list(range(len(kept_frames) - win.segments, len(kept_frames)))
            assert np.array_equal(clip[0], np.stack([kept_frames[i] for i in window]))
            clips.append(window)
    logits = synth_logits(len(clips), len(LABELS))
    for row in logits:
        scores.append(win.update(row).astype(np.float32))
        top3.append([[label, round(p, 6)] for label, p in win.top(3)])
    pre = np.stack(kept_frames).astype(np.float32)
    arrays = {
        "frames.u8": frames,
        "preprocessed.f32": pre,
        "logits.f32": logits,
        "scores.f32": np.stack(scores),
    }
    entry = {
        "name": name,
        "metadata": f"{name}.metadata.json",
        "stride": spec["stride"],
        "alpha": spec["alpha"],
        "ready": ready,
        "clips": clips,
        "top3": top3,
        "arrays": {k: {"file": f"{name}.{k}", "dtype": "uint8" if k.endswith("u8") else "float32le",
                       "shape": list(v.shape)} for k, v in arrays.items()},
    }
    return {"meta": meta, "arrays": arrays, "entry": entry}


def generate() -> dict[str, Any]:
    """All cases in memory: {name: run_case(...)}."""
    return {name: run_case(name, spec) for name, spec in CASES.items()}


def write(out: Path) -> None:
    """Write the golden files into ``out`` (built in a temporary folder, then moved in)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = {"format": "actionnet-edge.golden/1",
                    "reference": "actionnet_edge.demo.window.SlidingWindow",
                    "tolerance": {"preprocessed": 1e-4, "scores": 1e-6},
                    "cases": []}
        for name, case in generate().items():
            (tmp / case["entry"]["metadata"]).write_text(json.dumps(case["meta"], indent=2) + "\n")
            read_metadata_check(tmp / case["entry"]["metadata"])
            for key, arr in case["arrays"].items():
                arr = arr.astype("<f4") if arr.dtype == np.float32 else arr
                (tmp / case["entry"]["arrays"][key]["file"]).write_bytes(np.ascontiguousarray(arr).tobytes())
            manifest["cases"].append(case["entry"])
        (tmp / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            keep = out / "README.md"
            if keep.exists():
                shutil.copy2(keep, tmp / "README.md")
            shutil.rmtree(out)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d cases to %s", len(CASES), out)


def read_metadata_check(path: Path) -> None:
    """The metadata we write must pass the demos' own validation."""
    d = Path(tempfile.mkdtemp())
    try:
        shutil.copy(path, d / "metadata.json")
        read_metadata(d)
    finally:
        shutil.rmtree(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=GOLDEN, help="folder to write (default: tests/golden)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(name)s: %(message)s")
    write(args.out)


if __name__ == "__main__":
    main()
