"""Frames-to-tensor transforms of TSN / TSM / ACTION-Net, on uint8 clips ``(T, 3, H, W)``.

Training (official ``GroupMultiScaleCrop``): frames are considered at shorter side
``resize`` (= round(size * 256 / 224)); a crop whose sides are picked from
``scales * shorter side`` (aspect distortion at most one scale step) is placed at one of
13 fixed positions (corners, centre, edge centres, quarters), then resized to
``size x size``. One crop for every frame of a clip. Evaluation: shorter side to
``resize``, centre crop ``size`` (``crops=3``: left/centre/right crops along the longer
side, as TSM's ``GroupFullResSample``). The crop box is mapped back to the source frame and
cut and resized in one interpolation (the same geometry, one resampling instead of two).

``augment="light"`` (for small or synthetic sets trained from scratch) keeps the whole
frame in view instead: evaluation resizes the whole frame to ``size x size``; training
resizes it to a random ``h x w`` with each side in ``LIGHT_SCALE * size`` and places it at a
random spot of the ``size x size`` canvas, the rest at the normalised mean (zero), and gives the
clip one random gain and offset per colour channel. No content is cut, so a gesture near the
edge of a wide frame stays in every view; the colour change keeps a model from telling a small
set's clips apart by their scenes' colours alone.

Horizontal flip is only done with a label-swap map (a flipped "Swiping Left" is "Swiping
Right"): :func:`make_flip_map` builds one from the label names.
"""
from __future__ import annotations

import random
import re
from typing import Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from ..errors import ActionNetError

__all__ = [
    "AUGMENTS", "LIGHT_GAIN", "LIGHT_OFFSET", "LIGHT_SCALE", "SCALES", "DIRECTION_WORDS", "ClipTransform", "make_flip_map", "multiscale_crop_box",
    "three_crop_boxes", "center_crop_box", "resize_for",
]

SCALES = (1.0, 0.875, 0.75, 0.66)
#: training augmentations: the paper's multi-scale corner crops, or the whole frame with a small scale jitter
AUGMENTS = ("multiscale", "light")
LIGHT_SCALE = (0.8, 1.0)
#: ``light``: per clip and colour channel, a gain in 1 +- LIGHT_GAIN and an offset in +- LIGHT_OFFSET (normalised units)
LIGHT_GAIN, LIGHT_OFFSET = 0.2, 0.3

# Words that a horizontal flip swaps (whole words, case-insensitive). Jester's
# "Swiping Left" <-> "Swiping Right", "Turning Hand Clockwise" <-> "... Counterclockwise".
DIRECTION_WORDS: tuple[tuple[str, str], ...] = (
    ("left", "right"),
    ("clockwise", "counterclockwise"),
    ("clockwise", "anticlockwise"),
)

Box = tuple[int, int, int, int]  # (top, left, height, width)


def resize_for(size: int) -> int:
    """Shorter side the frames are scaled to before cropping ``size`` (256 for 224)."""
    return int(round(size * 256 / 224))


def _swap_words(label: str, a: str, b: str) -> str:
    def repl(m: re.Match) -> str:
        w = m.group(0)
        new = b if w.lower() == a else a
        return new.capitalize() if w[0].isupper() else new
    return re.sub(rf"\b({re.escape(a)}|{re.escape(b)})\b", repl, label, flags=re.IGNORECASE)


def make_flip_map(labels: Sequence[str], pairs: Sequence[tuple[str, str]] = DIRECTION_WORDS) -> dict[int, int]:
    """Class id -> class id after a horizontal flip, from the direction words in the names.

    A label without direction words maps to itself. A label with one whose mirrored name is
    not in ``labels`` cannot be flipped safely: that is an error.
    """
    index = {name.lower(): i for i, name in enumerate(labels)}
    out: dict[int, int] = {}
    for i, name in enumerate(labels):
        twin = None
        for a, b in pairs:
            if re.search(rf"\b({a}|{b})\b", name, flags=re.IGNORECASE):
                cand = _swap_words(name, a, b).lower()
                if cand in index:
                    twin = index[cand]
                    break
                twin = -1
        if twin == -1:
            raise ActionNetError(f"cannot flip class '{name}': its mirrored class is not in the label list")
        out[i] = i if twin is None else twin
    return out


