"""metadata.json: everything an app needs to feed an exported model and read its output.

Flat keys (``labels``, ``segments``, ``size``, ``resize``, ``mean``, ``std``, ``layout``,
``target``, ``precision``, ``artifact``) are what the demo apps read; ``input``/``output``
describe the tensors, by the names the artifact itself uses (the .tflite signature
``serving_default``, the ONNX graph's and the CoreML model's inputs and outputs; a .pte's are
positional, one input and one output); ``source`` (the checkpoint's sha256 and the export code's, :func:`code_sha256`),
``toolkit_version`` and ``runtime`` say where it came from.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

from .._version import __version__

FORMAT = "actionnet-edge.export/1"
INPUT_NAME, OUTPUT_NAME = "clips", "logits"

#: distributions whose versions matter for an artifact of each target
RUNTIME_DISTS = {
    "executorch": ("torch", "executorch", "torchao"),
    "onnx": ("torch", "onnx", "onnxscript", "onnxruntime"),
    "tflite": ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "onnx2tf", "tensorflow"),
    "coreml": ("torch", "coremltools", "executorch"),
}


#: the package parts whose code decides what an export contains
_CODE_DIRS = ("models", "export", "quant")


@functools.lru_cache(maxsize=1)
def code_sha256() -> str:
    """sha256 of the toolkit's model, export and quantization sources (paths and contents):
    two artifacts of one checkpoint with the same value were built by the same code, which a
    version number does not promise between releases."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(p for d in _CODE_DIRS for p in (root / d).rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def runtime_versions(target: str) -> dict[str, str]:
    """Installed versions of the packages that make and run ``target`` artifacts."""
    out = {}
    for dist in RUNTIME_DISTS.get(target, ("torch",)):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def input_shape(segments: int, size: int, layout: str, batch: int = 1) -> list[int]:
    """The artifact's input shape: (N, T, 3, S, S) for NCHW, (N, T, S, S, 3) for NHWC."""
    return [batch, segments, 3, size, size] if layout == "NCHW" else [batch, segments, size, size, 3]


def build_metadata(*, target: str, precision: str, artifact: str, layout: str, labels: list[str],
                   segments: int, size: int, preprocess: dict[str, Any], model_config: dict[str, Any],
                   checkpoint_name: str, checkpoint_sha256: str, quantization: dict[str, Any] | None = None,
                   batch: int = 1) -> dict[str, Any]:
    """The metadata dict written as metadata.json and embedded in the artifact where possible."""
    resize = int(preprocess.get("resize") or round(size * 256 / 224))
    return {
        "format": FORMAT,
        "toolkit_version": __version__,
        "target": target,
        "precision": precision,
        "artifact": artifact,
        "labels": list(labels),
        "num_classes": len(labels),
        "segments": int(segments),
        "size": int(size),
        "resize": resize,
        "mean": [float(v) for v in preprocess["mean"]],
        "std": [float(v) for v in preprocess["std"]],
        "layout": layout,
        "preprocess": ("RGB in 0..1; shorter side resized to `resize`, centre crop `size`; "
                       "(x - mean) / std; `segments` frames sampled uniformly over the clip (TSN)"),
        "input": {"name": INPUT_NAME, "shape": input_shape(segments, size, layout, batch), "dtype": "float32",
                  "layout": layout},
        "output": {"name": OUTPUT_NAME, "shape": [batch, len(labels)], "dtype": "float32",
                   "meaning": "clip logits (softmax for probabilities), index = label id"},
        "model": dict(model_config),
        "quantization": quantization,
        "source": {"checkpoint": checkpoint_name, "sha256": checkpoint_sha256, "code_sha256": code_sha256()},
        "runtime": runtime_versions(target),
    }
