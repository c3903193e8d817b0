"""2D backbones and the places where a temporal module is inserted.

A backbone builder returns a :class:`Backbone`: an image network whose classifier is an
identity (so it maps (B, 3, H, W) to (B, feature_dim)), the feature dimension, and a
function that lists the insertion places as ``(parent, attribute, in_channels)``.
Pretrained ImageNet weights are loaded *before* the temporal modules are inserted, so
checkpoints in the backbone's own format (torchvision's, or TSN's for BN-Inception) load
unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ActionNetError
from .layouts import tonylins_to_torchvision

#: smallest input side (pixels) every backbone, export and runtime takes: the backbones
#: downsample by 32, so a smaller frame leaves no spatial position in the last stage.
MIN_INPUT_SIZE = 32
#: largest input side (pixels) accepted: far above any mobile model, below sizes whose buffers cannot be allocated
MAX_INPUT_SIZE = 1024


def check_input_size(size: int, what: str = "size") -> int:
    """``size`` if it is a usable input side, else one :class:`ActionNetError` naming ``what``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_INPUT_SIZE:
        raise ActionNetError(f"{what} must be an integer of at least {MIN_INPUT_SIZE} px, got {size}")
    if size > MAX_INPUT_SIZE:
        raise ActionNetError(f"{what} must be at most {MAX_INPUT_SIZE} px, got {size}")
    return size


def residual_branch_norms(net: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN that ends each residual branch of torchvision's MobileNetV2 and ResNet blocks."""
    norms = []
    for m in net.modules():
        if isinstance(m, torchvision.models.mobilenetv2.InvertedResidual) and m.use_res_connect:
            norms.append(m.conv[-1])
        elif isinstance(m, torchvision.models.resnet.Bottleneck):
            norms.append(m.bn3)
    return norms


@dataclass
class Backbone:
    net: nn.Module
    feature_dim: int
    places: Callable[[nn.Module], list[tuple[nn.Module, str, int]]]
    classifier_prefixes: tuple[str, ...]
    #: converts a pretrained state dict in the backbone's published format to this module's
    adapt: Callable[[dict], dict] = lambda sd: sd
    #: input normalisation of the pretrained weights, as (mean, std) on 0..1 RGB
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


#: the first three stages of MobileNetV2 (torchvision's ``inverted_residual_setting`` rows t, c, n, s)
TEST_MOBILENET_V2_STAGES = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2]]


def mobilenet_v2(width_mult: float = 1.0, stages: list[list[int]] | None = None) -> Backbone:
    """torchvision's MobileNetV2; temporal modules before the first 1x1 conv of every
    inverted residual block with a residual connection and an expansion (10 places, as TSM).
    ``stages`` replaces torchvision's table of inverted residual stages."""
    net = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult, inverted_residual_setting=stages)
    feature_dim = net.classifier[-1].in_features
    net.classifier = nn.Identity()

    def places(m: nn.Module) -> list[tuple[nn.Module, str, int]]:
        out = []
        for block in m.features:
            if isinstance(block, torchvision.models.mobilenetv2.InvertedResidual) and block.use_res_connect:
                expand = block.conv[0]
                if isinstance(expand, torchvision.ops.Conv2dNormActivation) and expand[0].kernel_size == (1, 1):
                    out.append((expand, "0", expand[0].in_channels))
        return out

    # ImageNet files in torchvision's layout load as they are; tonylins' (the official code's) are renamed
    return Backbone(net, feature_dim, places, ("classifier.",), adapt=tonylins_to_torchvision)


def resnet50(width_mult: float = 1.0) -> Backbone:
    """torchvision's ResNet-50; temporal modules at the start of every bottleneck (16 places)."""
    _no_width("resnet50", width_mult)
    net = torchvision.models.resnet50(weights=None)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()

    def places(m: nn.Module) -> list[tuple[nn.Module, str, int]]:
        return [
            (block, "conv1", block.conv1.in_channels)
            for layer in (m.layer1, m.layer2, m.layer3, m.layer4)
            for block in layer
        ]

    return Backbone(net, feature_dim, places, ("fc.",))