def _scaled_hw(h: int, w: int, shorter: int) -> tuple[int, int]:
    if h <= w:
        return shorter, max(1, int(round(w * shorter / h)))
    return max(1, int(round(h * shorter / w))), shorter


def multiscale_crop_box(h: int, w: int, size: int, rng: random.Random, scales: Sequence[float] = SCALES,
                        max_distort: int = 1, more_fix_crop: bool = True) -> Box:
    """TSN's multi-scale fixed-corner crop on an ``h x w`` image: (top, left, height, width)."""
    base = min(h, w)
    sizes = [int(base * s) for s in scales]
    crop_h = [size if abs(x - size) < 3 else x for x in sizes]
    crop_w = [size if abs(x - size) < 3 else x for x in sizes]
    pairs = [(ch, cw) for i, ch in enumerate(crop_h) for j, cw in enumerate(crop_w) if abs(i - j) <= max_distort]
    ch, cw = rng.choice(pairs)
    ch, cw = min(ch, h), min(cw, w)
    ws, hs = (w - cw) // 4, (h - ch) // 4
    offsets = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws)]
    if more_fix_crop:
        offsets += [(2 * hs, 0), (2 * hs, 4 * ws), (4 * hs, 2 * ws), (0, 2 * ws),
                    (hs, ws), (hs, 3 * ws), (3 * hs, ws), (3 * hs, 3 * ws)]
    top, left = rng.choice(offsets)
    return top, left, ch, cw


def center_crop_box(h: int, w: int, size: int) -> Box:
    """Centre ``size x size`` crop (clamped to the image), as torchvision's center_crop."""
    ch, cw = min(size, h), min(size, w)
    return int(round((h - ch) / 2)), int(round((w - cw) / 2)), ch, cw


def three_crop_boxes(h: int, w: int, size: int) -> list[Box]:
    """Three ``size`` crops along the longer side (left/top, right/bottom, centre), as TSM."""
    ch, cw = min(size, h), min(size, w)
    ws, hs = (w - cw) // 4, (h - ch) // 4
    if w >= h:
        return [(2 * hs, 0, ch, cw), (2 * hs, 4 * ws, ch, cw), (2 * hs, 2 * ws, ch, cw)]
    return [(0, 2 * ws, ch, cw), (4 * hs, 2 * ws, ch, cw), (2 * hs, 2 * ws, ch, cw)]


