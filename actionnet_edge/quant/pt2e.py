"""The PT2E steps: prepare (export + quantizer), calibrate, train/eval switches, convert, quantize.

Flow (torchao's PT2E): ``torch.export`` the edge form (:func:`~actionnet_edge.models.edge.to_edge`)
-> the backend's quantizer annotates the graph -> ``prepare_qat_pt2e`` (fake quantization, trained
with the one training loop, :mod:`.qat`) or ``prepare_pt2e`` (observers, calibrated on clips) ->
``convert_pt2e`` -> an int8 reference model that the exporters lower.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from functools import partial
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..compat import align_same_scale_ranges, litert_patterns_as_modules
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ActionNetError
from ..models.edge import EdgeCE, EdgeSTE, band_positions
from ..progress import progress
from .checkpoints import check_qat_state
from .quantizers import make_quantizer

log = logging.getLogger(__name__)

__all__ = ["prepare", "calibrate", "convert", "quantize", "freeze_observers", "set_qat_mode", "fake_quant_model",
           "load_prepared", "check_qat_backend"]


def _band_hooks(model: nn.Module) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Gradient hooks that keep the edge form's banded temporal weights what the training form's
    kernels make: zero off the band, and every block of one tap tied (its gradient the sum over
    the frame pairs, the training-form kernel's own), so a QAT model keeps a training and a
    streaming form. STE's channel mean stays a mean."""
    hooks: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (EdgeSTE, EdgeCE)):
            attr = "conv" if isinstance(m, EdgeSTE) else "temporal"
            hooks[f"{name}.{attr}.weight"] = partial(_tie_band, t=m.t, first=m.tap_offset)
            if isinstance(m, EdgeSTE):
                hooks[f"{name}.mean.weight"] = torch.zeros_like
    return hooks


def _tie_band(grad: torch.Tensor, t: int, first: int) -> torch.Tensor:
    """A block-banded (T*r, T*r, ...) weight's gradient: each tap's blocks summed and shared, zero off the band."""
    r = grad.shape[0] // t
    g = grad.reshape(t, r, t, r, *grad.shape[2:])
    out = torch.zeros_like(g)
    for k in range(first, first + 3):
        pairs = band_positions(t, k)
        if pairs:
            total = sum(g[a, :, b] for a, b in pairs)
            for a, b in pairs:
                out[a, :, b] = total
    return out.reshape(grad.shape)


def prepare(model_edge: nn.Module, backend: str, example: torch.Tensor, *, qat: bool,
            per_channel: bool = True) -> torch.fx.GraphModule:
    """Export ``model_edge`` (dynamic batch) and insert the backend's fake-quant (QAT) or observers (PTQ)."""
    from torch.export import Dim, export
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    quantizer = make_quantizer(backend, qat=qat, per_channel=per_channel)
    model_edge = model_edge.eval()
    hooks = _band_hooks(model_edge) if qat else {}
    example = example[:1].expand(2, *example.shape[1:]).contiguous()  # batch 2: a dynamic batch dim
    gm = export(model_edge, (example,), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},)).module()
    patterns = litert_patterns_as_modules() if backend == "litert" else contextlib.nullcontext()
    with patterns:
        prepared = prepare_qat_pt2e(gm, quantizer) if qat else prepare_pt2e(gm, quantizer)
    allow_exported_model_train_eval(prepared)
    params = dict(prepared.named_parameters())
    for name, hook in hooks.items():
        p = params.get(name)
        if p is not None and p.requires_grad:
            p.register_hook(hook)
    prepared.eval()
    return prepared


def freeze_observers(prepared: nn.Module, frozen: bool = True) -> None:
    """Stop (or restart) the observers updating the quantization ranges."""
    from torchao.quantization.pt2e import disable_observer, enable_observer

    prepared.apply(disable_observer if frozen else enable_observer)


def set_qat_mode(prepared: torch.fx.GraphModule, training: bool, *, bn_frozen: bool = False,
                 observers_frozen: bool = False) -> None:
    """Train/eval switch for a prepared graph: BN in training form only while training and not
    frozen; observers only update while training (never on validation clips) and not frozen."""
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    if training and not bn_frozen:
        move_exported_model_to_train(prepared)
    else:
        move_exported_model_to_eval(prepared)
    freeze_observers(prepared, frozen=not training or observers_frozen)


@torch.no_grad()
def calibrate(prepared: torch.fx.GraphModule, clips: Iterable[torch.Tensor], max_batches: int | None = None) -> int:
    """Run clips through the prepared graph with observers on; returns the number of clips seen."""
    set_qat_mode(prepared, False)
    freeze_observers(prepared, False)
    seen, total = 0, _batches(clips, max_batches)
    with progress(total, "calibrate", unit="batch") as bar:
        for i, x in enumerate(clips):
            if max_batches is not None and i >= max_batches:
                break
            if isinstance(x, dict):
                x = x["clips"]
            prepared(x)
            seen += int(x.shape[0])
            bar.update(1)
    freeze_observers(prepared, True)
    return seen


def _batches(clips: Iterable, max_batches: int | None) -> int | None:
    """How many batches :func:`calibrate` will run, where it can be known up front."""
    n = len(clips) if hasattr(clips, "__len__") else None
    return n if max_batches is None else max_batches if n is None else min(n, max_batches)


