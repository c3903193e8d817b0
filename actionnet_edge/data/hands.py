"""A Jester-like procedural set: a hand and forearm gesturing in front of a cluttered scene.

Made to look, at the level a small network sees, like a few hundred clips of someone's own
gestures filmed in the 20BN-Jester way: frames 100 px high and wider than high (132 by
default), about 31 frames a clip (27..35), a person-like figure and static clutter behind
the hand, sensor noise, flicker and camera shake. Six classes in three time-reversed pairs
(a clip of class ``2p + 1`` is a clip of class ``2p`` played backwards, so single frames
cannot tell the two apart): swiping right/left, swiping down/up, zooming in/out with the
full hand. The hand travels across most of the frame, so a crop of a corner of the frame
often misses it for part of the clip.

:func:`write_hands` writes the set in the Jester layout *and* as the CSV layout of one's own
clips (``train.csv`` / ``val.csv`` / ``labels.txt`` naming the same frame folders), so the
one folder is read by ``dataset: jester`` and by ``dataset: csv``. Everything is
deterministic per ``(seed, split, index)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ActionNetError
from .tree import building, save_frames


__all__ = ["HAND_LABELS", "HAND_FRAMES", "HAND_SIZE", "render_hand_clip", "write_hands"]

#: class names (Jester's words); classes 2p and 2p+1 are time-reversed twins (forward first).
HAND_LABELS: list[str] = [
    "Swiping Right", "Swiping Left",
    "Swiping Down", "Swiping Up",
    "Zooming In With Full Hand", "Zooming Out With Full Hand",
]
HAND_FRAMES = (27, 35)  # inclusive range of frames per clip (Jester: about 12 fps, 2-3 s)
HAND_SIZE = (100, 132)  # height, width
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
_SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.71, 0.51, 0.38], [0.45, 0.31, 0.22]])


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 100 + _SPLIT_ID[split], int(index)])


def _capsule(xs: np.ndarray, ys: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance of every pixel to the segment a-b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
    return np.hypot(xs - ax - t * dx, ys - ay - t * dy)


def _background(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A static scene: wall gradient, clutter rectangles and blobs, a person-like figure."""
    c0, c1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    g = np.clip(rng.uniform(-1, 1) * (xs - 0.5) + rng.uniform(-1, 1) * (ys - 0.5) + 0.5, 0, 1)[..., None]
    bg = c0 * (1 - g) + c1 * g
    w_max = float(xs.max())
    for _ in range(rng.integers(5, 11)):  # clutter: shelves, posters, furniture
        x0, y0 = rng.uniform(-0.1, w_max), rng.uniform(-0.1, 1.0)
        w, h = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)
        if rng.random() < 0.5:
            m = (xs > x0) & (xs < x0 + w) & (ys > y0) & (ys < y0 + h)
        else:
            m = ((xs - x0) / w) ** 2 + ((ys - y0) / h) ** 2 < 0.25
        bg = np.where(m[..., None], rng.uniform(0, 1, 3) * rng.uniform(0.6, 1.0), bg)
    # the person: head and torso in the middle of the frame, behind the hand
    px = w_max / 2 + rng.uniform(-0.12, 0.12)
    shirt = rng.uniform(0, 1, 3)
    torso = _capsule(xs, ys, (px, 0.78), (px, 1.3)) < rng.uniform(0.2, 0.28)
    head = np.hypot(xs - px, (ys - 0.38) / 1.25) < rng.uniform(0.11, 0.14)
    bg = np.where(torso[..., None], shirt, bg)
    bg = np.where(head[..., None], _SKIN[rng.integers(0, len(_SKIN))] * rng.uniform(0.8, 1.05), bg)
    return bg.astype(np.float32)


