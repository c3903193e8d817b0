"""TSN segment sampling (Wang et al., ECCV 2016), as in the official TSM/ACTION-Net code.

A clip of ``n`` frames is cut into ``T`` equal segments. Training takes a random frame in
each segment; evaluation takes the centre frame. With ``clips`` > 1 (the multi-clip test
protocol) clip ``k`` takes the frame at fraction ``(k + 0.5) / clips`` of every segment, so
the clips spread evenly over each segment and ``clips=1`` is the centre. Clips shorter than
``T`` frames repeat frames in order (``[0, 0, 1, 1, 2, ...]``).
"""
from __future__ import annotations

import random

__all__ = ["segment_indices", "clip_indices"]


def _check(num_frames: int, segments: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample from {num_frames} frames")
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")


def _repeat(num_frames: int, segments: int) -> list[int]:
    """T indices into a clip shorter than T: every frame, in order, some repeated."""
    return [i * num_frames // segments for i in range(segments)]


def segment_indices(num_frames: int, segments: int, train: bool, rng: random.Random | None = None) -> list[int]:
    """``segments`` 0-based frame indices: random in each segment (``train``) or centres."""
    _check(num_frames, segments)
    if num_frames < segments:
        return _repeat(num_frames, segments)
    if not train:
        return clip_indices(num_frames, segments, 1)[0]
    rng = rng or random
    tick = num_frames / segments
    # segment i covers [floor(i*tick), floor((i+1)*tick)); every segment has >= 1 frame
    bounds = [int(i * tick) for i in range(segments + 1)]
    return [rng.randrange(bounds[i], max(bounds[i + 1], bounds[i] + 1)) for i in range(segments)]


def clip_indices(num_frames: int, segments: int, clips: int) -> list[list[int]]:
    """``clips`` evaluation clips of ``segments`` indices each, evenly spaced in every segment."""
    _check(num_frames, segments)
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    if num_frames < segments:
        return [_repeat(num_frames, segments) for _ in range(clips)]
    tick = num_frames / segments
    return [[min(int(tick * (i + (k + 0.5) / clips)), num_frames - 1) for i in range(segments)] for k in range(clips)]
