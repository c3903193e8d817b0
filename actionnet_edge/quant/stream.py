"""int8 of the streaming step (``StreamingActionNet``): PT2E on ``(frame, *state)``, calibrated on streams.

The step is exported with its static example (batch 1, every state tensor a float32 input),
annotated by the backend's quantizer and calibrated by running synthetic (or given) clips'
frames in order as one stream, each step fed back its own state outputs, so the observers see
the state a deployed stream carries. The state stays float32 at the graph's inputs and
outputs: the quantizer puts a quantize right after each state input and a dequantize before
each state output, so an app feeds back what it got, as with the fp32 step.

From a QAT checkpoint the step carries the QAT-tuned weights (tied in time, see
:mod:`.pt2e`); its activation ranges are calibrated on streams with the same min/max observers
(the clip graph's ranges do not map one to one onto the step's ops, and QAT's moving-average
fake quantization, seeded by a stream's first zero-state frames, barely moves in a short
calibration). The converted graph is that fake quantization in integers: the parity reference.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterable

import torch
from torch import nn

from ..compat import align_same_scale_ranges, litert_patterns_as_modules
from .pt2e import convert, freeze_observers, set_qat_mode
from .quantizers import make_quantizer

log = logging.getLogger(__name__)

__all__ = ["prepare_step", "calibrate_step", "quantize_step", "run_stream"]


def prepare_step(step: nn.Module, backend: str, example: tuple[torch.Tensor, ...], *,
                 per_channel: bool = True) -> torch.fx.GraphModule:
    """Export the step with its static example and insert the backend's min/max observers."""
    from torch.export import export
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = make_quantizer(backend, qat=False, per_channel=per_channel)
    gm = export(step.eval(), tuple(example), strict=False).module()
    patterns = litert_patterns_as_modules() if backend == "litert" else contextlib.nullcontext()
    with patterns:
        prepared = prepare_pt2e(gm, quantizer)
    allow_exported_model_train_eval(prepared)
    prepared.eval()
    return prepared


@torch.no_grad()
def run_stream(step: nn.Module, frames: Iterable[torch.Tensor], state: list[torch.Tensor]) -> list[torch.Tensor]:
    """Frames (1, 3, S, S) in order through ``step``, each fed back its own state; returns the last state."""
    for x in frames:
        out = step(x, *state)
        state = list(out[2:])
    return state


@torch.no_grad()
def calibrate_step(prepared: torch.fx.GraphModule, clips: torch.Tensor, init_state: list[torch.Tensor]) -> int:
    """Observers on, the frames of ``clips`` (n, T, 3, S, S) as one stream from ``init_state``; returns frames seen."""
    set_qat_mode(prepared, False)
    freeze_observers(prepared, False)
    frames = clips.reshape(-1, 1, *clips.shape[2:]).float()
    run_stream(prepared, frames, list(init_state))
    freeze_observers(prepared, True)
    return int(frames.shape[0])


def quantize_step(step: nn.Module, backend: str, clips: torch.Tensor, *, per_channel: bool = True) -> torch.fx.GraphModule:
    """The converted int8 step for ``backend`` (PyTorch's int8 reference graph, what the exporters
    lower and what parity compares with), calibrated on ``clips``' frames as one stream."""
    s = tuple(clips.shape[-2:])
    init = step.init_state(1, s)
    prepared = prepare_step(step, backend, (torch.zeros(1, 3, *s), *init), per_channel=per_channel)
    n = calibrate_step(prepared, clips, init)
    log.info("streaming step: %s int8 ranges calibrated on %d frames as one stream", backend, n)
    if backend != "litert":
        return convert(prepared)
    converted = convert(prepared, fold_weights=False)  # litert-torch needs the weights' quantize ops
    aligned = align_same_scale_ranges(converted)
    if aligned:
        log.info("litert: %d reshape/transpose/mean outputs requantized with their input's int8 range", aligned)
    return converted
