#!/usr/bin/env python
"""Write one of our models' state dicts in the official repositories' layouts (test fixtures).

The published checkpoints are too large to commit, so the importer's tests make their inputs:
a model of ours with seeded random weights (:func:`seeded_model`) renamed, by the code below,
into the layout the official code saves (``torch.save`` of a DataParallel ``TSN``'s
``{'epoch', 'arch', 'state_dict', 'best_prec1'}``, or the online demo's bare state dict).
``scripts/make_weights_golden.py`` loads these into the official models (strict) and records
their logits; the tests import the same files and compare with those logits.

This renaming is written independently of ``actionnet_edge.weights`` (it walks our model's
modules, not the importer's tables), so a wrong table on either side shows as a failure.

Usage: ``python scripts/official_layouts.py LAYOUT ARCH OUT.pth [--classes K --segments T --seed S]``
with LAYOUT one of action-net, tsm-offline, tsn, tsm-online, imagenet-tonylins.
"""
from __future__ import annotations

import argparse
import re

import torch

from actionnet_edge.models import create_model
from actionnet_edge.models.layouts import torchvision_key_to_tonylins

LAYOUTS = {"action-net": "action", "tsm-offline": "shift", "tsn": "none", "tsm-online": "shift_online",
           "imagenet-tonylins": "none"}
#: layouts saved as a bare tonylins MobileNetV2 state dict (no TSN wrapper, no epoch)
BARE = ("tsm-online", "imagenet-tonylins")
#: our names inside ``Action`` -> ACTION-Net's (the official ``Action`` module's attributes)
_ACTION = [("shift.conv", "action_shift"), ("paths.ste.conv", "action_p1_conv1"),
           ("paths.ce.squeeze", "action_p2_squeeze"), ("paths.ce.temporal", "action_p2_conv1"),
           ("paths.ce.expand", "action_p2_expand"), ("paths.me.squeeze", "action_p3_squeeze"),
           ("paths.me.bn", "action_p3_bn1"), ("paths.me.conv", "action_p3_conv1"),
           ("paths.me.expand", "action_p3_expand")]


def seeded_model(layout: str, arch: str, classes: int, segments: int, seed: int, size: int = 64) -> torch.nn.Module:
    """Our model for ``layout`` with seeded random weights that make every tensor matter: random BN
    affines and ACTION shift taps, BN statistics measured on a seeded clip (so activations keep a
    unit scale through any depth), and a random classifier."""
    torch.manual_seed(seed)
    model = create_model(arch, LAYOUTS[layout], segments, classes, causal=layout == "tsm-online").eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif name.endswith("shift.conv") or name == "fc":
                for t in m.parameters():
                    t.copy_(0.3 * torch.randn(t.shape, generator=g))
        calibrate_bn(model, lambda: model(torch.randn(2, segments, 3, size, size, generator=g)))
    return model


def calibrate_bn(model: torch.nn.Module, run) -> None:
    """Set every BatchNorm's running statistics to those of one forward pass (``run()``)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass gives its exact statistics
        m.train()
    with torch.no_grad():
        run()
    for m in bns:
        m.momentum = 0.1
        m.eval()


def _our_places(model) -> list[str]:
    return [n for n, m in model.backbone.named_modules() if type(m).__name__ == "TemporalWrapper"]


def _bare(key: str, places: list[str]) -> tuple[str, str | None, str | None]:
    """Our backbone key -> (bare key, place, temporal tensor name or None)."""
    for p in places:
        if key.startswith(p + ".net."):
            return p + "." + key[len(p) + 5:], p, None
        if key.startswith(p + ".temporal."):
            return "", p, key[len(p) + 10:]
    return key, None, None


def official_state_dict(model, layout: str) -> dict[str, torch.Tensor]:
    """Our model's tensors under the names the official code gives them (no ``module.``)."""
    arch = model.config["arch"]
    places = _our_places(model)
    sd = {k[len("backbone."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    expanded = {int(m.group(1)) for k in sd if (m := re.match(r"features\.(\d+)\.conv\.3\.", k))}
    name = (lambda k: torchvision_key_to_tonylins(k, expanded)) if arch == "mobilenet_v2" else (lambda k: k)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        bare, place, tname = _bare(key, places)
        if tname is not None:
            if layout == "action-net":
                ours, theirs = next((a, b) for a, b in _ACTION if tname.startswith(a + "."))
                out[f"base_model.{name(place)}.{theirs}{tname[len(ours):]}"] = value
            continue  # TSM's shift and TSN have no tensors of their own
        official = name(bare)
        if layout in BARE:
            out[official] = value
        elif place is not None and layout != "tsn":  # the official wrapper holds the layer as `.net`
            p = name(place)
            out[f"base_model.{p}.net{official[len(p):]}"] = value
        else:
            out[f"base_model.{official}"] = value
    fc = {k[len("fc."):]: v for k, v in model.state_dict().items() if k.startswith("fc.")}
    for k, v in fc.items():
        out[("classifier." if layout in BARE else "new_fc.") + k] = v
    return out


def saved_form(sd: dict[str, torch.Tensor], layout: str) -> dict:
    """What the official scripts save: ACTION-Net's ``utils.save_checkpoint`` writes
    ``{'state_dict': net.module.state_dict(), 'optimizer': ...}`` (no ``module.``); TSM's ``main.py``
    writes the DataParallel model's names with the epoch, arch and best top-1; the online demo and
    ImageNet files are bare state dicts."""
    if layout in BARE:
        return dict(sd)
    optimizer = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]}
    if layout == "action-net":
        return {"state_dict": dict(sd), "optimizer": optimizer}
    return {"epoch": 1, "arch": "fixture", "best_prec1": 0.0, "optimizer": optimizer,
            "state_dict": {"module." + k: v for k, v in sd.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layout", choices=sorted(LAYOUTS))
    ap.add_argument("arch", choices=["mobilenet_v2", "resnet50"])
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model = seeded_model(a.layout, a.arch, a.classes, a.segments, a.seed)
    torch.save(saved_form(official_state_dict(model, a.layout), a.layout), a.out)


if __name__ == "__main__":
    main()
