"""A procedural gesture set whose classes come in time-reversed pairs.

Every clip shows one object (a shape with an off-centre marker) on a textured background
doing one gesture: swiping left/right, sliding up/down, rotating clockwise/anticlockwise or
zooming in/out. A clip of class ``2p + 1`` is drawn exactly like one of class ``2p`` and
then played backwards, so both classes of a pair have the same distribution of single
frames: only the order of the frames (the direction of time) tells them apart. A model
without temporal modelling (TSN) is at chance within each pair.

Randomised per clip: background gradient and static distractor blobs, object shape,
colours, size, position, travel, speed and timing of the motion, a small drift, camera
shake, brightness flicker and pixel noise. Everything is deterministic per
``(seed, split, index)``.

* :class:`SyntheticGestures` -- the in-memory dataset (the ``synthetic`` dataset with no root),
  sampled and transformed by the shared TSN sampling and transforms;
* :func:`write_jester` -- the same clips written in the 20BN-Jester layout (``data synth``);
* :func:`make_clips` -- a few clips as uint8 frames and normalised tensors (tests, parity, demos);
* :func:`write_mp4` -- a clip as an H.264 ``.mp4`` (PyAV) for demos.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ActionNetError
from .tree import building, save_frames


__all__ = ["LABELS", "PAIRS", "SyntheticGestures", "render_clip", "write_jester", "make_clips", "write_mp4",
           "DEFAULT_FRAMES", "DEFAULT_COUNTS"]

#: class names; classes 2p and 2p+1 are time-reversed twins (forward first).
LABELS: list[str] = [
    "Swiping Right", "Swiping Left",
    "Sliding Down", "Sliding Up",
    "Rotating Clockwise", "Rotating Anticlockwise",
    "Zooming In", "Zooming Out",
]
PAIRS: list[tuple[int, int]] = [(i, i + 1) for i in range(0, len(LABELS), 2)]
DEFAULT_FRAMES = 16
DEFAULT_COUNTS = {"train": 4000, "val": 800}
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
_MEAN, _STD = IMAGENET_MEAN, IMAGENET_STD


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_ID[split], int(index)])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _shape_sdf(kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (in object units, radius 1) of circle, square, diamond, cross, bar or ellipse."""
    if kind == 4:  # bar: a long rectangle along u
        return np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.34)
    if kind == 5:  # ellipse, axes 1 and 0.42 (approximate distance, exact on the boundary)
        return (np.sqrt(u * u + (v / 0.42) ** 2) - 1.0) * 0.42
    if kind == 0:
        return np.sqrt(u * u + v * v) - 1.0
    if kind == 1:
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if kind == 2:
        return (np.abs(u) + np.abs(v)) / 1.2 - 1.0
    arm = np.minimum(np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.38), np.maximum(np.abs(u) - 0.38, np.abs(v) - 1.0))
    return arm


