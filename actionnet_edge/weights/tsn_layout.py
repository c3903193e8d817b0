"""The TSN wrapper layout shared by V-Sense/ACTION-Net and mit-han-lab/temporal-shift-module.

Both repositories wrap a 2D network as ``TSN.base_model`` with the classifier in ``new_fc``
(or, trained with dropout 0, in the backbone's own ``fc``/``classifier``). A temporal module
wraps a layer as ``<layer>.net`` with its own tensors beside it: ACTION's ``action_*``
(ACTION-Net), none for TSM's shift. This module brings such a state dict to :class:`Parts`.
"""
from __future__ import annotations

import re

import torch

from ..errors import ActionNetError
from ..models.layouts import tonylins_expanded_blocks, tonylins_key_to_torchvision
from .assemble import Parts

#: ACTION-Net's tensor names inside its ``Action`` wrapper -> ours inside ``Action``
ACTION_NAMES = {
    "action_shift": "shift.conv",
    "action_p1_conv1": "paths.ste.conv",
    "action_p2_squeeze": "paths.ce.squeeze",
    "action_p2_conv1": "paths.ce.temporal",
    "action_p2_expand": "paths.ce.expand",
    "action_p3_squeeze": "paths.me.squeeze",
    "action_p3_bn1": "paths.me.bn",
    "action_p3_conv1": "paths.me.conv",
    "action_p3_expand": "paths.me.expand",
}
_ACTION = re.compile(r"^(.+)\.(action_\w+?)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
_WRAPPED = re.compile(r"^(.+)\.net\.(.+)$")
CLASSIFIERS = {"mobilenet_v2": "classifier.", "resnet50": "fc.", "bninception": "fc."}


def tsn_arch(sd: dict) -> str | None:
    """The backbone of a TSN-wrapped state dict, from its first layer's name."""
    if "base_model.conv1.weight" in sd or "base_model.conv1.net.weight" in sd:
        return "resnet50"
    if "base_model.features.0.0.weight" in sd:
        return "mobilenet_v2"
    if "base_model.conv1_7x7_s2.weight" in sd:
        return "bninception"
    return None


def _split(sd: dict, arch: str, source: str) -> tuple[dict, dict, dict, list[str]]:
    """TSN keys -> (bare backbone, temporal per place, classifier, wrapped places), official names."""
    backbone, temporal, fc, places = {}, {}, {}, []
    for key, value in sd.items():
        if key.startswith("new_fc."):
            fc[key[len("new_fc."):]] = (value, key)
            continue
        if not key.startswith("base_model."):
            raise ActionNetError(f"{source}: unexpected key '{key}' {tuple(value.shape)} outside the TSN wrapper")
        rest = key[len("base_model."):]
        if rest.startswith(CLASSIFIERS[arch]):
            fc[rest[len(CLASSIFIERS[arch]):]] = (value, key)
        elif m := _ACTION.match(rest):
            if m.group(2) not in ACTION_NAMES:
                raise ActionNetError(f"{source}: unknown ACTION tensor '{key}' {tuple(value.shape)}")
            temporal.setdefault(m.group(1), {})[f"{ACTION_NAMES[m.group(2)]}.{m.group(3)}"] = (value, key)
        elif m := _WRAPPED.match(rest):
            if m.group(1) not in places:
                places.append(m.group(1))
            backbone[f"{m.group(1)}.{m.group(2)}"] = (value, key)
        else:
            backbone[rest] = (value, key)
    return backbone, temporal, fc, places


def tsn_parts(sd: dict[str, torch.Tensor], arch: str, source: str) -> Parts:
    """A TSN-wrapped state dict (``module.`` already stripped) as :class:`Parts` in our names."""
    backbone, temporal, fc, places = _split(sd, arch, source)
    places += [p for p in temporal if p not in places]
    rename = lambda k: k  # noqa: E731
    if arch == "mobilenet_v2":
        expanded = tonylins_expanded_blocks(backbone)

        def rename(k: str) -> str:
            new = tonylins_key_to_torchvision(k, expanded)
            if new is None:
                raise ActionNetError(f"{source}: '{k}' has no counterpart in torchvision's MobileNetV2")
            return new

    parts = Parts(places=[rename(p) for p in places])
    for key, (value, src) in backbone.items():
        parts.add("backbone", rename(key), value, src)
    for place, tensors in temporal.items():
        for key, (value, src) in tensors.items():
            parts.add("temporal", key, value, src, place=rename(place))
    for key, (value, src) in fc.items():
        parts.add("fc", key, value, src)
    return parts
