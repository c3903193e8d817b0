"""The edge form: the same ACTION-Net computation written with ops every mobile runtime runs
natively (4-D tensors, 2-D convolutions, no Conv3d, no Conv1d, no 5-D transposes).

:func:`to_edge` builds it from a trained :class:`~actionnet_edge.models.ActionNet` (same weights);
the training form stays the one model definition and the edge form is tested equal to it.
docs/ARCHITECTURE.md ("The edge form") lists each rewrite and why.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ActionNetError
from .temporal import (CE, ME, STE, Action, LearnableShift, NoTemporal, TemporalModule, TemporalShift,
                               TemporalWrapper)


def _tap_offset(src: nn.Module) -> int:
    """Frame offset of a temporal kernel's first tap: t-1 (centred) or t-2 (causal)."""
    return -2 if getattr(src, "causal", False) else -1


def band_positions(t: int, offset: int) -> list[tuple[int, int]]:
    """(output frame, input frame) pairs that one temporal tap, ``offset`` frames away, connects."""
    return [(to, to + offset) for to in range(t) if 0 <= to + offset < t]


def band_taps(weight: torch.Tensor, t: int, first: int, fallback: torch.Tensor) -> torch.Tensor:
    """The 3 temporal taps (3, r, r, ...) of a block-banded (T*r, T*r, ...) weight, the inverse of
    building it; a tap no pair of frames uses keeps ``fallback[k]``. Every block of one tap must be
    equal (QAT ties them), else the weight has no training form."""
    r = weight.shape[0] // t
    blocks = weight.detach().reshape(t, r, t, r, *weight.shape[2:]).transpose(1, 2)  # (T, T, r, r, ...)
    taps = fallback.detach().clone()
    for k in range(3):
        pairs = band_positions(t, first + k)
        if not pairs:
            continue
        tap = torch.stack([blocks[a, b] for a, b in pairs])
        spread = float((tap - tap[0]).abs().max())
        if spread > 1e-6 * max(1.0, float(tap.abs().max())):
            raise ActionNetError(f"a banded temporal weight differs between frame positions (by {spread:.3g}): its "
                                 "blocks are not tied, so it has no training or streaming form")
        taps[k] = tap[0]
    return taps


