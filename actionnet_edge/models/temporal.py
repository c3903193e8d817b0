"""Temporal modules: each maps a (N*T, C, H, W) tensor to the same shape.

* ``none``   -- TSN: no temporal modelling.
* ``shift``  -- TSM: 1/8 of the channels shifted one frame back, 1/8 one frame forward.
* ``shift_online`` -- TSM's online demo: 1/8 of the channels read from the previous frame only.
* ``action`` -- ACTION (Wang et al., CVPR 2021, section 3): the learnable depthwise temporal
  shift kept inside the module by the official code, then the sum of three excited copies
  of the shifted tensor, one per path: STE, CE and ME (each ``x + x * mask``).
* ``ste``, ``ce``, ``me`` -- the learnable shift and one path alone (the paper's Table 3).

Every module also has a *causal* variant (``causal=True``) for streaming: each temporal
operation reads only the current and past frames. The shift moves channels from frames t-1
and t-2; STE's 3x3x3 kernel and CE's temporal kernel cover frames t-2..t; ME uses
``K * F[t] - F[t-1]`` (with ``F[-1] = 0``). Zero padding before the first frame is exactly
what a zero initial state gives the streaming form (:mod:`actionnet_edge.models.streaming`).

This is the *training form* and the one model definition. Export-friendly rewrites of the
same computation live in :mod:`actionnet_edge.models.edge` and are built from these weights.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

REDUCTION = 16  # the paper's r
SHIFT_DIV = 8  # TSM's fold: 1/8 of the channels each way


def _split_time(x: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, h, w = x.shape
    return x.view(nt // t, t, c, h, w)


def _pad_time(x: torch.Tensor, dim_from_end: int, before: int, after: int) -> torch.Tensor:
    """Zero-pad the time axis, given as its position counted from the last dimension."""
    return F.pad(x, (0, 0) * (dim_from_end - 1) + (before, after))


def _pointwise(conv: nn.Conv2d, f: torch.Tensor) -> torch.Tensor:
    """A bias-free 1x1 ``conv`` applied to pooled (M, C) vectors, as the matrix product it is.
    The weight stays the Conv2d's (the official checkpoints' layout); eager PyTorch runs this in
    ~0.01 ms where a convolution call on a (M, C, 1, 1) tensor costs 0.1-0.25 ms."""
    return F.linear(f, conv.weight.flatten(1))


class TemporalModule(nn.Module):
    """Base class: knows its channel count, number of segments T, and whether it is causal."""

    def __init__(self, channels: int, num_segments: int, causal: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.num_segments = num_segments
        self.causal = causal

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_segments={self.num_segments}, causal={self.causal}"

    def macs(self, shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of the convolutions and linear layers of the official computation
        on an input of ``shape`` (NT, C, H, W), as a hook-based counter would count them there.
        Stated per module because forward may apply a layer's weight another way (taps,
        a banded weight, a matrix product), where hooks on the layer see nothing. Zero here."""
        return 0


