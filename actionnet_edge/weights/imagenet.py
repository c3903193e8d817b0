"""ImageNet MobileNetV2 files: backbone initialisations, not video models.

tonylins' ``mobilenetv2_1.0-f2a8633.pth.tar`` (the file the official ACTION-Net and TSM code start
from) and torchvision's ``mobilenet_v2-b0353104.pth`` both load as ``pretrained=PATH`` (recipe
``model.pretrained``): :func:`actionnet_edge.models.layouts.tonylins_to_torchvision` renames the
former on the way. ``import`` recognises them and says so instead of making a video checkpoint.
"""
from __future__ import annotations

from ..models.layouts import is_tonylins_mbv2

IMAGENET_CLASSES = 1000


def imagenet_kind(sd: dict) -> str | None:
    """"tonylins'" or "torchvision's" for an ImageNet MobileNetV2 state dict (1000 classes), else None."""
    if is_tonylins_mbv2(sd) and _classes(sd, "classifier.weight") == IMAGENET_CLASSES:
        return "tonylins'"
    if "features.1.conv.0.0.weight" in sd and _classes(sd, "classifier.1.weight") == IMAGENET_CLASSES:
        return "torchvision's"
    return None


def _classes(sd: dict, key: str) -> int | None:
    w = sd.get(key)
    return int(w.shape[0]) if w is not None and w.dim() == 2 else None
