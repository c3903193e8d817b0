"""Int8 quantization with PT2E: one quantizer per backend, PTQ or QAT, and QAT checkpoints.

Flow (torchao's PT2E): ``torch.export`` the edge form (:func:`~actionnet_edge.export.edge.to_edge`)
-> the backend's quantizer annotates the graph -> ``prepare_qat_pt2e`` (fake quantization,
trained with the one training loop, see :mod:`.qat`) or ``prepare_pt2e`` (observers,
calibrated on clips) -> ``convert_pt2e`` -> an int8 reference model that the exporters lower.

Backends and their quantizers:

* ``xnnpack``: ExecuTorch's ``XNNPACKQuantizer``, symmetric int8, per-channel weights;
* ``litert``: litert-torch's ``PT2EQuantizer``, symmetric int8, per-channel weights, the
  classifier left float (its pattern functions are wrapped in modules so that
  ``torch.export`` accepts them with torch >= 2.13; weights are not folded to int8 in
  ``convert``: litert-torch lowers quantize/dequantize pairs on float weights);
* ``coreml``: ExecuTorch's ``CoreMLQuantizer`` (coremltools' ``LinearQuantizerConfig``,
  symmetric, quint8 activations, per-channel qint8 weights).

A QAT checkpoint is an ordinary checkpoint (``format``, ``model``, ``labels``,
``preprocess``) whose ``state_dict`` is the *prepared* graph's (weights, BN statistics and
fake-quant observers) and whose ``qat`` entry names the backend and input shape; it loads
with ``weights_only=True`` and the graph is rebuilt deterministically from the config.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from ..errors import ActionNetError, unknown_name

log = logging.getLogger(__name__)

BACKENDS = ("xnnpack", "litert", "coreml")
QAT_FORMAT = "actionnet-edge.qat/1"
#: left float by the litert quantizer (torch.export records module types by qualified name):
#: the classifier, whose int8 logits (steps of range / 255) flip clips with close top-2 logits.
#: The temporal modules' layers on pooled vectors are export.edge.VectorLinear, quantized.
_LITERT_FLOAT_MODULES = ("torch.nn.modules.linear.Linear",)
_EXTRA = {"xnnpack": "executorch", "coreml": "coreml", "litert": "tflite"}

__all__ = ["BACKENDS", "QAT_FORMAT", "make_quantizer", "prepare", "calibrate", "convert", "quantize",
           "freeze_observers", "set_qat_mode", "QATCheckpoint", "save_qat_checkpoint", "load_qat_checkpoint",
           "is_qat_checkpoint", "float_edge_from_qat", "check_qat_state"]


# ----------------------------------------------------------------------------- quantizers
def make_quantizer(backend: str, *, qat: bool, per_channel: bool = True):
    """The backend's PT2E quantizer, configured for QAT (``qat=True``) or PTQ."""
    if backend not in BACKENDS:
        raise unknown_name("quantization backend", backend, BACKENDS)
    try:
        if backend == "xnnpack":
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer, get_symmetric_quantization_config)

            q = XNNPACKQuantizer()
            q.set_global(get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat))
            return q
        if backend == "litert":
            from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

            q = PT2EQuantizer()
            q.set_global(get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat))
            for name in _LITERT_FLOAT_MODULES:
                q.set_module_type(name, None)
            q.annotate = _litert_annotate(q.annotate)
            return q
        from coremltools.optimize.torch.quantization.quantization_config import (
            LinearQuantizerConfig, QuantizationScheme)
        from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

        cfg = LinearQuantizerConfig.from_dict({"global_config": {
            "quantization_scheme": QuantizationScheme.symmetric, "activation_dtype": torch.quint8,
            "weight_dtype": torch.qint8, "weight_per_channel": per_channel}})
        return CoreMLQuantizer(cfg)
    except ImportError as e:
        raise ActionNetError(f"the {backend} quantizer needs its toolchain ({e}); install it with: "
                             f"pip install 'actionnet-edge[{_EXTRA[backend]}]'") from None