def convert(prepared: torch.fx.GraphModule, *, fold_weights: bool = True) -> torch.fx.GraphModule:
    """Fake quantization -> the int8 reference graph (quantize/dequantize around the weights,
    stored as int8 when ``fold_weights``, else as float with a quantize op; same numbers)."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    move_exported_model_to_eval(prepared)
    freeze_observers(prepared, True)
    converted = convert_pt2e(prepared, fold_quantize=fold_weights)
    allow_exported_model_train_eval(converted)  # .eval() works (exporters wrap it in modules)
    converted.eval()
    converted.training = False  # torchao's eval() moves the ops to eval form but leaves the flag
    return converted


def _synthetic_calibration(model_edge: nn.Module, example: torch.Tensor, n: int = 32) -> list[torch.Tensor]:
    """Procedural gesture clips at the example's shape, normalised like the model expects."""
    from ..data.synth import SyntheticGestures

    _, t, _, s, _ = example.shape
    mean = getattr(model_edge, "mean", IMAGENET_MEAN)
    std = getattr(model_edge, "std", IMAGENET_STD)
    ds = SyntheticGestures("val", segments=t, size=s, mean=mean, std=std, n=n, seed=1234)
    clips = torch.stack([ds[i].clip for i in range(min(n, len(ds)))])
    return list(clips.split(8))


def quantize(model_edge: nn.Module, backend: str, *, calib: Iterable[torch.Tensor] | None = None,
             qat_state: dict[str, Any] | None = None, example: torch.Tensor | None = None,
             per_channel: bool = True) -> torch.fx.GraphModule:
    """The converted int8 PT2E model of ``model_edge`` for ``backend``.

    With ``qat_state`` (``QATCheckpoint.state``) the QAT graph is rebuilt and its trained
    weights and ranges restored; otherwise this is post-training quantization calibrated on
    ``calib`` (clip batches), or on generated synthetic clips when ``calib`` is None, and a
    warning says so.
    """
    if qat_state is not None:
        prepared = _prepared_from_qat(model_edge, backend, qat_state)
    else:
        batches = list(calib) if calib is not None else None
        if example is None:
            if batches:
                example = batches[0][:1]
            else:
                raise ActionNetError("post-training quantization needs an example clip or calibration clips")
        if not batches:
            batches = _synthetic_calibration(model_edge, example)
            source = "generated synthetic clips"
        else:
            source = "the given clips"
        prepared = prepare(model_edge, backend, example, qat=False, per_channel=per_channel)
        n = calibrate(prepared, batches)
        log.info("no QAT checkpoint: post-training int8 quantization (%s quantizer) calibrated on %d clips of %s",
                    backend, n, source)
    if backend != "litert":
        return convert(prepared)
    converted = convert(prepared, fold_weights=False)  # litert-torch needs the weights' quantize ops
    aligned = align_same_scale_ranges(converted)
    if aligned:
        log.info("litert: %d reshape/transpose/mean outputs requantized with their input's int8 range (LiteRT "
                 "needs one scale across them; QAT's observers on the two sides drift apart)", aligned)
    return converted


def _prepared_from_qat(model_edge: nn.Module, backend: str, qat_state: dict[str, Any]) -> torch.fx.GraphModule:
    """The QAT graph of ``model_edge`` rebuilt for ``backend``, with ``qat_state``'s weights and ranges."""
    check_qat_state(qat_state)
    check_qat_backend(qat_state, backend)
    prepared = prepare(model_edge, backend, torch.zeros(tuple(qat_state["input_shape"])), qat=True,
                       per_channel=bool(qat_state.get("per_channel", True)))
    load_prepared(prepared, qat_state["state_dict"])
    return prepared


def check_qat_backend(qat_state: dict[str, Any], backend: str) -> None:
    """A QAT state is exported only with the quantizer it was trained for; one line otherwise."""
    if qat_state["backend"] != backend:
        raise ActionNetError(f"this QAT checkpoint was trained for the {qat_state['backend']} quantizer, not "
                             f"{backend}: export it to a target using {qat_state['backend']} or re-run "
                             f"'actionnet-edge qat --backend {backend}'")


def fake_quant_model(model_edge: nn.Module, backend: str, qat_state: dict[str, Any]) -> torch.fx.GraphModule:
    """The QAT graph in eval mode, fake-quantizing weights and activations: the model QAT trained
    and validated, and so the reference an int8 export of a QAT checkpoint is checked against
    (the QAT weights run without fake quantization are a model nobody trained)."""
    prepared = _prepared_from_qat(copy.deepcopy(model_edge), backend, qat_state)
    set_qat_mode(prepared, training=False)
    return prepared


def load_prepared(prepared: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a QAT graph's saved state; a mismatch is one error naming how many tensors differ."""
    own = prepared.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    # fake-quant/observer buffers (scale, zero_point, min/max) take their shape when observed;
    # their modules resize them on load. Every other tensor must match exactly.
    bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)
           and "activation_post_process" not in k]
    if missing or extra or bad:
        first = (missing or extra or bad)[0]
        raise ActionNetError(f"QAT state does not match the model it was built for: {len(missing)} missing, "
                             f"{len(extra)} unexpected, {len(bad)} wrong-shape tensors (e.g. {first})")
    prepared.load_state_dict(state, strict=True)