# ---------------------------------------------------------------------------------------
# BN-Inception (Ioffe & Szegedy 2015) as used by TSN and TSM. Module names follow TSN's
# converted Caffe weights ("inception_3a_1x1", "inception_3a_1x1_bn", ...) with the block
# name as a module, so their state dict loads after one rename (see _bninception_adapt).

# branch = list of (name, out_channels, kernel, stride); a pool branch starts with a pool.
_1 = lambda name, c: (name, c, 1, 1)  # noqa: E731
_3 = lambda name, c, s=1: (name, c, 3, s)  # noqa: E731
_BNINCEPTION = [
    # name, [branches...]; "avg"/"max"/"max1" pools are 3x3 with stride 1 (pad 1) or 2
    ("3a", [[_1("1x1", 64)], [_1("3x3_reduce", 64), _3("3x3", 64)],
            [_1("double_3x3_reduce", 64), _3("double_3x3_1", 96), _3("double_3x3_2", 96)],
            ["avg", _1("pool_proj", 32)]]),
    ("3b", [[_1("1x1", 64)], [_1("3x3_reduce", 64), _3("3x3", 96)],
            [_1("double_3x3_reduce", 64), _3("double_3x3_1", 96), _3("double_3x3_2", 96)],
            ["avg", _1("pool_proj", 64)]]),
    ("3c", [[_1("3x3_reduce", 128), _3("3x3", 160, 2)],
            [_1("double_3x3_reduce", 64), _3("double_3x3_1", 96), _3("double_3x3_2", 96, 2)],
            ["max2"]]),
    ("4a", [[_1("1x1", 224)], [_1("3x3_reduce", 64), _3("3x3", 96)],
            [_1("double_3x3_reduce", 96), _3("double_3x3_1", 128), _3("double_3x3_2", 128)],
            ["avg", _1("pool_proj", 128)]]),
    ("4b", [[_1("1x1", 192)], [_1("3x3_reduce", 96), _3("3x3", 128)],
            [_1("double_3x3_reduce", 96), _3("double_3x3_1", 128), _3("double_3x3_2", 128)],
            ["avg", _1("pool_proj", 128)]]),
    ("4c", [[_1("1x1", 160)], [_1("3x3_reduce", 128), _3("3x3", 160)],
            [_1("double_3x3_reduce", 128), _3("double_3x3_1", 160), _3("double_3x3_2", 160)],
            ["avg", _1("pool_proj", 128)]]),
    ("4d", [[_1("1x1", 96)], [_1("3x3_reduce", 128), _3("3x3", 192)],
            [_1("double_3x3_reduce", 160), _3("double_3x3_1", 192), _3("double_3x3_2", 192)],
            ["avg", _1("pool_proj", 128)]]),
    ("4e", [[_1("3x3_reduce", 128), _3("3x3", 192, 2)],
            [_1("double_3x3_reduce", 192), _3("double_3x3_1", 256), _3("double_3x3_2", 256, 2)],
            ["max2"]]),
    ("5a", [[_1("1x1", 352)], [_1("3x3_reduce", 192), _3("3x3", 320)],
            [_1("double_3x3_reduce", 160), _3("double_3x3_1", 224), _3("double_3x3_2", 224)],
            ["avg", _1("pool_proj", 128)]]),
    ("5b", [[_1("1x1", 352)], [_1("3x3_reduce", 192), _3("3x3", 320)],
            [_1("double_3x3_reduce", 192), _3("double_3x3_1", 224), _3("double_3x3_2", 224)],
            ["max1", _1("pool_proj", 128)]]),
]