def render_clip(label: int, rng: np.random.Generator, frames: int = DEFAULT_FRAMES,
                height: int = 64, width: int = 64) -> np.ndarray:
    """Draw one clip of class ``label``: uint8 ``(frames, height, width, 3)`` RGB."""
    if not 0 <= label < len(LABELS):
        raise ActionNetError(f"synthetic label must be in 0..{len(LABELS) - 1}, got {label}")
    if frames < 2 or height < 8 or width < 8:
        raise ActionNetError(f"need at least 2 frames of 8x8 pixels, got {frames} frames of {height}x{width}")
    pair, reverse = divmod(label, 2)
    s = float(min(height, width))
    # pixel grid in units of the shorter side, (0, 0) = top left
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys = (ys + 0.5 - height / 2) / s + 0.5
    xs = (xs + 0.5 - width / 2) / s + 0.5
    bg = _background(rng, xs, ys)
    kind, col, mcol, radius = _object(rng, bg)
    path = _trajectory(rng, pair, frames, kind, radius)
    out = _draw(rng, path, xs, ys, bg, col, mcol, aa=1.5 / s)  # anti-aliasing width: 1.5 px
    if reverse:
        out = out[::-1]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _background(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A two-colour linear gradient with static soft blobs, (H, W, 3) float32."""
    c0, c1 = rng.uniform(0.0, 1.0, 3), rng.uniform(0.0, 1.0, 3)
    ang = rng.uniform(0, 2 * np.pi)
    g = np.clip((np.cos(ang) * (xs - 0.5) + np.sin(ang) * (ys - 0.5)) + 0.5, 0, 1)[..., None]
    bg = c0 * (1 - g) + c1 * g
    for _ in range(rng.integers(1, 4)):
        bx, by, br = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.25)
        a = np.clip(1.2 - np.sqrt((xs - bx) ** 2 + (ys - by) ** 2) / br, 0, 1)[..., None] * rng.uniform(0.3, 0.7)
        bg = bg * (1 - a) + rng.uniform(0, 1, 3) * a
    return bg.astype(np.float32)


def _object(rng: np.random.Generator, bg: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, float]:
    """The object's shape, colour (contrasting with the background), marker colour and radius."""
    kind = int(rng.integers(0, 4))
    col = rng.uniform(0, 1, 3)
    lum = np.array([0.299, 0.587, 0.114])
    bg_lum, col_lum = float(bg.mean((0, 1)) @ lum), float(col @ lum)
    if abs(col_lum - bg_lum) < 0.3:  # keep the object visible: push it away in brightness
        col = col * 0.25 if bg_lum > 0.5 else 0.7 + 0.3 * col
    mcol = np.clip(1.0 - col + rng.uniform(-0.1, 0.1, 3), 0, 1)
    return kind, col, mcol, rng.uniform(0.11, 0.17)


def _trajectory(rng: np.random.Generator, pair: int, f: int, kind: int, radius: float) -> dict:
    """Per-frame centre, angle and scale of the forward gesture of ``pair``: motion between t0 and
    t1 (smoothstep) with a hold before and after, drift and camera shake; shape and marker too."""
    t = np.linspace(0, 1, f)
    t0, t1 = rng.uniform(0.0, 0.25), rng.uniform(0.75, 1.0)
    p = _smoothstep((t - t0) / (t1 - t0))
    cx = np.full(f, rng.uniform(0.35, 0.65))
    cy = np.full(f, rng.uniform(0.35, 0.65))
    theta = np.full(f, rng.uniform(0, 2 * np.pi))
    scale = np.full(f, radius)
    mark_r, mark_u = 0.3, 0.55  # orientation marker radius and offset, in object units
    drift = rng.normal(0, 0.02, 2)
    if pair == 0:  # swipe right (forward)
        d = rng.uniform(0.35, 0.6)
        cx = 0.5 + rng.uniform(-0.08, 0.08) - d / 2 + d * p
        cy = np.full(f, rng.uniform(0.3, 0.7))
    elif pair == 1:  # slide down (forward)
        d = rng.uniform(0.35, 0.6)
        cy = 0.5 + rng.uniform(-0.08, 0.08) - d / 2 + d * p
        cx = np.full(f, rng.uniform(0.3, 0.7))
    elif pair == 2:  # rotate clockwise (image y points down: growing angle turns clockwise)
        # An elongated object (bar or ellipse, like a hand turning at the wrist) pivoting about
        # its lower end, starting near upright and turned by 80-125 degrees, with a marker at
        # the tip. Turning about the object's own centre would leave no net motion (its two
        # ends move in opposite directions) and a square or cross looks alike after a quarter
        # turn either way: from scratch, at 32 px, neither direction was learnt at all.
        kind = 4 + kind % 2
        theta = -np.pi / 2 + (theta - np.pi) / 3 + rng.uniform(0.45, 0.7) * np.pi * p
        scale = scale * 1.6
        px, py = rng.uniform(0.4, 0.6), 0.5 + 0.7 * scale[0]
        cx, cy = px + scale * np.cos(theta), py + scale * np.sin(theta)
        mark_r, mark_u = 0.26, 0.66
    else:  # zoom in
        k = rng.uniform(1.8, 2.5)
        s0 = rng.uniform(0.07, 0.1)
        scale = s0 * k ** p
    cx = cx + drift[0] * t + rng.normal(0, 0.004, f)  # drift + camera shake
    cy = cy + drift[1] * t + rng.normal(0, 0.004, f)
    return {"kind": kind, "cx": cx, "cy": cy, "theta": theta, "scale": scale, "mark_r": mark_r, "mark_u": mark_u}


def _draw(rng: np.random.Generator, path: dict, xs: np.ndarray, ys: np.ndarray, bg: np.ndarray,
          col: np.ndarray, mcol: np.ndarray, aa: float) -> np.ndarray:
    """The frames (F, H, W, 3) float32: the object along ``path`` over ``bg``, flicker and noise."""
    cx, cy, theta, scale = path["cx"], path["cy"], path["theta"], path["scale"]
    kind, mark_r, mark_u = path["kind"], path["mark_r"], path["mark_u"]
    f = len(cx)
    flicker = 1.0 + rng.normal(0, 0.03, f)
    noise = rng.uniform(0.01, 0.05)
    out = np.empty((f, *xs.shape, 3), dtype=np.float32)
    for i in range(f):
        dx, dy = xs - cx[i], ys - cy[i]
        c, sn = np.cos(theta[i]), np.sin(theta[i])
        u, v = (c * dx + sn * dy) / scale[i], (-sn * dx + c * dy) / scale[i]
        body = np.clip(0.5 - _shape_sdf(kind, u, v) * scale[i] / aa, 0, 1)[..., None]
        mark = np.clip(0.5 - (np.sqrt((u - mark_u) ** 2 + v * v) - mark_r) * scale[i] / aa, 0, 1)[..., None]
        img = bg * (1 - body) + col * body
        img = img * (1 - mark) + mcol * mark
        out[i] = img * flicker[i] + rng.normal(0, noise, img.shape)
    return out


class _ArraySource:
    """``read(indices)`` over rendered frames, as the shared ``ClipDataset.sample_from`` expects."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # F, 3, H, W

    def __len__(self) -> int:
        return self.frames.shape[0]

    def read(self, indices: Sequence[int]) -> list[torch.Tensor]:
        return [self.frames[i] for i in indices]


def _base():
    from .datasets import ClipDataset  # late: data/__init__ imports this module lazily

    return ClipDataset


class SyntheticGestures(_base()):  # type: ignore[misc]
    """The synthetic gestures in memory: ``dataset[i]`` -> ``Sample(clip, label, name)``.

    Frames are rendered at ``frame_size`` (default: the transform's resize side, so the
    evaluation centre crop keeps most of the scene), then sampled (TSN segments) and
    transformed exactly like frames read from disk.

    Args:
        split: ``train`` or ``val`` (``test`` is a third independent draw).
        segments, size, train, mean, std, clips, crops, flip, seed, augment: as :func:`build_dataset`.
        n: number of clips (default 4000 train / 800 val).
        frames: frames rendered per clip.
        frame_size: ``(height, width)`` of the rendered frames.
    """

    def __init__(self, split: str = "train", segments: int = 8, size: int = 64, mean: Sequence[float] = _MEAN,
                 std: Sequence[float] = _STD, train: bool = False, *, n: int | None = None,
                 frames: int = DEFAULT_FRAMES, frame_size: tuple[int, int] | int | None = None, seed: int = 0,
                 clips: int = 1, crops: int = 1, flip: bool = False, augment: str = "multiscale") -> None:
        super().__init__(segments=segments, size=size, train=train, mean=mean, std=std, clips=clips, crops=crops,
                         flip=flip, seed=seed, augment=augment)
        if split not in _SPLIT_ID:
            raise ActionNetError(f"unknown split '{split}'; valid: {', '.join(_SPLIT_ID)}")
        self.split = split
        self.n = int(DEFAULT_COUNTS.get(split, DEFAULT_COUNTS["val"]) if n is None else n)
        if self.n < 1:
            raise ActionNetError(f"synthetic set needs n >= 1 clips, got {self.n}")
        self.num_frames = int(frames)
        from .transforms import resize_for

        fs = frame_size if frame_size is not None else resize_for(size)
        self.frame_size = (fs, fs) if isinstance(fs, int) else (int(fs[0]), int(fs[1]))
        self.labels = list(LABELS)
        self.items = []  # no files: __getitem__ is overridden
        self._finish()

    def __len__(self) -> int:
        return self.n

    def label_of(self, i: int) -> int:
        """Classes are balanced: clip ``i`` has class ``i mod K``."""
        return i % len(LABELS)

    def name_of(self, i: int) -> str:
        return f"synth-{self.split}-{i:06d}"

    def raw(self, i: int) -> tuple[np.ndarray, int]:
        """All rendered frames of clip ``i`` (uint8 ``(F, H, W, 3)``) and its label."""
        if not 0 <= i < self.n:
            raise IndexError(f"clip {i} out of range 0..{self.n - 1}")
        label = self.label_of(i)
        h, w = self.frame_size
        return render_clip(label, _rng(self.seed, self.split, i), self.num_frames, h, w), label

    def __getitem__(self, i: int):
        frames, label = self.raw(i)
        return self.sample_from(_ArraySource(frames), len(frames), label, self.name_of(i), self._rng(i))


def _parse_hw(size: str | int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, tuple):
        return int(size[0]), int(size[1])
    h, sep, w = str(size).lower().partition("x")
    try:
        return (int(h), int(w)) if sep else (int(h), int(h))
    except ValueError:
        raise ActionNetError(f"size must be HxW or N (pixels), got '{size}'") from None


def write_jester(out: str | Path, train: int = 2000, val: int = 400, size: str | int | tuple[int, int] = "74x74",
                 frames: int = DEFAULT_FRAMES, seed: int = 0, quality: int = 95) -> Path:
    """Write the synthetic set in the 20BN-Jester v1 layout; returns ``out``.

    ``jester-v1-labels.csv``, ``jester-v1-train.csv`` / ``jester-v1-validation.csv``
    (``id;label``) and frames ``20bn-jester-v1/<id>/00001.jpg ...``. Train clips have ids
    ``1..train``, validation clips follow. Clip ``i`` of a split is the same clip as
    ``SyntheticGestures(split, n=..., frames=frames, frame_size=size, seed=seed).raw(i)``.
    The tree is built in a temporary folder next to ``out`` and moved into place.
    """
    h, w = _parse_hw(size)
    if train < 1 or val < 1:
        raise ActionNetError(f"need at least one train and one val clip, got train={train}, val={val}")
    if h < 8 or w < 8 or frames < 2:
        raise ActionNetError(f"need frames >= 2 and size >= 8x8, got {frames} frames of {h}x{w}")
    with building(out, train + val, "synth") as (tmp, tick):
        (tmp / "jester-v1-labels.csv").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
        vid = 0
        for split, count, fname in (("train", train, "jester-v1-train.csv"), ("val", val, "jester-v1-validation.csv")):
            rows = []
            for i in range(count):
                vid += 1
                label = i % len(LABELS)
                save_frames(tmp / "20bn-jester-v1" / str(vid), render_clip(label, _rng(seed, split, i), frames, h, w),
                            quality)
                rows.append(f"{vid};{LABELS[label]}")
                tick()
            (tmp / fname).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Path(out)


def make_clips(n: int = 4, segments: int = 8, size: int = 64, seed: int = 0, split: str = "val",
               mean: Sequence[float] = _MEAN, std: Sequence[float] = _STD) -> dict[str, Any]:
    """``n`` evaluation clips (centre frames, centre crop) for tests, parity checks and demos.

    Returns ``{"frames": uint8 (n, T, S, S, 3), "clips": float (n, T, 3, S, S) normalised,
    "labels": LongTensor (n,), "names": list[str], "label_names": LABELS}``. Clip ``i`` has
    class ``i mod 8``.
    """
    ds = SyntheticGestures(split, segments, size, mean, std, train=False, n=max(n, 1), seed=seed)
    m = torch.tensor(list(mean)).view(1, 3, 1, 1)
    sd = torch.tensor(list(std)).view(1, 3, 1, 1)
    clips, frames, labels = [], [], []
    for i in range(n):
        s = ds[i]
        clips.append(s.clip)
        frames.append(((s.clip * sd + m) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
        labels.append(s.label)
    return {
        "frames": torch.stack(frames).numpy(),
        "clips": torch.stack(clips),
        "labels": torch.tensor(labels, dtype=torch.long),
        "names": [ds.name_of(i) for i in range(n)],
        "label_names": list(LABELS),
    }


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = 12) -> Path:
    """Write uint8 RGB frames ``(F, H, W, 3)`` as an H.264 ``.mp4`` (odd sides are cropped by one)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ActionNetError(f"expected uint8 frames (F, H, W, 3), got {frames.shape} {frames.dtype}")
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        with av.open(tmp, mode="w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": "18"}
            for fr in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[:h, :w]), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