class _Fn(nn.Module):
    """A plain function as a module (torch.export only takes modules)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


@contextlib.contextmanager
def _litert_patterns(backend: str) -> Iterator[None]:
    """litert-torch 0.10 hands plain pattern functions to torch.export, which torch >= 2.13 refuses."""
    if backend != "litert":
        yield
        return
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    original = utils._get_aten_graph_module_for_pattern

    def wrapped(pattern, *args, **kwargs):
        return original(pattern if isinstance(pattern, nn.Module) else _Fn(pattern), *args, **kwargs)

    utils._get_aten_graph_module_for_pattern = wrapped
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


# ----------------------------------------------------------------------------- graph prep
def _litert_annotate(annotate):
    """Wrap litert's ``annotate`` with two fixes of its annotation on our graphs.

    * Its add, mul and cat annotators find their ops by the ``source_fn_stack`` that only strict
      (dynamo) export records; on the non-strict graph they annotate none of them, and those not
      already between quantized neighbours stay float ops between DEQUANTIZE and QUANTIZE in the
      .tflite (ACTION's mask sums: 30 float ADDs at 224 px). The sources are recorded first.
      Strict export is not an option: it tags the dynamic batch's integer arithmetic as adds
      too, and the quantizer puts observers on integers.
    * An add or mul reading a sigmoid takes the sigmoid's fixed int8 range (1/256 steps) instead
      of observing a range of its own: the .tflite converter puts (N, C, 1, 1) masks through a
      layout RESHAPE on that edge, and a RESHAPE must keep its scale.
    """
    import operator

    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    sources = {torch.ops.aten.add.Tensor: operator.add, torch.ops.aten.mul.Tensor: operator.mul,
               torch.ops.aten.cat.default: torch.cat}

    def run(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in model.graph.nodes:
            fn = sources.get(node.target) if node.op == "call_function" else None
            if fn is not None and not node.meta.get("source_fn_stack"):
                node.meta["source_fn_stack"] = [(node.name, fn)]
        model = annotate(model)
        for node in model.graph.nodes:
            ann = node.meta.get("quantization_annotation")
            if ann is None or node.target not in (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor):
                continue
            for inp in list(ann.input_qspec_map):
                src = inp.meta.get("quantization_annotation")
                if inp.target == torch.ops.aten.sigmoid.default and src is not None and src.output_qspec is not None:
                    ann.input_qspec_map[inp] = SharedQuantizationSpec(inp)
        return model

    return run


def _structure_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Gradient masks that keep the edge form's banded temporal convs banded during QAT."""
    from ..export.edge import EdgeCE, EdgeSTE

    masks: dict[str, torch.Tensor] = {}
    for name, m in model.named_modules():
        if isinstance(m, (EdgeSTE, EdgeCE)):
            conv = m.conv if isinstance(m, EdgeSTE) else m.temporal
            t = m.t
            r = conv.weight.shape[0] // t
            band = torch.zeros(t, t)
            for k in (-1, 0, 1):
                band += torch.diag(torch.ones(t - abs(k)), k)
            mask = band.repeat_interleave(r, 0).repeat_interleave(r, 1)
            masks[f"{name}.{'conv' if isinstance(m, EdgeSTE) else 'temporal'}.weight"] = (
                mask.reshape(*mask.shape, *(1,) * (conv.weight.dim() - 2)).expand_as(conv.weight).clone())
            if isinstance(m, EdgeSTE):  # the fixed channel mean stays a mean
                masks[f"{name}.mean.weight"] = torch.zeros_like(m.mean.weight)
    return masks


def prepare(model_edge: nn.Module, backend: str, example: torch.Tensor, *, qat: bool,
            per_channel: bool = True) -> torch.fx.GraphModule:
    """Export ``model_edge`` (dynamic batch) and insert the backend's fake-quant (QAT) or observers (PTQ)."""
    from torch.export import Dim, export
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    quantizer = make_quantizer(backend, qat=qat, per_channel=per_channel)
    model_edge = model_edge.eval()
    masks = _structure_masks(model_edge) if qat else {}
    example = example[:1].expand(2, *example.shape[1:]).contiguous()  # batch 2: a dynamic batch dim
    gm = export(model_edge, (example,), dynamic_shapes=({0: Dim("batch", min=1, max=4096)},)).module()
    with _litert_patterns(backend):
        prepared = prepare_qat_pt2e(gm, quantizer) if qat else prepare_pt2e(gm, quantizer)
    allow_exported_model_train_eval(prepared)
    params = dict(prepared.named_parameters())
    for name, mask in masks.items():
        p = params.get(name)
        if p is not None and p.requires_grad:
            p.register_hook(lambda g, m=mask: g * m.to(g.device, g.dtype))
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
    seen = 0
    for i, x in enumerate(clips):
        if max_batches is not None and i >= max_batches:
            break
        if isinstance(x, dict):
            x = x["clips"]
        prepared(x)
        seen += int(x.shape[0])
    freeze_observers(prepared, True)
    return seen


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
    return converted


def _synthetic_calibration(model_edge: nn.Module, example: torch.Tensor, n: int = 32) -> list[torch.Tensor]:
    """Procedural gesture clips at the example's shape, normalised like the model expects."""
    from ..data.synth import SyntheticGestures

    _, t, _, s, _ = example.shape
    mean = getattr(model_edge, "mean", (0.485, 0.456, 0.406))
    std = getattr(model_edge, "std", (0.229, 0.224, 0.225))
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
        log.warning("no QAT checkpoint: post-training int8 quantization (%s quantizer) calibrated on %d clips of %s",
                    backend, n, source)
    if backend != "litert":
        return convert(prepared)
    converted = convert(prepared, fold_weights=False)  # litert-torch needs the weights' quantize ops
    aligned = _align_same_scale_ranges(converted)
    if aligned:
        log.info("litert: %d reshape/transpose/mean outputs requantized with their input's int8 range (LiteRT "
                 "needs one scale across them; QAT's observers on the two sides drift apart)", aligned)
    return converted


def _prepared_from_qat(model_edge: nn.Module, backend: str, qat_state: dict[str, Any]) -> torch.fx.GraphModule:
    """The QAT graph of ``model_edge`` rebuilt for ``backend``, with ``qat_state``'s weights and ranges."""
    check_qat_state(qat_state)
    if qat_state["backend"] != backend:
        raise ActionNetError(f"this QAT checkpoint was trained for the {qat_state['backend']} quantizer, not "
                             f"{backend}: export it to a target using {qat_state['backend']} or re-run "
                             f"'actionnet-edge qat --backend {backend}'")
    prepared = prepare(model_edge, backend, torch.zeros(tuple(qat_state["input_shape"])), qat=True,
                       per_channel=bool(qat_state.get("per_channel", True)))
    _load_prepared(prepared, qat_state["state_dict"])
    return prepared


def fake_quant_model(model_edge: nn.Module, backend: str, qat_state: dict[str, Any]) -> torch.fx.GraphModule:
    """The QAT graph in eval mode, fake-quantizing weights and activations: the model QAT trained
    and validated, and so the reference an int8 export of a QAT checkpoint is checked against
    (the QAT weights run without fake quantization are a model nobody trained)."""
    prepared = _prepared_from_qat(copy.deepcopy(model_edge), backend, qat_state)
    set_qat_mode(prepared, training=False)
    return prepared


#: ops LiteRT runs in int8 with their input's scale: those that only move values, and the
#: mean, whose output range the litert quantizer shares with its input
_SAME_SCALE_OPS = {"view", "reshape", "_unsafe_view", "permute", "transpose", "flatten", "unsqueeze", "squeeze",
                   "slice", "mean"}


def _is_qdq(node: torch.fx.Node, name: str) -> bool:
    return node.op == "call_function" and str(node.target) == f"quantized_decomposed.{name}.default"


def _is_same_scale(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and getattr(node.target, "_opname", None) in _SAME_SCALE_OPS
            and isinstance(node.args[0], torch.fx.Node))


def _align_same_scale_ranges(gm: torch.fx.GraphModule) -> int:
    """Give each quantize that follows dequantize -> same-scale ops the dequantize's parameters.

    After PTQ the two sides agree anyway (one observer saw the same values); after QAT the
    fake-quant on the far side observed already rounded values and drifts by a few percent,
    which LiteRT's converter rejects. Returns how many changed.
    """
    changed = 0
    for node in gm.graph.nodes:
        if not _is_qdq(node, "quantize_per_tensor"):
            continue
        src = node.args[0]
        while _is_same_scale(src):
            src = src.args[0]
        if src is node.args[0] or not _is_qdq(src, "dequantize_per_tensor") or src.args[1:] == node.args[1:]:
            continue
        if src.args[3:] != node.args[3:]:  # another int type or range: leave it
            continue
        for n in (node, *(u for u in node.users if _is_qdq(u, "dequantize_per_tensor"))):
            n.args = (n.args[0], *src.args[1:])
        changed += 1
    gm.recompile()
    return changed


def _load_prepared(prepared: nn.Module, state: dict[str, torch.Tensor]) -> None:
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


# ----------------------------------------------------------------------------- checkpoints
def check_qat_state(state: Any, where: str = "QAT checkpoint") -> None:
    """Validate the ``qat`` entry of a checkpoint (an untrusted file): one error naming every problem."""
    if not isinstance(state, dict):
        raise ActionNetError(f"{where}: 'qat' must be a mapping")
    problems = []
    if state.get("format") != QAT_FORMAT:
        problems.append(f"qat.format is not '{QAT_FORMAT}'")
    if state.get("backend") not in BACKENDS:
        problems.append(f"qat.backend must be one of {', '.join(BACKENDS)}")
    shape = state.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 5 and all(isinstance(v, int) and v > 0 for v in shape)
            and shape[2] == 3 and shape[3] == shape[4]):
        problems.append("qat.input_shape must be [N, T, 3, S, S]")
    sd = state.get("state_dict")
    if not isinstance(sd, dict) or not sd or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                     for k, v in sd.items()):
        problems.append("qat.state_dict must map names to tensors")
    if problems:
        raise ActionNetError(f"{where}: invalid QAT state: {'; '.join(problems)}")