def _hand_mask(xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, s: float, tilt: float,
               elbow: tuple[float, float], spread: float) -> np.ndarray:
    """Coverage (0..1) of an open hand (palm, four fingers, thumb) and its forearm to ``elbow``."""
    c, sn = np.cos(tilt), np.sin(tilt)

    def at(u: float, v: float) -> tuple[float, float]:  # hand coordinates (v up the fingers) -> image
        return cx + s * (c * u + sn * v), cy + s * (sn * u - c * v)

    u = (c * (xs - cx) + sn * (ys - cy)) / s
    v = (sn * (xs - cx) - c * (ys - cy)) / s
    d = (np.sqrt((u / 0.8) ** 2 + (v / 0.95) ** 2) - 1.0) * 0.8 * s  # palm
    for k, (fu, length) in enumerate(zip((-0.55, -0.18, 0.18, 0.55), (1.05, 1.25, 1.2, 0.95))):
        ang = (k - 1.5) * 0.12 * spread
        base = at(fu, 0.7)
        tip = at(fu + length * np.sin(ang), 0.7 + length * np.cos(ang))
        d = np.minimum(d, _capsule(xs, ys, base, tip) - 0.17 * s)
    d = np.minimum(d, _capsule(xs, ys, at(0.7, -0.2), at(1.35 + 0.2 * spread, 0.35)) - 0.19 * s)  # thumb
    d = np.minimum(d, _capsule(xs, ys, at(0.0, -0.7), elbow) - 0.42 * s)  # forearm
    return np.clip(0.5 - d * 100.0, 0, 1)[..., None]  # about one pixel of anti-aliasing at 100 px


def _motion(pair: int, p: np.ndarray, rng: np.random.Generator, w_max: float) -> tuple[np.ndarray, ...]:
    """Hand centre, scale and finger spread per frame for the forward gesture of ``pair``."""
    f = len(p)
    s = np.full(f, rng.uniform(0.11, 0.15))
    spread = np.full(f, rng.uniform(0.5, 1.2))
    if pair == 0:  # swiping right: across most of the frame's width
        d = rng.uniform(0.55, 0.8) * w_max
        cx = w_max / 2 + rng.uniform(-0.08, 0.08) - d / 2 + d * p
        cy = np.full(f, rng.uniform(0.35, 0.6))
    elif pair == 1:  # swiping down
        d = rng.uniform(0.45, 0.6)
        cy = 0.5 + rng.uniform(-0.05, 0.05) - d / 2 + d * p
        cx = np.full(f, w_max / 2 + rng.uniform(-0.3, 0.3))
    else:  # zooming in with the full hand: it comes towards the camera and opens
        cx = np.full(f, w_max / 2 + rng.uniform(-0.25, 0.25))
        cy = np.full(f, rng.uniform(0.4, 0.55))
        s = s * 0.75 * rng.uniform(1.8, 2.3) ** p
        spread = 0.3 + 1.2 * p
    return cx, cy, s, spread


