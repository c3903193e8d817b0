"""Read a published checkpoint (untrusted: ``weights_only=True``) and recognise its layout.

Recognised, from keys and shapes alone:

* the TSN wrapper (``base_model.*``, ``new_fc.*``) of V-Sense/ACTION-Net with ``Action`` modules
  (``action_*`` tensors), or of mit-han-lab/temporal-shift-module with TSM's shift (wrapped
  layers' ``.net.`` and no tensors of its own) or without one (TSN);
* the TSM online demo's MobileNetV2 (tonylins' layout, not 1000 classes);
* ImageNet MobileNetV2 in tonylins' or torchvision's layout (refused here: a backbone
  initialisation, used as ``pretrained=``).

DataParallel's ``module.`` prefix and a ``{'state_dict': ..., 'epoch': ...}`` wrapper are removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import FORMAT
from ..errors import ActionNetError
from ..fsutil import load_untrusted
from ..models.layouts import is_tonylins_mbv2
from .assemble import Parts
from .imagenet import imagenet_kind
from .tsm import online_places, tonylins_parts
from .tsn_layout import tsn_arch, tsn_parts

ACTION_NET = "https://github.com/V-Sense/ACTION-Net"
TSM = "https://github.com/mit-han-lab/temporal-shift-module"


@dataclass
class Found:
    """What a source file is: a one-line description, our model's settings, and its weights."""

    description: str
    repo: str
    arch: str
    temporal: str
    parts: Parts
    causal: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def read_source(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict of a published file (``module.`` stripped) and its scalar extras (epoch...)."""
    path = Path(path)
    obj = load_untrusted(path, "weights file")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        raise ActionNetError(f"{path} is already an actionnet-edge checkpoint: every command takes it as it is")
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        meta = {k: v for k, v in obj.items()
                if k in ("epoch", "arch", "best_prec1", "best_acc") and isinstance(v, (int, float, str))}
        obj = obj["state_dict"]
    tensors = isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    if not tensors or not obj:
        raise ActionNetError(f"{path} is not a state dict (a mapping of names to tensors)")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, meta


def identify(sd: dict[str, torch.Tensor], source: str) -> Found:
    """Recognise the layout of ``sd`` or raise a one-line error naming its first keys."""
    kind = imagenet_kind(sd)
    if kind is not None:
        raise ActionNetError(f"{source}: ImageNet MobileNetV2 in {kind} layout: a backbone initialisation, not a "
                             f"video model; use it as pretrained (recipe model.pretrained: {source})")
    if any(k.startswith("base_model.") for k in sd):
        return _tsn(sd, source)
    if is_tonylins_mbv2(sd):
        parts = tonylins_parts(sd, source, online_places())
        return Found("mit-han-lab/temporal-shift-module online demo MobileNetV2 (uni-directional shift, "
                     "tonylins' layout)", TSM, "mobilenet_v2", "shift_online", parts, causal=True)
    first = ", ".join(list(sd)[:3])
    raise ActionNetError(f"{source}: not a layout this reads (ACTION-Net, TSM offline or online, ImageNet "
                         f"MobileNetV2); first keys: {first}")


def _tsn(sd: dict[str, torch.Tensor], source: str) -> Found:
    arch = tsn_arch(sd)
    if arch is None:
        first = next(k for k in sd if k.startswith("base_model."))
        raise ActionNetError(f"{source}: a TSN wrapper around a backbone this does not have (first key {first})")
    parts = tsn_parts(sd, arch, source)
    if parts.temporal:
        return Found(f"V-Sense/ACTION-Net checkpoint (TSN wrapper, ACTION in {arch}, "
                     f"{len(parts.places)} places)", ACTION_NET, arch, "action", parts)
    if parts.places:
        return Found(f"mit-han-lab/temporal-shift-module offline checkpoint (TSM, shift8_blockres, {arch}, "
                     f"{len(parts.places)} places)", TSM, arch, "shift", parts)
    return Found(f"TSN checkpoint (temporal-shift-module layout, {arch}, no temporal module)", TSM, arch, "none", parts)
