"""Test vectors beside every exported artifact: inputs, reference outputs and the tolerances.

An export folder gets two files (named in metadata.json's ``vectors`` section):

- ``vectors.bin``: raw little-endian float32 tensors, one after the other;
- ``vectors.json``: where each tensor is in it (``offset`` in bytes, ``shape``) and what it is,
  the references and the tolerances that ``actionnet-edge verify`` applies.

Tensors: ``input`` ((n, *the artifact's input shape), in the artifact's own layout, so an app or
a browser feeds each row as it is); ``pytorch`` (the PyTorch model parity compared with: the
float model, or the fake-quantized QAT model); for int8 also ``quantized_pytorch`` (the
converted PT2E model); ``host_runtime`` (the artifact in its own runtime on the exporting
machine, absent when that runtime cannot run there). Each output is (n, 1, K) logits. A
streaming step (``kind: stream``) stores ``n`` frames of one stream instead of clips, fed from
the zero state with each step's new state fed back, and ``*_frame_logits`` beside each logits.

JSON + raw float32 reads everywhere (a browser's ``Float32Array``, a Kotlin ``ByteBuffer`` in
little-endian order, Swift's ``Data``) without a NumPy or flatbuffer reader. ExecuTorch's
BundledProgram was not used: its ``.bpte`` wraps the program so that the app's runtime no longer
loads it as a ``.pte`` and it holds one expected output checked by ``allclose`` only (no second
reference, no cosine / SQNR / top-1, no state fed back), and the aarch64 runtime libraries on PyPI
do not ship its loader.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ActionNetError
from .base import RuntimeUnavailable, to_layout
from .parity import Thresholds

log = logging.getLogger(__name__)

FORMAT = "actionnet-edge.vectors/1"
JSON_NAME, BIN_NAME = "vectors.json", "vectors.bin"
VECTOR_CLIPS = 4  # clips per artifact, picked from twice as many (the clearest top-1 first)
STREAM_CLIPS = 2  # a streaming step's vectors: the frames of this many clips as one stream
#: the device's runtime against the host's (same artifact, same runtime, other CPU): max abs logit
#: error <= HOST_RTOL[precision] * max(1, max |host logit|), and the same top-1 on every vector.
#: int8: a runtime's kernels on another CPU may round a requantization the other way; onnxruntime-web's
#: WebAssembly int8 step differs from x86 ONNX Runtime's by 2 steps of the logits' int8 scale (0.249
#: at max |logit| 11.6: 2.2% of it; docs/verify.md)
HOST_RTOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": 4e-2}


@dataclass
class Vectors:
    """Read-back vectors: the JSON document and every tensor by name."""

    meta: dict[str, Any]
    tensors: dict[str, np.ndarray]

    @property
    def stream(self) -> bool:
        return self.meta["kind"] == "stream"


def _torch_logits(model, clips: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.stack([model(c[None]).reshape(1, -1) for c in clips]).float().numpy()


def _clearest(model, clips: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` clips whose reference top-1 is clearest (largest gap to the runner-up), in order:
    a near tie would flip on rounding noise and make top-1 agreement a coin toss."""
    keep = np.sort(np.argsort(-top1_margins(_torch_logits(model, clips)))[:n])
    return clips[torch.from_numpy(keep)]