def _pool(kind: str) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
    if kind == "max1":
        return nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, branches: list) -> None:
        super().__init__()
        self.branches: list[list] = []
        out = 0
        for branch in branches:
            ops, c = [], cin
            for op in branch:
                if isinstance(op, str):
                    self.add_module(f"pool{len(self.branches)}", _pool(op))
                    ops.append(f"pool{len(self.branches)}")
                else:
                    name, cout, k, s = op
                    self.add_module(name, nn.Conv2d(c, cout, k, stride=s, padding=k // 2))
                    self.add_module(name + "_bn", nn.BatchNorm2d(cout))
                    ops.append(name)
                    c = cout
            self.branches.append(ops)
            out += c
        self.out_channels = out
        self.in_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for ops in self.branches:
            y = x
            for name in ops:
                y = getattr(self, name)(y)
                if not name.startswith("pool"):
                    y = torch.relu(getattr(self, name + "_bn")(y))
            outs.append(y)
        return torch.cat(outs, 1)


class BNInception(nn.Module):
    """BN-Inception with the layout of TSN/TSM's converted Caffe model (1024-d features)."""

    def __init__(self) -> None:
        super().__init__()
        stem = [("conv1_7x7_s2", 3, 64, 7, 2), ("conv2_3x3_reduce", 64, 64, 1, 1), ("conv2_3x3", 64, 192, 3, 1)]
        for name, cin, cout, k, s in stem:
            self.add_module(name, nn.Conv2d(cin, cout, k, stride=s, padding=k // 2))
            self.add_module(name + "_bn", nn.BatchNorm2d(cout))
        c = 192
        for name, branches in _BNINCEPTION:
            block = InceptionBlock(c, branches)
            self.add_module("inception_" + name, block)
            c = block.out_channels
        self.feature_dim = c
        self.fc = nn.Identity()

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._cbr("conv1_7x7_s2", x)
        x = nn.functional.max_pool2d(x, 3, 2, ceil_mode=True)
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = nn.functional.max_pool2d(x, 3, 2, ceil_mode=True)
        for name, _ in _BNINCEPTION:
            x = getattr(self, "inception_" + name)(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _bninception_adapt(sd: dict) -> dict:
    """TSN's weights to ours: flat names ("inception_3a_1x1_bn.weight") become
    "inception_3a.1x1_bn.weight", and conv1 is flipped from BGR to RGB input."""
    out = {}
    for key, value in sd.items():
        if key.startswith("inception_") and key[len("inception_3a")] == "_":
            key = key[: len("inception_3a")] + "." + key[len("inception_3a_") :]
        if key == "conv1_7x7_s2.weight" and value.dim() == 4 and value.shape[1] == 3:
            value = value.flip(1)
        out[key] = value
    return out


def bninception(width_mult: float = 1.0) -> Backbone:
    """BN-Inception; temporal modules at the start of each inception block (10 places).

    TSN's ImageNet weights were trained on BGR input in 0..255 minus (104, 117, 128); the
    loader flips conv1's input channels to RGB, and the normalisation below reproduces the
    rest, so every backbone takes the same RGB input pipeline.
    """
    _no_width("bninception", width_mult)
    net = BNInception()

    def places(m: nn.Module) -> list[tuple[nn.Module, str, int]]:
        return [(m, "inception_" + name, getattr(m, "inception_" + name).in_channels) for name, _ in _BNINCEPTION]

    return Backbone(
        net, net.feature_dim, places, ("fc.", "last_linear."), adapt=_bninception_adapt,
        mean=(128 / 255, 117 / 255, 104 / 255), std=(1 / 255, 1 / 255, 1 / 255),
    )


def _no_width(arch: str, width_mult: float) -> None:
    if width_mult != 1.0:
        raise ActionNetError(f"width_mult={width_mult} is not supported by {arch}; only the MobileNetV2 backbones take a width multiplier")


def test_mobilenet_v2(width_mult: float = 1.0) -> Backbone:
    """MobileNetV2 cut after its third stage (6 blocks, 3 temporal places, stride 8): the same
    blocks and temporal modules in a graph a third the size, so tests convert and train it in a
    fraction of the time (as timm's ``test_*`` models). Not a model to ship."""
    return mobilenet_v2(width_mult, TEST_MOBILENET_V2_STAGES)


#: name -> builder(width_mult) -> Backbone, in a fixed order.
BACKBONES: dict[str, Callable[[float], Backbone]] = {}


def register_backbone(name: str, builder: Callable[[float], Backbone]) -> None:
    """Register a backbone builder; registering a name twice is an error."""
    if name in BACKBONES:
        raise ValueError(f"backbone '{name}' is already registered")
    BACKBONES[name] = builder


for _name, _builder in (("mobilenet_v2", mobilenet_v2), ("resnet50", resnet50), ("bninception", bninception),
                        ("test_mobilenet_v2", test_mobilenet_v2)):
    register_backbone(_name, _builder)
