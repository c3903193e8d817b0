"""Count parameters and multiply-accumulates on the real module.

MACs are those of convolutions (1D, 2D, 3D) and linear layers, counted by forward hooks
while one clip (1, T, 3, S, S) runs through the model: per output element a convolution
costs ``in_channels / groups * prod(kernel)`` MACs and a linear layer ``in_features``.
Element-wise operations, pooling and normalisation are not counted (as in the paper's
FLOPs and in common counters such as fvcore and thop). A temporal module states the MACs of
its official computation itself (``TemporalModule.macs``, called from a pre-hook with its
input's shape): its forward may apply a layer's weight without calling the layer (the
learnable shift's taps, STE's banded Conv2d, CE's matrix products), where hooks see nothing.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..models.temporal import TemporalModule

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class Profile:
    arch: str
    temporal: str
    num_segments: int
    size: int
    num_classes: int
    width_mult: float
    params: int
    macs: int
    temporal_params: int
    temporal_macs: int
    breakdown: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _group(name: str) -> str:
    parts = name.split(".")
    if parts[0] != "backbone":
        return parts[0]
    return ".".join(parts[: 3 if len(parts) > 3 and parts[1] in ("features", "layer1", "layer2", "layer3", "layer4") else 2])


def profile_model(model: nn.Module, size: int = 224) -> Profile:
    """Parameters and MACs of one clip of ``num_segments`` frames at ``size`` x ``size``."""
    cfg = model.config
    macs: dict[str, int] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, inp, out: torch.Tensor) -> None:
            if isinstance(mod, nn.Linear):
                per = mod.in_features
            else:
                per = (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
            macs[name] = macs.get(name, 0) + out.numel() * per

        return fn

    def temporal_hook(name: str):
        def fn(mod: TemporalModule, inp) -> None:
            macs[name] = macs.get(name, 0) + mod.macs(tuple(inp[0].shape))

        return fn

    inside: list[str] = []  # temporal modules state their own MACs (TemporalModule.macs), layers inside are not hooked
    for name, mod in model.named_modules():
        if any(name.startswith(t + ".") for t in inside):
            continue
        if isinstance(mod, TemporalModule):
            inside.append(name)
            hooks.append(mod.register_forward_pre_hook(temporal_hook(name)))
        elif isinstance(mod, COUNTED):
            hooks.append(mod.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, cfg["num_segments"], 3, size, size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    groups: "OrderedDict[str, dict]" = OrderedDict()
    for name, p in model.named_parameters():
        g = groups.setdefault(_group(name), {"module": _group(name), "params": 0, "macs": 0, "temporal_macs": 0})
        g["params"] += p.numel()
    for name, m in macs.items():
        g = groups.setdefault(_group(name), {"module": _group(name), "params": 0, "macs": 0, "temporal_macs": 0})
        g["macs"] += m
        if ".temporal." in f".{name}.":
            g["temporal_macs"] += m
    return Profile(
        arch=cfg["arch"], temporal=cfg["temporal"], num_segments=cfg["num_segments"], size=size,
        num_classes=cfg["num_classes"], width_mult=cfg["width_mult"],
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(macs.values()),
        temporal_params=sum(p.numel() for n, p in model.named_parameters() if ".temporal." in f".{n}."),
        temporal_macs=sum(m for n, m in macs.items() if ".temporal." in f".{n}."),
        breakdown=list(groups.values()),
    )


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


COMPARE = [("TSN", "none"), ("TSM", "shift"), ("STE", "ste"), ("CE", "ce"), ("ME", "me"), ("ACTION", "action")]


def compare(arch: str, num_classes: int, num_segments: int, size: int, width_mult: float = 1.0) -> list[dict]:
    """The paper's Tables 3/5 layout: each temporal module with its delta over TSM."""
    from ..models import create_model

    rows = []
    for label, temporal in COMPARE:
        p = profile_model(create_model(arch, temporal, num_segments, num_classes, width_mult), size)
        rows.append({"method": label, "temporal": temporal, "params": p.params, "macs": p.macs})
    base = next(r for r in rows if r["temporal"] == "shift")
    for r in rows:
        r["delta_macs"] = r["macs"] - base["macs"]
        r["delta_macs_pct"] = 100.0 * r["delta_macs"] / base["macs"]
        r["delta_params"] = r["params"] - base["params"]
    return rows