class ClipTransform:
    """uint8 frames ``(T, 3, H, W)`` -> normalised float clip ``(T, 3, S, S)`` (or ``(crops, T, 3, S, S)``).

    Args:
        size: output side S.
        train: random augmentation (and optional flip) instead of the fixed evaluation view(s).
        mean, std: per-channel normalisation of RGB in 0..1.
        crops: 1 (centre) or 3 (evaluation only, ``multiscale``).
        flip: random horizontal flip in training; needs ``flip_map`` unless every class is
            mirror-symmetric (then pass ``flip_map=None`` explicitly with ``flip_invariant=True``).
        flip_map: class id -> class id after flipping.
        resize: shorter side before cropping (default ``resize_for(size)``).
        augment: ``multiscale`` (corner crops, centre-crop evaluation) or ``light`` (whole frame).
    """

    def __init__(self, size: int, train: bool, mean: Sequence[float], std: Sequence[float], *, crops: int = 1,
                 flip: bool = False, flip_map: dict[int, int] | None = None, resize: int | None = None,
                 flip_invariant: bool = False, scales: Sequence[float] = SCALES, augment: str = "multiscale") -> None:
        if crops not in (1, 3):
            raise ActionNetError(f"crops must be 1 or 3, got {crops}")
        if augment not in AUGMENTS:
            raise ActionNetError(f"unknown augment '{augment}', valid: {', '.join(AUGMENTS)}")
        if augment == "light" and crops != 1:
            raise ActionNetError("augment 'light' evaluates the whole frame: use crops=1 (three crops need 'multiscale')")
        if flip and flip_map is None and not flip_invariant:
            raise ActionNetError("flip needs a label-swap map (a flipped 'left' gesture is a 'right' one); "
                                 "this dataset has none")
        self.size, self.train, self.crops, self.flip, self.flip_map = int(size), train, crops, flip, flip_map
        self.augment = augment
        self.resize = int(resize or resize_for(size))
        self.scales = tuple(scales)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)

    def boxes(self, h: int, w: int, rng: random.Random) -> list[Box]:
        """Crop boxes in source-frame coordinates for an ``h x w`` frame."""
        if self.augment == "light":
            return [(0, 0, h, w)]
        rh, rw = _scaled_hw(h, w, self.resize)
        if self.train:
            boxes = [multiscale_crop_box(rh, rw, self.size, rng, self.scales)]
        elif self.crops == 3:
            boxes = three_crop_boxes(rh, rw, self.size)
        else:
            boxes = [center_crop_box(rh, rw, self.size)]
        sy, sx = h / rh, w / rw
        return [(int(round(t * sy)), int(round(l * sx)), max(1, int(round(ch * sy))), max(1, int(round(cw * sx))))
                for t, l, ch, cw in boxes]

    def placement(self, rng: random.Random) -> Box:
        """``light``: where the whole frame lands in the ``size x size`` output, (top, left, height, width)."""
        s = self.size
        if not self.train:
            return 0, 0, s, s
        lo, hi = LIGHT_SCALE
        ph, pw = (max(1, min(s, int(round(s * rng.uniform(lo, hi))))) for _ in range(2))
        return rng.randint(0, s - ph), rng.randint(0, s - pw), ph, pw

    def _normalise(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames.float().div_(255.0) - self.mean) / self.std

    def _light(self, frames: torch.Tensor, rng: random.Random) -> torch.Tensor:
        top, left, ph, pw = self.placement(rng)
        inner = self._normalise(TF.resize(frames, [ph, pw], antialias=True))
        if self.train:
            gain = torch.tensor([1 + rng.uniform(-LIGHT_GAIN, LIGHT_GAIN) for _ in range(3)]).view(1, 3, 1, 1)
            offset = torch.tensor([rng.uniform(-LIGHT_OFFSET, LIGHT_OFFSET) for _ in range(3)]).view(1, 3, 1, 1)
            inner = inner * gain + offset
        if (ph, pw) == (self.size, self.size):
            return inner
        out = inner.new_zeros(frames.shape[0], 3, self.size, self.size)  # zero = the mean colour
        out[:, :, top:top + ph, left:left + pw] = inner
        return out

    def __call__(self, frames: torch.Tensor, label: int, rng: random.Random | None = None) -> tuple[torch.Tensor, int]:
        """Transform one clip; returns the clip and its (possibly flipped) label."""
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (T, 3, H, W), got {tuple(frames.shape)} {frames.dtype}")
        rng = rng or random.Random()
        h, w = frames.shape[-2:]
        if self.augment == "light":
            clips = [self._light(frames, rng)]
        else:
            clips = [self._normalise(TF.resized_crop(frames, t, l, ch, cw, [self.size, self.size], antialias=True))
                     for t, l, ch, cw in self.boxes(h, w, rng)]
        if self.train and self.flip and rng.random() < 0.5:
            clips = [c.flip(-1) for c in clips]
            if self.flip_map is not None and label >= 0:
                label = self.flip_map.get(label, label)
        return (clips[0] if len(clips) == 1 and self.crops == 1 else torch.stack(clips)), label