@dataclass
class QATCheckpoint:
    """A loaded QAT checkpoint. ``state`` (the ``qat`` entry) goes to :func:`quantize` as ``qat_state``."""

    config: dict[str, Any]
    labels: list[str]
    preprocess: dict[str, Any]
    backend: str
    state: dict[str, Any]
    path: Path
    sha256: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def edge_model(self) -> nn.Module:
        """The float edge form with the QAT-tuned weights (the float reference for parity)."""
        return float_edge_from_qat(self.config, self.state)


def is_qat_checkpoint(raw: dict[str, Any]) -> bool:
    """Whether a checkpoint dict (``read_checkpoint``) holds a QAT graph."""
    return isinstance(raw, dict) and isinstance(raw.get("qat"), dict)


def save_qat_checkpoint(path: str | Path, prepared: nn.Module, float_model: nn.Module, labels: list[str],
                        preprocess: dict[str, Any], *, backend: str, input_shape: tuple[int, ...],
                        per_channel: bool = True, **extra: Any) -> None:
    """Write a QAT checkpoint atomically (loads with ``weights_only=True``).

    ``state_dict`` holds ``float_model``'s training-form weights (the QAT starting point), so
    :func:`~actionnet_edge.checkpoint.load_checkpoint` still works; ``qat.state_dict`` holds the
    prepared graph's weights, BN statistics and fake-quant ranges.
    """
    from ..checkpoint import save_checkpoint

    qat = {"format": QAT_FORMAT, "backend": backend, "input_shape": [int(v) for v in input_shape],
           "per_channel": bool(per_channel),
           "state_dict": {k: v.detach().cpu() for k, v in prepared.state_dict().items()}}
    save_checkpoint(path, float_model, labels, preprocess, qat=qat, **extra)