class EdgeLearnableShift(nn.Module):
    """Depthwise temporal conv as a depthwise Conv2d((3, 1)) on a (N, C, T, H*W) view."""

    def __init__(self, src: LearnableShift) -> None:
        super().__init__()
        self.t, self.causal = src.num_segments, bool(getattr(src, "causal", False))
        c = src.channels
        self.conv = nn.Conv2d(c, c, (3, 1), padding=(0, 0) if self.causal else (1, 0), groups=c, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(src.conv.weight.detach().unsqueeze(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        y = x.reshape(nt // self.t, self.t, c, h * w).transpose(1, 2)  # N, C, T, HW
        if self.causal:  # taps t-2, t-1, t
            y = F.pad(y, (0, 0, 2, 0))
        return self.conv(y).transpose(1, 2).reshape(nt, c, h, w)

    @torch.no_grad()
    def write_back(self, src: LearnableShift) -> None:
        src.conv.weight.copy_(self.conv.weight.squeeze(-1))


class EdgeSTE(nn.Module):
    """STE with a fixed-weight 1x1 conv for the channel mean and a banded Conv2d(T, T) for Conv3d."""

    def __init__(self, src: STE) -> None:
        super().__init__()
        t, c = src.num_segments, src.channels
        self.t, self.tap_offset = t, _tap_offset(src)  # the band's first tap (QAT keeps it banded)
        self.mean = nn.Conv2d(c, 1, 1, bias=False)
        self.conv = nn.Conv2d(t, t, 3, padding=1, bias=False)
        with torch.no_grad():
            self.mean.weight.fill_(1.0 / c)
            self.conv.weight.copy_(src.banded_weight())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, _, h, w = x.shape
        f = self.mean(x).reshape(nt // self.t, self.t, h, w)  # frames as channels
        return torch.sigmoid(self.conv(f).reshape(nt, 1, h, w))

    @torch.no_grad()
    def write_back(self, src: STE) -> None:
        taps = band_taps(self.conv.weight, self.t, self.tap_offset, src.conv.weight[0, 0][:, None, None])  # (3, 1, 1, 3, 3)
        src.conv.weight.copy_(taps[:, 0, 0][None, None])


class VectorLinear(nn.Linear):
    """A temporal module's layer on pooled vectors: a type of its own, so that quantizers tell it
    from the classifier (which the litert quantizer leaves float)."""


def _linear(conv: nn.Conv2d) -> VectorLinear:
    """A bias-free 1x1 Conv2d as the Linear it is on pooled (M, C) vectors."""
    lin = VectorLinear(conv.in_channels, conv.out_channels, bias=False)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.detach().flatten(1))
    return lin


def _pool(x: torch.Tensor) -> torch.Tensor:
    """(M, C, H, W) -> (M, C) spatial means, as the 4-D mean mobile delegates run (no 2-D mean)."""
    return x.mean((2, 3), keepdim=True).flatten(1)


class EdgeCE(nn.Module):
    """CE on the pooled (NT, C) vectors as matrix products (fully connected layers: no layout
    changes), the temporal Conv1d(r, r, 3) as a block-banded Linear(T*r, T*r). Returns the
    (NT, C) mask."""

    def __init__(self, src: CE) -> None:
        super().__init__()
        t = src.num_segments
        self.t, self.tap_offset = t, _tap_offset(src)
        self.squeeze, self.expand = _linear(src.squeeze), _linear(src.expand)
        k1 = src.temporal.weight.detach()  # (r, r, 3)
        r = k1.shape[0]
        self.temporal = VectorLinear(t * r, t * r, bias=False)
        off = _tap_offset(src)
        w = torch.zeros(t * r, t * r, dtype=k1.dtype)
        for to in range(t):
            for k in range(3):
                ti = to + k + off
                if 0 <= ti < t:
                    w[to * r:(to + 1) * r, ti * r:(ti + 1) * r] = k1[:, :, k]
        with torch.no_grad():
            self.temporal.weight.copy_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt = x.shape[0]
        f = self.squeeze(_pool(x))  # NT, r
        r = f.shape[1]
        f = F.relu(self.temporal(f.reshape(nt // self.t, self.t * r)))
        return torch.sigmoid(self.expand(f.reshape(nt, r)))

    @torch.no_grad()
    def write_back(self, src: CE) -> None:
        src.squeeze.weight.copy_(self.squeeze.weight.reshape(src.squeeze.weight.shape))
        src.expand.weight.copy_(self.expand.weight.reshape(src.expand.weight.shape))
        src.temporal.weight.copy_(band_taps(self.temporal.weight, self.t, self.tap_offset,
                                                src.temporal.weight.permute(2, 0, 1)).permute(1, 2, 0))


class EdgeME(ME):
    """ME's training form (it pools before the frame difference: the difference runs on (NT, r)
    vectors) with ``expand`` as a Linear on them. Returns the (NT, C) mask."""

    def __init__(self, src: ME) -> None:
        TemporalModule.__init__(self, src.channels, src.num_segments, src.causal)  # not ME's: no new weights
        # the same submodule names as ME
        self.squeeze, self.bn, self.conv = (copy.deepcopy(m) for m in (src.squeeze, src.bn, src.conv))
        self.expand = _linear(src.expand)

    def motion(self, x: torch.Tensor) -> torch.Tensor:
        """As ME's; causal: ``K*F[t] - F[t-1]`` with the first frame's ``K*F[0]`` joined on rather
        than a zero frame padded on (an int8 pad there is a node XNNPACK refuses to build)."""
        if not self.causal:
            return super().motion(x)
        t = self.num_segments
        now, nxt = self.pooled_maps(x)
        nt, r = now.shape[:2]
        now, nxt = now.reshape(nt // t, t, r), nxt.reshape(nt // t, t, r)
        return torch.cat([nxt[:, :1], nxt[:, 1:] - now[:, :-1]], dim=1).reshape(nt, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.expand(self.motion(x)))

    @torch.no_grad()
    def write_back(self, src: ME) -> None:
        for name in ("squeeze", "bn", "conv"):
            getattr(src, name).load_state_dict(getattr(self, name).state_dict())
        src.expand.weight.copy_(self.expand.weight.reshape(src.expand.weight.shape))


class EdgeAction(nn.Module):
    """ACTION: shift, then ``x * (P + sum of the path masks)`` (= ``sum(x + x * m_p)``, see excite).
    CE and ME make (NT, C) masks, summed before the one reshape to (NT, C, 1, 1); STE's
    (NT, 1, H, W) mask is added last."""

    def __init__(self, src: Action) -> None:
        super().__init__()
        self.shift = EdgeLearnableShift(src.shift)
        self.paths = nn.ModuleList(_EDGE_PATHS[type(p)](p) for p in src.paths.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shift(x)
        vectors = [p(x) for p in self.paths if not isinstance(p, EdgeSTE)]
        total = float(len(self.paths))
        for m in vectors:
            total = total + m
        if vectors:
            total = total.reshape(*total.shape, 1, 1)
        for p in self.paths:
            if isinstance(p, EdgeSTE):
                total = total + p(x)
        return x * total

    def write_back(self, src: Action) -> None:
        self.shift.write_back(src.shift)
        for edge, path in zip(self.paths, src.paths.values()):
            edge.write_back(path)


_EDGE_PATHS = {STE: EdgeSTE, CE: EdgeCE, ME: EdgeME}


class EdgeShift(nn.Module):
    """TSM's zero-padded shift on a 4-D (N, T, C, H*W) view."""

    def __init__(self, src: TemporalShift) -> None:
        super().__init__()
        self.t, self.fold, self.causal = src.num_segments, src.fold, bool(getattr(src, "causal", False))
        self.online = bool(getattr(src, "online", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        y = x.reshape(nt // self.t, self.t, c, h * w)
        f = self.fold
        if self.online:  # TSM's online demo: fold 0 <- t-1, the rest unchanged
            left = F.pad(y[:, :-1, :f], (0, 0, 0, 0, 1, 0))
            return torch.cat([left, y[:, :, f:]], dim=2).reshape(nt, c, h, w)
        if self.causal:
            left = F.pad(y[:, :-1, :f], (0, 0, 0, 0, 1, 0))  # frame t <- t-1
            right = F.pad(y[:, :-2, f:2 * f], (0, 0, 0, 0, 2, 0))  # frame t <- t-2
        else:
            left = F.pad(y[:, 1:, :f], (0, 0, 0, 0, 0, 1))  # frame t <- t+1
            right = F.pad(y[:, :-1, f:2 * f], (0, 0, 0, 0, 1, 0))  # frame t <- t-1
        return torch.cat([left, right, y[:, :, 2 * f:]], dim=2).reshape(nt, c, h, w)


def edge_temporal(m: nn.Module) -> nn.Module:
    """The edge form of one temporal module (training form -> export form, same weights)."""
    if isinstance(m, NoTemporal):
        return nn.Identity()
    if isinstance(m, TemporalShift):
        return EdgeShift(m)
    if isinstance(m, Action):
        return EdgeAction(m)
    raise TypeError(f"no edge form for temporal module {type(m).__name__}")


class EdgeActionNet(nn.Module):
    """(N, T, 3, H, W) normalised clips -> (N, K) clip logits, like ActionNet.forward (either consensus)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = dict(model.config)
        self.mean, self.std = model.mean, model.std
        self.num_segments = int(model.config["num_segments"])
        self.backbone = copy.deepcopy(model.backbone)
        for name, mod in list(self.backbone.named_modules()):
            if isinstance(mod, TemporalWrapper):
                mod.temporal = edge_temporal(mod.temporal)
        self.fc = copy.deepcopy(model.fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = x.shape
        feats = self.backbone(x.reshape(n * t, c, h, w))  # NT, D
        if self.config.get("consensus", "avg") == "last":
            return self.fc(feats.reshape(n, t, -1)[:, -1])
        # consensus before the (linear) classifier, as a 4-D spatial mean that XNNPACK delegates
        feats = feats.reshape(n, t, -1).transpose(1, 2).unsqueeze(-1)  # N, D, T, 1
        return self.fc(feats.mean((2, 3), keepdim=True).flatten(1))


class NHWCInput(nn.Module):
    """Takes (N, T, H, W, 3) clips (camera layout) and feeds the NCHW model; 4-D permute only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, h, w, c = x.shape
        y = x.reshape(n * t, h, w, c).permute(0, 3, 1, 2)
        return self.model(y.reshape(n, t, c, h, w))


def to_edge(model: nn.Module) -> EdgeActionNet:
    """The export form of a trained ActionNet, in eval mode, numerically equal to ``model.eval()``."""
    model = getattr(model, "module", model)
    return EdgeActionNet(model).eval()


def to_training(edge: EdgeActionNet, model: nn.Module) -> nn.Module:
    """The inverse of :func:`to_edge`: a copy of the training-form ``model`` (same config) carrying
    ``edge``'s weights and BN statistics (e.g. a QAT graph's), in eval mode. Taps no frame pair of
    the edge form uses keep ``model``'s values."""
    model = copy.deepcopy(getattr(model, "module", model))
    own = model.state_dict()
    theirs = edge.state_dict()
    model.load_state_dict({k: theirs[k] if k in theirs and theirs[k].shape == v.shape else v for k, v in own.items()})
    edge_mods = dict(edge.backbone.named_modules())
    for name, mod in model.backbone.named_modules():
        if isinstance(mod, TemporalWrapper):
            write = getattr(edge_mods[name].temporal, "write_back", None)
            if write is not None:
                write(mod.temporal)
    return model.eval()


def with_layout(model: nn.Module, layout: str) -> nn.Module:
    """``model`` taking NCHW clips, or wrapped to take NHWC (N, T, H, W, 3) clips."""
    if layout == "NCHW":
        return model
    if layout == "NHWC":
        return NHWCInput(model).eval()
    raise ValueError(f"layout must be NCHW or NHWC, got {layout}")