def top1_margins(logits: np.ndarray) -> np.ndarray:
    """Each row's gap between its top-1 and runner-up logit."""
    top2 = np.sort(logits.reshape(len(logits), -1), axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def _clearest_stream(stream, clips: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames (n * T, 1, 3, S, S) of ``n`` of ``clips`` as one stream from zero state, with the
    stream's (logits, frame_logits): each clip picked in turn, from the state the clips before it
    left, as the one whose frames have the largest smallest top-1 gap (a stream's first frames see
    little, and a near tie there flips on int8 rounding)."""
    frames = clips.float().numpy()[:, :, None]  # (N, T, 1, 3, S, S)
    state, picked, outs = None, [], []
    for _ in range(min(n, len(clips))):
        runs = {i: _torch_stream(stream, frames[i], state) for i in range(len(clips)) if i not in picked}
        best = max(runs, key=lambda i: top1_margins(runs[i][0]).min())
        picked.append(best)
        outs.append(runs[best][:2])
        state = runs[best][2]
    return (np.concatenate([frames[i] for i in picked]), np.concatenate([o[0] for o in outs]),
            np.concatenate([o[1] for o in outs]))


def _stream_outputs(step, frames, state) -> tuple[np.ndarray, np.ndarray, list]:
    """(logits, frame_logits) (n, 1, K) of ``step(frame, state) -> (logits, frame_logits, state)``,
    and the state after the last frame."""
    got = []
    for x in frames:
        logits, frame_logits, state = step(x, state)
        got.append((np.asarray(logits, np.float32).reshape(1, -1), np.asarray(frame_logits, np.float32).reshape(1, -1)))
    return np.stack([g[0] for g in got]), np.stack([g[1] for g in got]), state


def _torch_stream(stream, frames: np.ndarray, state: list | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """The PyTorch step's outputs over ``frames`` from ``state`` (None: the zero state), and its state after."""
    def step(x, state):
        with torch.no_grad():
            o = stream(torch.from_numpy(x), *state)
        return o[0].numpy(), o[1].numpy(), list(o[2:])

    return _stream_outputs(step, frames, stream.init_state(1, tuple(frames.shape[-2:])) if state is None else state)


def _host_outputs(exporter, artifact: Path, layout: str, section, clips: np.ndarray) -> dict[str, np.ndarray]:
    """The artifact's outputs in its own runtime here; {} when that runtime cannot run here (or
    ``exporter`` is None: the export was not to run it)."""
    from .streaming import StreamRunner

    if exporter is None:
        return {}

    try:
        if section is not None:
            run = StreamRunner.load(exporter, artifact, section)
            logits, frame_logits, _ = _stream_outputs(run.step, clips, run.init_state())
            return {"host_runtime": logits, "host_runtime_frame_logits": frame_logits}
        return {"host_runtime": exporter.load(artifact, layout=layout)(clips)[:, None]}
    except RuntimeUnavailable as e:
        log.warning("test vectors without the host runtime's outputs: %s", e)
        return {}


def write_vectors(folder: Path, exporter, artifact: Path, meta: dict[str, Any], th: Thresholds, reference,
                  quantized, stream, clips: torch.Tensor) -> dict[str, Any]:
    """Write vectors.json/.bin into ``folder`` for ``artifact``; returns metadata.json's ``vectors`` section.

    ``exporter``: the target's exporter (None: no host runtime outputs, as with ``--no-verify``);
    ``reference``: the PyTorch model parity used; ``quantized``: the converted int8 model or None;
    ``stream``: the StreamingActionNet of a streaming export or None; ``clips``: candidate clips
    (N, T, 3, S, S), of which the clearest :data:`VECTOR_CLIPS` (a stream: the first
    :data:`STREAM_CLIPS` clearest clips' frames as one stream) become the vectors.
    """
    precision, layout, section = meta["precision"], meta["layout"], meta.get("streaming")
    if stream is not None:
        x, logits, frame_logits = _clearest_stream(stream, clips, STREAM_CLIPS)
        tensors = {"input": x, "pytorch": logits, "pytorch_frame_logits": frame_logits}
        tensors.update(_host_outputs(exporter, artifact, layout, section, x))
    else:
        picked = _clearest(reference, clips, VECTOR_CLIPS)
        tensors = {"input": to_layout(picked.numpy().astype(np.float32), layout)[:, None],
                   "pytorch": _torch_logits(reference, picked)}
        if quantized is not None:
            tensors["quantized_pytorch"] = _torch_logits(quantized, picked)
        tensors.update(_host_outputs(exporter, artifact, layout, None, picked.numpy().astype(np.float32)))
    doc = _document(meta, th, tensors, stream is not None)
    data = b"".join(np.ascontiguousarray(v, dtype="<f4").tobytes() for v in tensors.values())
    (folder / BIN_NAME).write_bytes(data)
    (folder / JSON_NAME).write_text(json.dumps(doc, indent=2))
    log.info("wrote %d test vectors (%s) beside %s", doc["count"], ", ".join(tensors), artifact.name)
    return {"file": JSON_NAME, "data": BIN_NAME, "format": FORMAT, "count": doc["count"], "kind": doc["kind"]}


def _document(meta: dict[str, Any], th: Thresholds, tensors: dict[str, np.ndarray], stream: bool) -> dict[str, Any]:
    table, offset = [], 0
    for name, v in tensors.items():
        table.append({"name": name, "offset": offset, "shape": [int(d) for d in v.shape]})
        offset += int(v.size) * 4
    return {
        "format": FORMAT, "artifact": meta["artifact"], "target": meta["target"], "precision": meta["precision"],
        "layout": meta["layout"], "kind": "stream" if stream else "clips", "count": int(tensors["input"].shape[0]),
        "data": BIN_NAME, "dtype": "float32", "byte_order": "little", "tensors": table,
        "references": {"pytorch": "the PyTorch model the export's parity check compared with",
                       "quantized_pytorch": "the converted int8 PyTorch model (int8 only)",
                       "host_runtime": "the artifact in its own runtime on the exporting machine "
                                       f"({', '.join(f'{k} {v}' for k, v in meta.get('runtime', {}).items())})"},
        "tolerances": {**th.to_dict(), "host_rtol": HOST_RTOL[meta["precision"]]},
        "checks": "vs pytorch: the export's parity checks (fp32/fp16: cosine and top-1 agreement; int8: SQNR and "
                  "top-1 agreement); vs host_runtime: max abs error <= host_rtol * max(1, max |host logit|) and "
                  "the same top-1 on every vector",
        "usage": ("feed input[i] (one frame) with the state (zeros at i = 0, then each step's new state) and "
                  "compare the outputs with pytorch[i] / host_runtime[i]" if stream else
                  "feed input[i] (one clip, batch 1) and compare the logits with pytorch[i] / host_runtime[i]"),
    }


def read_vectors(folder: str | Path) -> Vectors:
    """The vectors of an export folder; a one-line error when missing or malformed."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / JSON_NAME).read_text())
        raw = (folder / meta.get("data", BIN_NAME)).read_bytes()
    except FileNotFoundError as e:
        raise ActionNetError(f"{folder} has no test vectors ({Path(e.filename).name} missing): re-export it "
                             "with this version of actionnet-edge") from None
    except (OSError, ValueError) as e:
        raise ActionNetError(f"{folder / JSON_NAME} is not readable ({e})") from None
    if meta.get("format") != FORMAT:
        raise ActionNetError(f"{folder / JSON_NAME}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = {}
    for t in meta.get("tensors", []):
        n = int(np.prod(t["shape"]))
        if t["offset"] + 4 * n > len(raw):
            raise ActionNetError(f"{folder / BIN_NAME} is too short for tensor '{t['name']}'")
        tensors[t["name"]] = np.frombuffer(raw, "<f4", n, t["offset"]).reshape(t["shape"]).astype(np.float32)
    if "input" not in tensors or "pytorch" not in tensors:
        raise ActionNetError(f"{folder / JSON_NAME} lacks the 'input' or 'pytorch' tensor")
    return Vectors(meta, tensors)
