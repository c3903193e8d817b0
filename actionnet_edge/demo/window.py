"""The demo logic every app mirrors: preprocessing, the sliding window of T frames, smoothing.

This module is the reference implementation. The browser demo (``web_demo/demo.js``) and
the Android / iOS apps implement the same three steps, with the same arithmetic, and are
checked against it (the browser in headless Chromium, the apps with golden files):

1. **Preprocess one frame** (RGB uint8, H x W x 3) exactly as ``metadata.json`` says:
   resize the shorter side to ``resize`` and centre-crop ``size`` x ``size`` in one pass of
   bilinear sampling, then ``(v / 255 - mean[c]) / std[c]``. For output pixel (i, j)::

       scale = resize / min(H, W);  rw = round(W * scale);  rh = round(H * scale)
       x0 = (rw - size) // 2;       y0 = (rh - size) // 2        # integer floor division
       sx = (x0 + j + 0.5) * W / rw - 0.5, clamped to [0, W - 1]  # half-pixel centres
       sy = (y0 + i + 0.5) * H / rh - 0.5, clamped to [0, H - 1]
       xl = floor(sx); xh = min(xl + 1, W - 1); fx = sx - xl     (same for y)
       v  = (1-fy)*((1-fx)*P[yl,xl] + fx*P[yl,xh]) + fy*((1-fx)*P[yh,xl] + fx*P[yh,xh])

   ``round`` is round-half-up (``floor(x + 0.5)``) so JavaScript, Kotlin and Swift agree.
   Arithmetic in double precision, the result stored as float32 in (3, size, size) order.
2. **Sliding window**: every ``stride``-th incoming frame is preprocessed and appended to
   a window of the last T (= ``segments``) frames; once the window is full, each new frame
   gives a clip (1, T, 3, size, size) to run (NCHW; the runner converts to its layout).
3. **Smoothing**: softmax of the clip logits, then an exponential moving average
   ``s = alpha * s + (1 - alpha) * p`` (the first window sets ``s = p``); the top-k of
   ``s`` is shown.
"""
from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ActionNetError

METADATA = "metadata.json"
REQUIRED = ("labels", "segments", "size", "mean", "std")


@dataclass(frozen=True)
class Preprocess:
    """The per-frame preprocessing of ``metadata.json`` (see the module docstring)."""

    size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "Preprocess":
        size = int(meta["size"])
        resize = int(meta.get("resize") or _round_half_up(size * 256 / 224))
        return cls(size, resize, tuple(float(v) for v in meta["mean"]), tuple(float(v) for v in meta["std"]))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 (H, W, 3) -> float32 (3, size, size)."""
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ActionNetError(f"expected an RGB frame of shape (H, W, 3), got {tuple(frame.shape)}")
        h, w = frame.shape[:2]
        yl, yh, fy = _taps(h, w, self.resize, self.size, vertical=True)
        xl, xh, fx = _taps(h, w, self.resize, self.size, vertical=False)
        p = frame.astype(np.float64)
        fx, fy = fx[None, :, None], fy[:, None, None]
        top = (1 - fx) * p[yl][:, xl] + fx * p[yl][:, xh]
        bot = (1 - fx) * p[yh][:, xl] + fx * p[yh][:, xh]
        v = (1 - fy) * top + fy * bot
        v = (v / 255.0 - np.asarray(self.mean)) / np.asarray(self.std)
        return np.ascontiguousarray(v.transpose(2, 0, 1), dtype=np.float32)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _taps(h: int, w: int, resize: int, size: int, *, vertical: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (low, high) and weights of the bilinear taps along one axis."""
    scale = resize / min(h, w)
    n = h if vertical else w
    rn = _round_half_up(n * scale)
    o = (rn - size) // 2
    s = (o + np.arange(size) + 0.5) * n / rn - 0.5
    s = np.clip(s, 0, n - 1)
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, s - lo


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass
class SlidingWindow:
    """Frames in, a clip out every frame once T frames are in, smoothed scores out.

    ``stride``: keep every stride-th frame (1 = every frame). ``alpha``: weight of the
    previous scores in the moving average (0 = no smoothing).
    """

    labels: list[str]
    segments: int
    preprocess: Preprocess
    stride: int = 1
    alpha: float = 0.5
    frames: deque = field(init=False, repr=False)
    scores: np.ndarray | None = field(init=False, default=None, repr=False)
    seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ActionNetError(f"stride must be >= 1, got {self.stride}")
        if not 0.0 <= self.alpha < 1.0:
            raise ActionNetError(f"smoothing alpha must be in [0, 1), got {self.alpha}")
        self.frames = deque(maxlen=self.segments)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any], *, stride: int = 1, alpha: float = 0.5) -> "SlidingWindow":
        return cls(list(meta["labels"]), int(meta["segments"]), Preprocess.from_metadata(meta), stride, alpha)

    def push(self, frame: np.ndarray) -> bool:
        """Offer one RGB uint8 frame; True when it entered a full window (time to run the model)."""
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return False
        self.frames.append(self.preprocess(frame))
        return len(self.frames) == self.segments

    def clip(self) -> np.ndarray:
        """The current window as a (1, T, 3, size, size) float32 NCHW clip."""
        if len(self.frames) < self.segments:
            raise ActionNetError(f"the window holds {len(self.frames)} of {self.segments} frames")
        return np.stack(self.frames)[None]

    def update(self, logits: np.ndarray) -> np.ndarray:
        """Fold one clip's logits (K,) or (1, K) into the smoothed probabilities; returns them."""
        p = softmax(np.asarray(logits).reshape(-1))
        if p.shape[0] != len(self.labels):
            raise ActionNetError(f"the model gives {p.shape[0]} scores for {len(self.labels)} labels")
        self.scores = p if self.scores is None else self.alpha * self.scores + (1 - self.alpha) * p
        return self.scores

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k best (label, smoothed probability), best first; [] before the first clip."""
        if self.scores is None:
            return []
        idx = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.labels[i], float(self.scores[i])) for i in idx]

    def reset(self) -> None:
        self.frames.clear()
        self.scores = None
        self.seen = 0


def read_metadata(artifact_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``metadata.json`` of an exported artifact folder."""
    d = Path(artifact_dir)
    if not d.is_dir():
        raise ActionNetError(f"artifact folder not found: {d}")
    f = d / METADATA
    if not f.is_file():
        raise ActionNetError(f"{d} has no {METADATA}; export a model with 'actionnet-edge export' first")
    try:
        meta = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ActionNetError(f"{f} is not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise ActionNetError(f"{f} must hold a JSON object")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ActionNetError(f"{f} lacks {', '.join(missing)}")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ActionNetError(f"{f}: 'labels' must be a non-empty list of strings")
    try:
        pre = Preprocess.from_metadata(meta)
        segments = int(meta["segments"])
    except (TypeError, ValueError) as e:
        raise ActionNetError(f"{f}: bad preprocessing values ({e})") from None
    if len(pre.mean) != 3 or len(pre.std) != 3 or min(pre.std) <= 0 or pre.size < 1 or segments < 1:
        raise ActionNetError(f"{f}: need 3 mean and 3 positive std values, size >= 1 and segments >= 1")
    if pre.resize < pre.size:
        raise ActionNetError(f"{f}: resize ({pre.resize}) is smaller than size ({pre.size})")
    return meta
