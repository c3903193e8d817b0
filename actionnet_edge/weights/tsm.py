"""mit-han-lab/temporal-shift-module: the online demo's MobileNetV2 (``online_demo/mobilenet_v2_tsm.py``).

The online model is tonylins' MobileNetV2 with ``InvertedResidualWithShift`` blocks at fixed
places; the shift has no tensors, so its state dict is a plain MobileNetV2's (classifier
``classifier.*``). Its blocks replace the first eighth of the channels entering the expansion
conv with the previous frame's (a shift buffer), which is our ``shift_online`` module at the
same ten places. (The offline TSM checkpoints use the TSN wrapper: :mod:`.tsn_layout`.)
"""
from __future__ import annotations

import torch

from ..errors import ActionNetError
from ..models.layouts import tonylins_expanded_blocks, tonylins_key_to_torchvision
from .assemble import Parts

#: ``shift_block_idx`` of the online demo (global block index; ``features`` index is one more)
ONLINE_SHIFT_BLOCKS = (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)


def online_places() -> list[str]:
    """The online model's shifted layers, in torchvision's names (the expansion conv of each block)."""
    return [f"features.{i + 1}.conv.0.0" for i in ONLINE_SHIFT_BLOCKS]


def tonylins_parts(sd: dict[str, torch.Tensor], source: str, places: list[str]) -> Parts:
    """A bare tonylins-layout MobileNetV2 (``features.*``, ``classifier.*``) as :class:`Parts`."""
    expanded = tonylins_expanded_blocks(sd)
    parts = Parts(places=list(places))
    for key, value in sd.items():
        if key.startswith("classifier."):
            parts.add("fc", key[len("classifier."):], value, key)
            continue
        new = tonylins_key_to_torchvision(key, expanded) if key.startswith("features.") else None
        if new is None:
            raise ActionNetError(f"{source}: unexpected key '{key}' {tuple(value.shape)} in a MobileNetV2 state dict")
        parts.add("backbone", new, value, key)
    return parts