def load_qat_checkpoint(path: str | Path) -> QATCheckpoint:
    """Read and validate a QAT checkpoint (untrusted file: ``weights_only`` and field checks)."""
    from ..checkpoint import file_sha256, read_checkpoint

    raw = read_checkpoint(path)
    path = Path(path)
    if not is_qat_checkpoint(raw):
        raise ActionNetError(f"{path} is a float checkpoint, not a QAT one (run 'actionnet-edge qat' first)")
    q = raw["qat"]
    check_qat_state(q, str(path))
    if q["input_shape"][1] != raw["model"].get("num_segments"):
        raise ActionNetError(f"{path}: invalid QAT state: {q['input_shape'][1]} frames but the model has "
                             f"{raw['model'].get('num_segments')}")
    if len(raw["labels"]) != raw["model"].get("num_classes"):
        raise ActionNetError(f"{path}: {len(raw['labels'])} labels for {raw['model'].get('num_classes')} classes")
    return QATCheckpoint(dict(raw["model"]), list(raw["labels"]), dict(raw["preprocess"]), q["backend"], q,
                         path, file_sha256(path), raw)


def float_edge_from_qat(config: dict[str, Any], state: dict[str, Any]) -> nn.Module:
    """The float edge form of ``config`` carrying the QAT-tuned weights and BN statistics of ``state``."""
    from ..export.edge import to_edge
    from ..models import build_from_config

    check_qat_state(state)
    edge = to_edge(build_from_config(config))
    own = edge.state_dict()
    sd = state["state_dict"]
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]  # not in the graph
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or bad:
        raise ActionNetError(f"QAT state does not match a {config.get('arch')}/{config.get('temporal')} model "
                             f"({len(missing)} missing, {len(bad)} wrong-shape tensors, e.g. {(missing or bad)[0]})")
    edge.load_state_dict({k: sd[k] for k in own if k in sd}, strict=False)
    return edge.eval()
