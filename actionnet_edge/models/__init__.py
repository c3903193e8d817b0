"""Model registry: ``create_model`` and ``list_models``."""
from __future__ import annotations

from pathlib import Path

from .actionnet import ActionNet
from .backbones import BACKBONES, MIN_INPUT_SIZE, check_input_size, register_backbone
from .temporal import TEMPORAL_ALIASES, TEMPORAL_MODULES, TemporalWrapper


def list_models() -> list[str]:
    """Names of the registered backbones, in registration order."""
    return list(BACKBONES)


def list_temporal(aliases: bool = False) -> list[str]:
    """Names of the temporal modules: none (TSN), shift (TSM), shift_online (TSM's online demo), action, ste, ce, me; with
    ``aliases`` also the accepted other names (tsn, tsm)."""
    return list(TEMPORAL_MODULES) + (list(TEMPORAL_ALIASES) if aliases else [])


def create_model(
    arch: str,
    temporal: str = "action",
    num_segments: int = 8,
    num_classes: int = 27,
    width_mult: float = 1.0,
    pretrained: str | Path | None = None,
    dropout: float = 0.5,
    causal: bool = False,
    consensus: str = "avg",
) -> ActionNet:
    """Build an ACTION-Net (or its TSN/TSM baselines) on a registered 2D backbone.

    Args:
        arch: backbone name, one of :func:`list_models`.
        temporal: temporal module, one of :func:`list_temporal`.
        num_segments: frames per clip (T).
        num_classes: size of the classifier.
        width_mult: MobileNetV2 width multiplier.
        pretrained: path to a local ImageNet state dict for the backbone (classifier skipped).
        dropout: dropout before the classifier (0.5 in the paper).
        causal: temporal modules read only current and past frames (for streaming).
        consensus: ``avg`` (mean of the frames' logits, TSN) or ``last`` (the last frame's).
    """
    return ActionNet(arch, temporal, num_segments, num_classes, width_mult, dropout, pretrained, causal, consensus)


def build_from_config(config: dict) -> ActionNet:
    """Rebuild a model from ``model.config`` (as stored in checkpoints)."""
    keys = ("arch", "temporal", "num_segments", "num_classes", "width_mult", "dropout", "causal", "consensus")
    return create_model(**{k: config[k] for k in keys if k in config})


__all__ = [
    "ActionNet", "TemporalWrapper", "create_model", "list_models", "list_temporal",
    "build_from_config", "register_backbone", "BACKBONES", "TEMPORAL_MODULES", "MIN_INPUT_SIZE", "check_input_size",
]
