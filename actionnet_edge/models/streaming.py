"""Streaming ACTION: one frame in, logits out, with the temporal state carried explicitly.

:func:`to_streaming` builds a :class:`StreamingActionNet` from a *causal* ActionNet
(``create_model(..., causal=True)``) with the same weights. Its ``step(frame, state)``
returns ``(logits, state)``; running it frame by frame from :meth:`init_state` (zeros)
reproduces the causal clip model's per-frame logits, because zero state is exactly the
zero padding before the first frame that the clip model sees.

The state holds exactly what each temporal op needs from the past, per insertion place:

=========== ===================================================================
shift       the input of frames t-1 and t-2 (all channels for the learnable shift,
            the two shifted folds for TSM's fixed shift)
STE         the channel-mean maps of frames t-1 and t-2
CE          the pooled, squeezed vectors of frames t-1 and t-2
ME          the pooled, squeezed feature of frame t-1 (ME pools before the difference)
consensus   the per-frame logits of the last ``window - 1`` frames (none when ``window``
            is 1, the default of a ``consensus="last"`` model)
=========== ===================================================================

Every op is 4-D (2-D convolutions, concatenation, element-wise), so the step exports to
every runtime as it is; the state tensors are explicit inputs and outputs
(:meth:`StreamingActionNet.forward`), each 4-D one in ``state_layout``: NCHW (N, C, H, W), or
NHWC (N, H, W, C) for a runtime whose convolutions are NHWC (LiteRT), where NCHW state would
cost a transpose per tensor in and out.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ActionNetError
from .temporal import CE, ME, STE, Action, LearnableShift, NoTemporal, TemporalShift, TemporalWrapper, excite


class _Stateful(nn.Module):
    """A per-frame temporal op. The owner sets ``state_in`` before the backbone runs and
    reads ``state_out`` after it (the backbone's layers take a single tensor); with
    ``state_in`` None the op starts from zeros (used to probe the state shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.state_in: tuple[torch.Tensor, ...] | None = None
        self.state_out: tuple[torch.Tensor, ...] = ()

    def state_shapes(self, n: int, c: int, h: int, w: int) -> list[tuple[str, tuple[int, ...]]]:
        raise NotImplementedError

    def n_state(self) -> int:
        return len(self.state_shapes(1, 1, 1, 1))

    def _state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.state_in is not None:
            return self.state_in
        return tuple(x.new_zeros(shape) for _, shape in self.state_shapes(*x.shape))


class _Identity(_Stateful):
    def state_shapes(self, n, c, h, w):
        return []

    def forward(self, x):
        self.state_out = ()
        return x


class _Shift(_Stateful):
    """Causal shift: out[t] = w0 * x[t-2] + w1 * x[t-1] + w2 * x[t] per channel."""

    def __init__(self, src: LearnableShift | TemporalShift) -> None:
        super().__init__()
        if isinstance(src, LearnableShift):
            w = src.conv.weight.detach()[:, 0].t().reshape(3, 1, -1, 1, 1)
            for k in range(3):  # one buffer per tap: no indexing op in the exported graph
                self.register_buffer(f"w{k}", w[k].clone())
            self.fold = None
        else:
            self.fold = src.fold
        self.online = bool(getattr(src, "online", False))  # TSM's online shift: fold 0 from t-1 only

    def state_shapes(self, n, c, h, w):
        if self.online:
            return [("prev1", (n, self.fold, h, w))]
        k = c if self.fold is None else 2 * self.fold
        return [("prev1", (n, k, h, w)), ("prev2", (n, k, h, w))]

    def forward(self, x):
        if self.online:
            (p1,) = self._state(x)
            self.state_out = (x[:, : self.fold],)
            return torch.cat([p1, x[:, self.fold :]], 1)
        p1, p2 = self._state(x)
        if self.fold is None:
            y = self.w0 * p2 + self.w1 * p1 + self.w2 * x
            self.state_out = (x, p1)
            return y
        f = self.fold
        y = torch.cat([p1[:, :f], p2[:, f : 2 * f], x[:, 2 * f :]], 1)
        self.state_out = (x[:, : 2 * f], p1)
        return y


class _STE(nn.Module):
    def __init__(self, src: STE) -> None:
        super().__init__()
        c = src.channels
        self.mean = nn.Conv2d(c, 1, 1, bias=False)
        self.conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.mean.weight.fill_(1.0 / c)
            self.conv.weight.copy_(src.conv.weight.detach()[:, 0])  # (1, 3 taps t-2..t, 3, 3)

    def shapes(self, n, c, h, w):
        return [("ste_prev1", (n, 1, h, w)), ("ste_prev2", (n, 1, h, w))]

    def forward(self, x, state):
        p1, p2 = state
        m = self.mean(x)
        return torch.sigmoid(self.conv(torch.cat([p2, p1, m], 1))), (m, p1)


class _CE(nn.Module):
    def __init__(self, src: CE) -> None:
        super().__init__()
        self.squeeze, self.expand = src.squeeze, src.expand
        k = src.temporal.weight.detach()  # (r, r, 3 taps t-2..t)
        r = k.shape[0]
        self.temporal = nn.Conv2d(3 * r, r, 1, bias=False)
        with torch.no_grad():
            self.temporal.weight.copy_(torch.cat([k[:, :, 0], k[:, :, 1], k[:, :, 2]], 1)[:, :, None, None])
        self.r = r

    def shapes(self, n, c, h, w):
        return [("ce_prev1", (n, self.r, 1, 1)), ("ce_prev2", (n, self.r, 1, 1))]

    def forward(self, x, state):
        p1, p2 = state
        f = self.squeeze(x.mean((2, 3), keepdim=True))
        g = F.relu(self.temporal(torch.cat([p2, p1, f], 1)))
        return torch.sigmoid(self.expand(g)), (f, p1)


class _ME(nn.Module):
    def __init__(self, src: ME) -> None:
        super().__init__()
        self.squeeze, self.bn, self.conv, self.expand = src.squeeze, src.bn, src.conv, src.expand

    def shapes(self, n, c, h, w):
        return [("me_prev", (n, self.squeeze.out_channels, 1, 1))]

    def forward(self, x, state):
        (prev,) = state  # the pooled squeezed feature of frame t-1 (ME pools before the difference)
        f = self.bn(self.squeeze(x))
        now = f.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.expand(self.conv(f).mean((2, 3), keepdim=True) - prev)), (now,)


_PATHS = {STE: _STE, CE: _CE, ME: _ME}


class _Action(_Stateful):
    def __init__(self, src: Action) -> None:
        super().__init__()
        self.shift = _Shift(src.shift)
        self.paths = nn.ModuleList(_PATHS[type(p)](p) for p in src.paths.values())

    def state_shapes(self, n, c, h, w):
        out = self.shift.state_shapes(n, c, h, w)
        for p in self.paths:
            out += p.shapes(n, c, h, w)
        return out

    def forward(self, x):
        state = self._state(x)
        k = self.shift.n_state()
        self.shift.state_in = state[:k]
        x = self.shift(x)
        new, masks = list(self.shift.state_out), []
        for p in self.paths:
            n_state = len(p.shapes(1, 1, 1, 1))
            mask, s = p(x, state[k : k + n_state])
            k += n_state
            new += list(s)
            masks.append(mask)
        self.state_out = tuple(new)
        return excite(x, masks)


def _streaming_temporal(m: nn.Module) -> _Stateful:
    if isinstance(m, NoTemporal):
        return _Identity()
    if isinstance(m, TemporalShift):
        return _Shift(m)
    if isinstance(m, Action):
        return _Action(m)
    raise TypeError(f"no streaming form for {type(m).__name__}")


class StreamingActionNet(nn.Module):
    """Frame-by-frame form of a causal ActionNet (same weights).

    ``forward(frame, *state) -> (logits, frame_logits, *new_state)`` where ``frame`` is a
    normalised (N, 3, H, W) batch, ``frame_logits`` this frame's logits and ``logits`` their
    average over the last ``window`` frames (TSN's consensus over a sliding window).
    """

    def __init__(self, model: nn.Module, window: int | None = None) -> None:
        super().__init__()
        model = getattr(model, "module", model)
        if not model.config.get("causal", False):
            raise ActionNetError("streaming needs a causal model (model.causal: true); this one looks at future frames")
        self.config = dict(model.config)
        self.mean, self.std = model.mean, model.std
        # the running average over the last T frames; a "last" consensus model reads each frame's own
        self.window = int(window or (1 if model.config.get("consensus") == "last" else model.config["num_segments"]))
        if self.window < 1:
            raise ActionNetError(f"window must be at least 1, got {self.window}")
        self.backbone = copy.deepcopy(model.backbone)
        self.fc = copy.deepcopy(model.fc)
        self.stateful: list[_Stateful] = []
        for mod in self.backbone.modules():
            if isinstance(mod, TemporalWrapper):
                mod.temporal = _streaming_temporal(mod.temporal)
                self.stateful.append(mod.temporal)
        self.state_layout = "NCHW"
        self._shapes: dict[tuple[int, int, int], list[tuple[str, tuple[int, ...]]]] = {}
        self.eval()

    def set_state_layout(self, layout: str) -> "StreamingActionNet":
        """Carry the 4-D state tensors as NCHW (the default) or NHWC; the numbers are the same."""
        if layout not in ("NCHW", "NHWC"):
            raise ActionNetError(f"state layout must be NCHW or NHWC, got {layout}")
        self.state_layout = layout
        return self

    def _state_to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2) if self.state_layout == "NHWC" and x.dim() == 4 else x

    def _state_from_nchw(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1) if self.state_layout == "NHWC" and x.dim() == 4 else x

    def state_spec(self, batch: int = 1, size: int | tuple[int, int] = 224) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the state tensors for frames of ``size`` (4-D ones in ``state_layout``)."""
        h, w = (size, size) if isinstance(size, int) else size
        key = (batch, h, w)
        if key not in self._shapes:
            seen: list[tuple[int, ...]] = []
            hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
                     for m in self.stateful]
            for m in self.stateful:  # probe from zero state, recording each place's input shape
                m.state_in = None
            try:
                with torch.no_grad():
                    self.backbone(torch.zeros(1, 3, h, w))
            finally:
                for hk in hooks:
                    hk.remove()
            spec = []
            for i, (m, (_, c, hh, ww)) in enumerate(zip(self.stateful, seen)):
                spec += [(f"place{i:02d}_{name}", shape) for name, shape in m.state_shapes(batch, c, hh, ww)]
            if self.window > 1:
                spec.append(("consensus", (batch, self.window - 1, self.config["num_classes"])))
            self._shapes[key] = spec
        if self.state_layout == "NHWC":
            return [(name, (s[0], s[2], s[3], s[1]) if len(s) == 4 else s) for name, s in self._shapes[key]]
        return self._shapes[key]

    def init_state(self, batch: int = 1, size: int | tuple[int, int] = 224) -> list[torch.Tensor]:
        """The zero state that starts a stream."""
        return [torch.zeros(shape) for _, shape in self.state_spec(batch, size)]

    def forward(self, frame: torch.Tensor, *state: torch.Tensor):
        k = 0
        for m in self.stateful:
            n = m.n_state()
            m.state_in = tuple(self._state_to_nchw(s) for s in state[k : k + n])
            k += n
        history = self.window > 1  # window 1: no consensus state, the logits are this frame's
        if len(state) != k + history:
            raise ValueError(f"expected {k + history} state tensors, got {len(state)}")
        frame_logits = self.fc(self.backbone(frame))
        new_state = [self._state_from_nchw(s) for m in self.stateful for s in m.state_out]
        for m in self.backbone.modules():  # leave no tensor attributes behind (torch.export warns about them)
            if isinstance(m, _Stateful):
                m.state_in, m.state_out = None, ()
        if not history:
            return (frame_logits, frame_logits, *new_state)
        past = state[k]
        logits = (past.sum(1) + frame_logits) / self.window
        return (logits, frame_logits, *new_state, torch.cat([past[:, 1:], frame_logits[:, None]], 1))

    def step(self, frame: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One frame: ``(logits, new_state)``; checks the state against :meth:`state_spec`."""
        if frame.dim() != 4 or frame.shape[1] != 3:
            raise ActionNetError(f"a frame batch is (N, 3, H, W), got {tuple(frame.shape)}")
        spec = self.state_spec(frame.shape[0], (frame.shape[2], frame.shape[3]))
        if len(state) != len(spec):
            raise ActionNetError(f"state has {len(state)} tensors, expected {len(spec)}")
        for (name, shape), s in zip(spec, state):
            if tuple(s.shape) != shape:
                raise ActionNetError(f"state tensor '{name}' has shape {tuple(s.shape)}, expected {shape}")
        out = self(frame, *state)
        return out[0], list(out[2:])


def to_streaming(model: nn.Module, window: int | None = None) -> StreamingActionNet:
    """The streaming form of a causal ActionNet, in eval mode."""
    return StreamingActionNet(model, window)