class NoTemporal(TemporalModule):
    """TSN: frames are processed independently."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TemporalShift(TemporalModule):
    """TSM's zero-padded shift: channel fold 0 reads frame t+1, fold 1 reads frame t-1.

    Causal: fold 0 reads frame t-1 and fold 1 reads frame t-2 (TSM's online shift, widened
    to the same two folds). ``online``: TSM's online demo exactly, fold 0 reads frame t-1 and
    every other channel is unchanged (always causal; the ``shift_online`` module).
    """

    def __init__(self, channels: int, num_segments: int, causal: bool = False, shift_div: int = SHIFT_DIV,
                 online: bool = False) -> None:
        super().__init__(channels, num_segments, causal or online)
        self.fold = channels // shift_div
        self.online = online

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        x5 = _split_time(x, self.num_segments)
        f = self.fold
        if self.online:
            return torch.cat([_pad_time(x5[:, :-1, :f], 4, 1, 0), x5[:, :, f:]], dim=2).view(nt, c, h, w)
        if self.causal:
            a = _pad_time(x5[:, :-1, :f], 4, 1, 0)  # frame t <- t-1
            b = _pad_time(x5[:, :-2, f : 2 * f], 4, 2, 0)  # frame t <- t-2
        else:
            a = _pad_time(x5[:, 1:, :f], 4, 0, 1)  # frame t <- t+1
            b = _pad_time(x5[:, :-1, f : 2 * f], 4, 1, 0)  # frame t <- t-1
        return torch.cat([a, b, x5[:, :, 2 * f :]], dim=2).view(nt, c, h, w)


class LearnableShift(TemporalModule):
    """Depthwise Conv1d over T (kernel 3, zero padding), initialised as TSM's shift.

    Kernel taps are frames (t-1, t, t+1), or (t-2, t-1, t) when causal. The weight lives in an
    ``nn.Conv1d`` (the official code's parameter, so checkpoints keep the key ``shift.conv.weight``);
    forward applies its taps directly.
    """

    def __init__(self, channels: int, num_segments: int, causal: bool = False, shift_div: int = SHIFT_DIV) -> None:
        super().__init__(channels, num_segments, causal)
        self.conv = nn.Conv1d(channels, channels, 3, padding=0 if causal else 1, groups=channels, bias=False)
        fold = channels // shift_div
        with torch.no_grad():
            w = torch.zeros_like(self.conv.weight)
            if causal:
                w[:fold, 0, 1] = 1.0  # out[t] = x[t-1]
                w[fold : 2 * fold, 0, 0] = 1.0  # out[t] = x[t-2]
                w[2 * fold :, 0, 2] = 1.0  # unchanged
            else:
                w[:fold, 0, 2] = 1.0  # out[t] = x[t+1]
                w[fold : 2 * fold, 0, 0] = 1.0  # out[t] = x[t-1]
                w[2 * fold :, 0, 1] = 1.0  # unchanged
            self.conv.weight.copy_(w)

    def macs(self, shape: tuple[int, ...]) -> int:
        return 3 * math.prod(shape)  # the depthwise Conv1d: three taps per output element

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the Conv1d's three taps as broadcast multiply-adds on the (N, T, C, H, W) view: the same
        # sum as running self.conv over T, without moving T innermost (10x faster in eager). The
        # current frame's tap covers every frame; the other two add into the frames that have
        # that neighbour (zero padding is the frames left out), in place: three passes, no pad.
        x5 = _split_time(x, self.num_segments)
        w = self.conv.weight[:, 0].t().reshape(3, 1, 1, -1, 1, 1)  # tap, then (1, 1, C, 1, 1)
        if self.causal:  # taps t-2, t-1, t
            out = x5 * w[2]
            out[:, 1:].addcmul_(x5[:, :-1], w[1])
            out[:, 2:].addcmul_(x5[:, :-2], w[0])
        else:  # taps t-1, t, t+1
            out = x5 * w[1]
            out[:, 1:].addcmul_(x5[:, :-1], w[0])
            out[:, :-1].addcmul_(x5[:, 1:], w[2])
        return out.reshape(x.shape)


class STE(TemporalModule):
    """Spatio-temporal excitation: channel mean -> Conv3d(1, 1, 3x3x3) -> sigmoid mask.

    Forward runs the Conv3d as the Conv2d it equals on the (N, T, H, W) channel-mean maps, frames
    as channels, with a banded (T, T, 3, 3) weight gathered from the Conv3d's (the parameter and
    its gradients stay the Conv3d's): zero padding in time is the taps left out of the band.
    Eager PyTorch has no fast 3-D kernel for one channel (``slow_conv3d_forward``, 0.1 ms a call)."""

    def __init__(self, channels: int, num_segments: int, causal: bool = False) -> None:
        super().__init__(channels, num_segments, causal)
        self.conv = nn.Conv3d(1, 1, 3, padding=(0, 1, 1) if causal else 1, bias=False)
        # band[t_out, t_in] = the Conv3d's time tap that reads frame t_in for frame t_out (3 = none)
        t = torch.arange(num_segments)
        tap = t[None, :] - t[:, None] + (2 if causal else 1)
        self.register_buffer("band", torch.where((tap >= 0) & (tap <= 2), tap, 3), persistent=False)

    def macs(self, shape: tuple[int, ...]) -> int:
        nt, _, h, w = shape
        return 27 * nt * h * w  # Conv3d(1, 1, 3x3x3): one output channel per frame and pixel

    def banded_weight(self) -> torch.Tensor:
        """The Conv3d's weight as the (T, T, 3, 3) weight of a Conv2d over frames-as-channels."""
        taps = F.pad(self.conv.weight[0, 0], (0, 0, 0, 0, 0, 1))  # (4, 3, 3): the time taps and a zero one
        return taps[self.band]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        t = self.num_segments
        f = x.mean(1).view(nt // t, t, h, w)  # N, T, H, W
        return torch.sigmoid(F.conv2d(f, self.banded_weight(), padding=1).view(nt, 1, h, w))


class CE(TemporalModule):
    """Channel excitation: pool -> 1x1 squeeze -> Conv1d(k=3) over T -> ReLU -> 1x1 expand."""

    def __init__(self, channels: int, num_segments: int, causal: bool = False, reduction: int = REDUCTION) -> None:
        super().__init__(channels, num_segments, causal)
        r = max(channels // reduction, 1)
        self.squeeze = nn.Conv2d(channels, r, 1, bias=False)
        self.temporal = nn.Conv1d(r, r, 3, padding=0 if causal else 1, bias=False)
        self.expand = nn.Conv2d(r, channels, 1, bias=False)

    def macs(self, shape: tuple[int, ...]) -> int:
        nt, c, r = shape[0], self.channels, self.squeeze.out_channels
        return nt * (c * r + 3 * r * r + r * c)  # squeeze, temporal Conv1d, expand on pooled vectors

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt = x.shape[0]
        t = self.num_segments
        f = _pointwise(self.squeeze, x.mean((2, 3)))  # NT, r
        r = f.shape[1]
        f = f.view(nt // t, t, r).transpose(1, 2)  # N, r, T
        f = F.relu(self.temporal(F.pad(f, (2, 0)) if self.causal else f))
        f = f.transpose(1, 2).reshape(nt, r)
        return torch.sigmoid(_pointwise(self.expand, f)).view(nt, -1, 1, 1)


class ME(TemporalModule):
    """Motion excitation: squeeze + BN, then K*F[t+1] - F[t] (zero for the last frame), pooled.

    Causal: K*F[t] - F[t-1], with F[-1] = 0. The spatial pooling is applied to K*F and F before
    the difference rather than to the difference (the official order): pooling is linear, so
    the result and its gradients are the same, and the difference runs on (N, T, r) vectors
    instead of (N, T, r, H, W) maps.
    """

    def __init__(self, channels: int, num_segments: int, causal: bool = False, reduction: int = REDUCTION) -> None:
        super().__init__(channels, num_segments, causal)
        r = max(channels // reduction, 1)
        self.squeeze = nn.Conv2d(channels, r, 1, bias=False)
        self.bn = nn.BatchNorm2d(r)
        self.conv = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.expand = nn.Conv2d(r, channels, 1, bias=False)

    def macs(self, shape: tuple[int, ...]) -> int:
        nt, c, h, w = shape
        r = self.squeeze.out_channels
        return nt * h * w * (c * r + 9 * r) + nt * r * c  # squeeze and K on the maps, expand on vectors

    def pooled_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled F = BN(squeeze(x)) and pooled K*F, (NT, r, 1, 1) each, through the maps."""
        f = self.bn(self.squeeze(x))
        # 4-D means (keepdim): the form mobile delegates run (XNNPACK takes no 2-D mean)
        return f.mean((2, 3), keepdim=True), self.conv(f).mean((2, 3), keepdim=True)

    def motion(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled motion vectors (NT, r) that ``expand`` turns into the mask."""
        t = self.num_segments
        now, nxt = self.pooled_maps(x)
        nt, r = now.shape[:2]
        now, nxt = now.reshape(nt // t, t, r), nxt.reshape(nt // t, t, r)
        if self.causal:
            d = nxt - _pad_time(now[:, :-1], 2, 1, 0)  # K*F[t] - F[t-1]
        else:
            d = _pad_time(nxt[:, 1:] - now[:, :-1], 2, 0, 1)  # zero motion for the last frame
        return d.reshape(nt, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.motion(x)
        return torch.sigmoid(_pointwise(self.expand, d)).view(d.shape[0], -1, 1, 1)


_PATHS = {"ste": STE, "ce": CE, "me": ME}


class Action(TemporalModule):
    """ACTION: learnable shift, then ``sum(x + x * mask_p for p in paths)``."""

    def __init__(self, channels: int, num_segments: int, causal: bool = False,
                 paths: tuple[str, ...] = ("ste", "ce", "me")) -> None:
        super().__init__(channels, num_segments, causal)
        self.shift = LearnableShift(channels, num_segments, causal)
        self.paths = nn.ModuleDict({p: _PATHS[p](channels, num_segments, causal) for p in paths})

    def macs(self, shape: tuple[int, ...]) -> int:
        return self.shift.macs(shape) + sum(path.macs(shape) for path in self.paths.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shift(x)
        return excite(x, [path(x) for path in self.paths.values()])


def excite(x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """``sum(x + x * m for m in masks)``, computed as ``x * (P + sum(masks))``: the channel masks
    (NT, C, 1, 1) are added first and the spatial one (NT, 1, H, W) last, so only two ops run
    on full-size tensors instead of 3P - 1."""
    masks = sorted(masks, key=lambda m: m.shape[1] == 1)
    total = masks[0] + float(len(masks))
    for m in masks[1:]:
        total = total + m
    return x * total


def _single(path: str):
    def build(channels: int, num_segments: int, causal: bool = False) -> Action:
        return Action(channels, num_segments, causal, paths=(path,))

    build.__name__ = f"build_{path}"
    return build


#: name -> constructor(channels, num_segments, causal); feeds create_model, the CLI and the tests.
#: other names of a temporal module: the method names of the TSM and TSN papers
TEMPORAL_ALIASES = {"tsm": "shift", "tsn": "none"}

TEMPORAL_MODULES = {
    "none": NoTemporal,
    "shift": TemporalShift,
    "shift_online": functools.partial(TemporalShift, online=True),
    "action": Action,
    "ste": _single("ste"),
    "ce": _single("ce"),
    "me": _single("me"),
}


class TemporalWrapper(nn.Module):
    """Runs a temporal module, then the wrapped layer of the backbone."""

    def __init__(self, temporal: TemporalModule, net: nn.Module) -> None:
        super().__init__()
        self.temporal = temporal
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.temporal(x))
