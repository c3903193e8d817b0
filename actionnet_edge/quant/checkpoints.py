"""QAT checkpoints: save, load and validate.

A QAT checkpoint is an ordinary checkpoint (``format``, ``model``, ``labels``, ``preprocess``)
whose ``qat`` entry names the backend and input shape and holds the *prepared* graph's
``state_dict`` (weights, BN statistics and fake-quant observers); it loads with
``weights_only=True`` and the graph is rebuilt deterministically from the config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import file_sha256, read_checkpoint, save_checkpoint
from ..constants import QUANT_BACKENDS as BACKENDS
from ..errors import ActionNetError
from ..models import build_from_config
from ..models.edge import to_edge

QAT_FORMAT = "actionnet-edge.qat/1"

__all__ = ["QAT_FORMAT", "QATCheckpoint", "check_qat_state", "save_qat_checkpoint", "load_qat_checkpoint",
           "is_qat_checkpoint", "float_edge_from_qat"]


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
    qat = {"format": QAT_FORMAT, "backend": backend, "input_shape": [int(v) for v in input_shape],
           "per_channel": bool(per_channel),
           "state_dict": {k: v.detach().cpu() for k, v in prepared.state_dict().items()}}
    save_checkpoint(path, float_model, labels, preprocess, qat=qat, **extra)


def load_qat_checkpoint(path: str | Path) -> QATCheckpoint:
    """Read and validate a QAT checkpoint (untrusted file: ``weights_only`` and field checks)."""
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