def render_hand_clip(label: int, rng: np.random.Generator, frames: int = 31,
                     height: int = HAND_SIZE[0], width: int = HAND_SIZE[1]) -> np.ndarray:
    """Draw one clip of class ``label``: uint8 ``(frames, height, width, 3)`` RGB."""
    if not 0 <= label < len(HAND_LABELS):
        raise ActionNetError(f"hand gesture label must be in 0..{len(HAND_LABELS) - 1}, got {label}")
    if frames < 2 or height < 16 or width < 16:
        raise ActionNetError(f"need at least 2 frames of 16x16 pixels, got {frames} frames of {height}x{width}")
    pair, reverse = divmod(label, 2)
    # pixel grid in units of the frame height, (0, 0) = top left
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = (ys + 0.5) / height, (xs + 0.5) / height
    w_max = width / height
    bg = _background(rng, xs, ys)
    skin = _SKIN[rng.integers(0, len(_SKIN))] * rng.uniform(0.85, 1.05)
    t = np.linspace(0, 1, frames)
    t0, t1 = rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)
    p = np.clip((t - t0) / (t1 - t0), 0, 1)
    p = p * p * (3 - 2 * p)
    cx, cy, s, spread = _motion(pair, p, rng, w_max)
    shake = rng.normal(0, 0.006, (frames, 2))
    tilt = rng.uniform(-0.35, 0.35) + rng.normal(0, 0.03, frames)
    elbow_x = w_max / 2 + rng.uniform(0.2, 0.5) * rng.choice([-1, 1])
    flicker = 1.0 + rng.normal(0, 0.03, frames)
    noise = rng.uniform(0.02, 0.06)
    out = np.empty((frames, height, width, 3), dtype=np.float32)
    for i in range(frames):
        x, y = cx[i] + shake[i, 0], cy[i] + shake[i, 1]
        m = _hand_mask(xs, ys, x, y, s[i], tilt[i], (elbow_x + 0.3 * (x - w_max / 2), 1.25), spread[i])
        shade = 1.0 - 0.25 * np.clip((ys - y) / 0.4, 0, 1)[..., None]  # the forearm darker away from the hand
        img = bg * (1 - m) + skin * shade * m
        out[i] = img * flicker[i] + rng.normal(0, noise, img.shape)
    if reverse:
        out = out[::-1]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _write_split(tmp: Path, split: str, count: int, first_id: int, seed: int, hw: tuple[int, int],
                 quality: int, tick) -> list[tuple[str, str]]:
    rows = []
    for i in range(count):
        vid = str(first_id + i)
        label = i % len(HAND_LABELS)
        rng = _rng(seed, split, i)
        frames = int(rng.integers(HAND_FRAMES[0], HAND_FRAMES[1] + 1))
        save_frames(tmp / "20bn-jester-v1" / vid, render_hand_clip(label, rng, frames, *hw), quality)
        rows.append((vid, HAND_LABELS[label]))
        tick()
    return rows


def write_hands(out: str | Path, train: int = 192, val: int = 48, size: tuple[int, int] = HAND_SIZE,
                seed: int = 0, quality: int = 90) -> Path:
    """Write the hand-gesture set in the Jester layout plus the CSV layout; returns ``out``.

    Jester: ``jester-v1-labels.csv``, ``jester-v1-train.csv`` / ``jester-v1-validation.csv``
    (``id;label``), frames ``20bn-jester-v1/<id>/00001.jpg ...`` (train ids ``1..train``,
    validation ids after). CSV: ``labels.txt`` and ``train.csv`` / ``val.csv`` with rows
    ``20bn-jester-v1/<id>,<label>``. ``size`` is ``(height, width)``. The tree is built in a
    temporary folder next to ``out`` and moved into place.
    """
    h, w = int(size[0]), int(size[1])
    if train < 1 or val < 1:
        raise ActionNetError(f"need at least one train and one val clip, got train={train}, val={val}")
    if h < 16 or w < 16:
        raise ActionNetError(f"need frames of at least 16x16 pixels, got {h}x{w}")
    with building(out, train + val, "hands") as (tmp, tick):
        labels = "\n".join(HAND_LABELS) + "\n"
        (tmp / "jester-v1-labels.csv").write_text(labels, encoding="utf-8")
        (tmp / "labels.txt").write_text(labels, encoding="utf-8")
        for split, count, first, jester_csv, own_csv in (
                ("train", train, 1, "jester-v1-train.csv", "train.csv"),
                ("val", val, train + 1, "jester-v1-validation.csv", "val.csv")):
            rows = _write_split(tmp, split, count, first, seed, (h, w), quality, tick)
            (tmp / jester_csv).write_text("".join(f"{v};{n}\n" for v, n in rows), encoding="utf-8")
            (tmp / own_csv).write_text("path,label\n" + "".join(f"20bn-jester-v1/{v},{n}\n" for v, n in rows),
                                       encoding="utf-8")
    return Path(out)
