"""Streaming export: the frame-by-frame step of a causal model, its state as named inputs/outputs.

``export_model(..., streaming=True)`` (``actionnet-edge export --streaming``) converts
:class:`~actionnet_edge.models.streaming.StreamingActionNet` with each target's ordinary
exporter (a tuple of example inputs plus names, see :mod:`.base`):

    inputs : frame (1, 3, S, S), then every state tensor, named as in ``state_spec``
    outputs: logits (average of the last ``window`` frame logits), frame_logits, then every
             new state tensor as ``<name>_out``

metadata.json carries a ``streaming`` section (inputs, outputs, the state with shapes, zero
initial state, window). :class:`StreamRunner` runs such an artifact in its own runtime and
checks every tensor against that section; :func:`stream_parity` is the export's parity check.
The frame is NCHW. Each 4-D state tensor is in its exporter's ``stream_state_layout`` (the
section's ``layout``): NHWC in a ``.tflite``, whose convolutions LiteRT runs in NHWC (NCHW state
costs two transposes per tensor there), NCHW elsewhere. int8 (and fp16 where the exporter has it)
keeps every state tensor float32 at the artifact's interface: the int8 graph quantizes each state
input after reading it and dequantizes each new state before writing it (the section's
``state_dtype`` and ``state_quantization`` say so), so runners and apps feed back what they got.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ActionNetError
from .base import MultiRunner
from .parity import Thresholds, compare, evaluate

log = logging.getLogger(__name__)

FRAME, LOGITS, FRAME_LOGITS = "frame", "logits", "frame_logits"
OUT = "_out"  # suffix of a new-state output
DEFAULT_PARITY_CLIPS = 8  # parity runs these clips' frames (8 x T) as one stream
#: how the state crosses the artifact's interface, per precision (metadata.json's ``state_quantization``)
STATE_QUANT = {"int8": "inside the graph: each state input is quantized to int8 (per-tensor scale and zero "
                       "point of the graph) after it is read, each new state dequantized before it is written; "
                       "feed back the float32 outputs unchanged",
               "fp16": "float32 at the interface; fp16 weights dequantized to float32 in the graph"}


def load_stream_source(checkpoint: str | Path | None, window: int | None):
    """(checkpoint, its StreamingActionNet, QAT state or None) of a causal checkpoint, float or QAT
    (the step then carries the QAT-tuned weights); a clear error otherwise."""
    from ..checkpoint import bundled_checkpoint, load_checkpoint
    from ..models.edge import to_training
    from ..models.streaming import to_streaming
    from ..quant import is_qat_checkpoint, load_qat_checkpoint

    if checkpoint is None and not bundled_checkpoint().is_file():
        raise ActionNetError(f"the bundled model {bundled_checkpoint().name} is not installed; pass --checkpoint CKPT")
    ckpt = load_checkpoint(checkpoint)
    if not ckpt.model.config.get("causal", False):
        raise ActionNetError(f"{ckpt.path.name} is not a causal model: --streaming needs one trained with "
                             "model.causal: true (this one looks at future frames)")
    if not is_qat_checkpoint(ckpt.raw):
        return ckpt, to_streaming(ckpt.model, window), None
    qat = load_qat_checkpoint(ckpt.path)
    try:
        model = to_training(qat.edge_model(), ckpt.model)
    except ActionNetError as e:
        raise ActionNetError(f"{ckpt.path.name}: {e}; re-run 'actionnet-edge qat' with this version") from None
    return ckpt, to_streaming(model, window), qat.state


def io_names(spec: list[tuple[str, tuple[int, ...]]]) -> tuple[list[str], list[str]]:
    """Input and output names of the step for a ``state_spec``."""
    state = [n for n, _ in spec]
    return [FRAME, *state], [LOGITS, FRAME_LOGITS, *(n + OUT for n in state)]


def streaming_section(stream, size: int, precision: str = "fp32") -> dict[str, Any]:
    """The ``streaming`` section of metadata.json for ``stream`` at ``size`` px."""
    spec = stream.state_spec(1, size)
    k = int(stream.config["num_classes"])
    t = _tensor
    lay = stream.state_layout
    state = [t(n, s, output=n + OUT, **({"layout": lay} if len(s) == 4 else {})) for n, s in spec]
    return {
        "window": int(stream.window),
        "inputs": [t(FRAME, (1, 3, size, size), layout="NCHW", meaning="one normalised frame (see preprocess)"),
                   *({k_: v for k_, v in s.items() if k_ != "output"} for s in state)],
        "outputs": [t(LOGITS, (1, k), meaning=f"average of the last {stream.window} frame logits (clip logits)"
                      if stream.window > 1 else "this frame's logits (the model's consensus is the last frame)"),
                    t(FRAME_LOGITS, (1, k), meaning="this frame's logits"),
                    *(t(s["output"], s["shape"], **({"layout": s["layout"]} if "layout" in s else {}),
                        meaning=f"new {s['name']}: feed it back as {s['name']}") for s in state)],
        "state": state,
        "initial_state": "zeros",
        "state_floats": int(sum(np.prod(s) for _, s in spec)),
        "state_dtype": "float32",
        "state_quantization": STATE_QUANT.get(precision, "none: float32 throughout"),
        "usage": "one inference per frame: feed `frame` and the state (all zeros for the first frame); "
                 "feed every `<name>_out` back as `<name>` for the next frame",
    }


def _tensor(name: str, shape, **info) -> dict[str, Any]:
    return {"name": name, "shape": [int(d) for d in shape], "dtype": "float32", **info}


def add_streaming(meta: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """metadata.json of a streaming artifact: ``input``/``output`` describe the frame and logits."""
    meta = dict(meta, streaming=section)
    meta["input"], meta["output"] = section["inputs"][0], section["outputs"][0]
    meta["preprocess"] = meta["preprocess"].replace("`segments` frames sampled uniformly over the clip (TSN)",
                                                    "every frame of the stream, in order")
    return meta


class StreamRunner:
    """A streaming artifact in its own runtime; every tensor is checked against metadata.json."""

    def __init__(self, run: MultiRunner | None, section: dict[str, Any], name: str = "artifact") -> None:
        try:
            self.inputs = [(i["name"], tuple(i["shape"])) for i in section["inputs"]]
            self.outputs = [o["name"] for o in section["outputs"]]
            self.window = int(section["window"])
        except (KeyError, TypeError, ValueError) as e:
            raise ActionNetError(f"{name}: malformed 'streaming' section in metadata.json ({e!r})") from None
        self.run, self.name = run, name

    @classmethod
    def load(cls, exporter, path: Path, section: dict[str, Any]) -> "StreamRunner":
        """Open ``path`` with ``exporter.load_multi`` (raises RuntimeUnavailable)."""
        runner = cls(None, section, Path(path).name)  # checks the section first
        runner.run = exporter.load_multi(Path(path), input_names=[n for n, _ in runner.inputs],
                                         output_names=runner.outputs)
        return runner

    @property
    def state_spec(self) -> list[tuple[str, tuple[int, ...]]]:
        return self.inputs[1:]

    def init_state(self) -> list[np.ndarray]:
        """The zero state that starts a stream."""
        return [np.zeros(shape, np.float32) for _, shape in self.state_spec]

    def step(self, frame: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """One frame (1, 3, S, S): ``(logits, frame_logits, new_state)``."""
        if len(state) != len(self.state_spec):
            raise ActionNetError(f"state has {len(state)} tensors, {self.name} takes {len(self.state_spec)}")
        for (name, shape), x in zip(self.inputs, [frame, *state]):
            if tuple(np.shape(x)) != shape:
                what = "frame" if name == FRAME else f"state tensor '{name}'"
                raise ActionNetError(f"{what} has shape {tuple(np.shape(x))}, expected {shape} "
                                     f"(metadata.json of {self.name})")
        out = self.run([frame, *state])
        return out[0], out[1], list(out[2:])


def stream_parity(run: StreamRunner, stream, clips: torch.Tensor, precision: str, th: Thresholds) -> dict[str, Any]:
    """All frames of ``clips`` (n, T, 3, S, S) in order as ONE stream through the artifact and
    through the PyTorch step ``stream`` (StreamingActionNet, or its converted int8 graph), each fed
    back its own state outputs."""
    n, t = clips.shape[:2]
    frames = clips.reshape(n * t, 1, *clips.shape[2:]).float()
    state_a = run.init_state()
    state_t = [torch.from_numpy(a.copy()) for a in state_a]
    got, ref, state_err, run_s = [], [], 0.0, 0.0
    for x in frames:
        t0 = time.perf_counter()
        logits, frame_logits, state_a = run.step(x.numpy(), state_a)
        run_s += time.perf_counter() - t0
        with torch.no_grad():
            o = stream(x, *state_t)
        state_t = list(o[2:])
        got.append((np.asarray(logits).reshape(-1), np.asarray(frame_logits).reshape(-1)))
        ref.append((o[0].reshape(-1).numpy(), o[1].reshape(-1).numpy()))
        state_err = max(state_err, max(float(np.abs(a - b.numpy()).max()) for a, b in zip(state_a, state_t)))
    (a_l, a_f), (r_l, r_f) = (tuple(np.stack(v) for v in zip(*x)) for x in (got, ref))
    res = evaluate(precision, a_l, r_l, None, th)
    res["frame_logits_vs_float"] = compare(r_f, a_f)
    res["state_max_abs_err"] = state_err
    if precision == "int8":
        ok = res["frame_logits_vs_float"]["sqnr_db"] >= th.min_sqnr_db
        res["checks"][f"frame_logits sqnr_db vs reference >= {th.min_sqnr_db}"] = ok
    else:
        min_cos = th.min_cosine if precision == "fp32" else th.min_cosine_fp16
        res["checks"][f"frame_logits cosine vs float >= {min_cos}"] = res["frame_logits_vs_float"]["cosine"] >= min_cos
    res["failures"] = [k for k, ok in res["checks"].items() if not ok]
    res["passed"] = not res["failures"]
    res.update(clips=int(n), frames=int(n * t), runtime_seconds_per_frame=round(run_s / (n * t), 5),
               stream="the frames of all clips in order as one stream (state carried across clips); the "
                      "artifact fed back its own state outputs, PyTorch's StreamingActionNet its own")
    return res
