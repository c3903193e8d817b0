"""The Python live demo: a video file or camera -> sliding window -> the artifact's runtime.

Frames are read with PyAV (``av``): a file, or a camera (``/dev/videoN`` through v4l2 on
Linux, AVFoundation device N on macOS). Every kept frame enters the :class:`SlidingWindow`;
each full window runs through the model's runner and the smoothed top gesture, its score
and the frame rate are reported, and optionally drawn on the frames saved to ``--save`` (in
the container its suffix names: .mp4, .avi, .mkv or .mov; any other suffix is refused).

A streaming artifact (``export --streaming``) runs once per kept frame instead, carrying its
state from frame to frame; its logits (the average over its last ``window`` frames) are
reported from the ``window``-th kept frame on, as the sliding window's are.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import ActionNetError
from ..fsutil import check_writable
from .probe import first_line as _first_line
from .runtime import Model
from .window import SlidingWindow

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    frame: int  # index of the last frame of the window (0-based)
    top: list[tuple[str, float]]
    latency_ms: float


@dataclass
class LiveResult:
    frames: int = 0
    predictions: list[Prediction] = field(default_factory=list)
    seconds: float = 0.0
    saved: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "windows": len(self.predictions), "fps": round(self.fps, 2),
                "seconds": round(self.seconds, 3), "saved": str(self.saved) if self.saved else None,
                "final": self.predictions[-1].top if self.predictions else [],
                "predictions": [{"frame": p.frame, "top": p.top, "latency_ms": round(p.latency_ms, 2)}
                                for p in self.predictions]}


def open_source(video: str | Path | None = None, camera: int | None = None):
    """Open a video file or camera with PyAV; returns (container, stream, frame rate)."""
    import av

    if (video is None) == (camera is None):
        raise ActionNetError("give exactly one of --video FILE or --camera N")
    if video is not None:
        path = Path(video)
        if not path.is_file():
            raise ActionNetError(f"video not found: {path}")
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as e:
            raise ActionNetError(f"cannot read video {path} ({_first_line(e)})") from None
        what = str(path)
    else:
        if sys.platform == "darwin":
            device, fmt = str(camera), "avfoundation"
        else:
            device, fmt = f"/dev/video{camera}", "v4l2"
            if not Path(device).exists():
                raise ActionNetError(f"no camera {camera}: {device} does not exist")
        try:
            container = av.open(device, format=fmt)
        except (av.error.FFmpegError, OSError) as e:
            raise ActionNetError(f"cannot open camera {camera} ({_first_line(e)})") from None
        what = f"camera {camera}"
    if not container.streams.video:
        container.close()
        raise ActionNetError(f"{what} has no video stream")
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 30)
    return container, stream, rate, what


def frames_of(container, stream, what: str) -> Iterator[np.ndarray]:
    """RGB uint8 frames of an open source; a decoding error is a one-line user error."""
    import av

    n = 0
    try:
        for frame in container.decode(stream):
            n += 1
            yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as e:
        raise ActionNetError(f"cannot decode {what} after {n} frames ({_first_line(e)})") from None
    if n == 0:
        raise ActionNetError(f"{what} holds no decodable frames")


#: --save suffix -> (PyAV container format, video codecs in order of preference)
CONTAINERS = {".mp4": ("mp4", ("libx264", "mpeg4")), ".mkv": ("matroska", ("libx264", "mpeg4")),
              ".mov": ("mov", ("libx264", "mpeg4")), ".avi": ("avi", ("mpeg4",))}


def save_format(path: str | Path) -> tuple[str, tuple[str, ...]]:
    """The container and codecs for ``--save`` by its suffix; an unknown one lists the valid ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        raise ActionNetError(f"--save {path}: cannot tell the video format from '{suffix or '(no suffix)'}'; "
                             f"valid: {', '.join(sorted(CONTAINERS))}")
    return CONTAINERS[suffix]


class _Writer:
    """A video in the container ``--save``'s suffix names (see :data:`CONTAINERS`), written to a
    temporary name and moved into place on close."""

    def __init__(self, path: Path, rate: float) -> None:
        import av

        self.path = path
        self.format, codecs = save_format(path)
        self.codec = next((c for c in codecs if c in av.codecs_available), codecs[-1])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.out = av.open(str(self.tmp), mode="w", format=self.format)
        self.rate = max(1, round(rate))
        self.stream = None

    def write(self, rgb: np.ndarray) -> None:
        import av

        if self.stream is None:
            self.stream = self.out.add_stream(self.codec, rate=self.rate)
            self.stream.width, self.stream.height = rgb.shape[1] // 2 * 2, rgb.shape[0] // 2 * 2
            self.stream.pix_fmt = "yuv420p"
        rgb = np.ascontiguousarray(rgb[: self.stream.height, : self.stream.width])
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self.out.mux(packet)

    def close(self, ok: bool) -> None:
        try:
            if ok and self.stream is not None:
                for packet in self.stream.encode():
                    self.out.mux(packet)
            self.out.close()
            if ok and self.stream is not None:
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def overlay(rgb: np.ndarray, top: list[tuple[str, float]], fps: float) -> np.ndarray:
    """The frame with the top gestures, their scores and the frame rate in its top-left corner
    (frames narrower than 320 px are first enlarged by an integer factor, so the text fits)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(rgb)
    if img.width < 320:
        k = -(-320 // img.width)
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    lines = [f"{label} {score:.2f}" for label, score in top] or ["(filling the window)"]
    lines.append(f"{fps:.1f} fps")
    w = max(draw.textlength(s, font=font) for s in lines) + 8
    draw.rectangle([0, 0, w, 17 * len(lines) + 6], fill=(0, 0, 0))
    for i, s in enumerate(lines):
        draw.text((4, 3 + 17 * i), s, font=font, fill=(255, 255, 0) if i == 0 else (255, 255, 255))
    return np.asarray(img)


def _clip_step(model: Model, win: SlidingWindow) -> Callable[[np.ndarray], tuple[np.ndarray, float] | None]:
    """A frame -> (logits, ms) of the full window's clip, or None while the window fills / skipped."""

    def step(rgb: np.ndarray):
        if not win.push(rgb):
            return None
        t0 = time.perf_counter()
        logits = model.run(win.clip())
        return logits[0], 1000 * (time.perf_counter() - t0)

    return step


def _stream_step(model: Model, win: SlidingWindow) -> Callable[[np.ndarray], tuple[np.ndarray, float] | None]:
    """A frame -> (logits, ms) of one streaming inference (state carried), None before ``window`` frames."""
    stream, state, seen, kept = model.stream, model.stream.init_state(), 0, 0

    def step(rgb: np.ndarray):
        nonlocal state, seen, kept
        seen += 1
        if (seen - 1) % win.stride:
            return None
        x = win.preprocess(rgb)[None]
        t0 = time.perf_counter()
        logits, _, state = stream.step(x, state)
        ms = 1000 * (time.perf_counter() - t0)
        kept += 1
        return (logits[0], ms) if kept >= stream.window else None

    return step


def run_live(model: Model, *, video: str | Path | None = None, camera: int | None = None,
             stride: int = 1, alpha: float = 0.5, save: str | Path | None = None,
             max_frames: int | None = None, on_prediction: Callable[[Prediction, float], None] | None = None,
             ) -> LiveResult:
    """Run the demo to the end of the video (or ``max_frames``, or Ctrl-C for a camera)."""
    if save:
        save_format(save)
        check_writable(save, "--save")
    win = SlidingWindow.from_metadata(model.meta, stride=stride, alpha=alpha)
    step = _stream_step(model, win) if model.stream is not None else _clip_step(model, win)
    container, stream, rate, what = open_source(video, camera)
    writer = _Writer(Path(save), rate) if save else None
    result, ok = LiveResult(), False
    log.info("running %s on %s (%.1f fps source, T=%d, stride %d)", model.description, what, rate,
             win.segments, stride)
    start = last_log = time.perf_counter()
    try:
        for rgb in frames_of(container, stream, what):
            out = step(rgb)
            if out is not None:
                win.update(out[0])
                pred = Prediction(result.frames, win.top(3), out[1])
                result.predictions.append(pred)
                if on_prediction is not None:
                    on_prediction(pred, result.frames / max(time.perf_counter() - start, 1e-9))
            result.frames += 1
            now = time.perf_counter()
            fps = result.frames / max(now - start, 1e-9)
            if writer is not None:
                writer.write(overlay(rgb, win.top(3), fps))
            if now - last_log > 5:
                last_log = now
                log.info("%d frames, %.1f fps", result.frames, fps)
            if max_frames is not None and result.frames >= max_frames:
                break
        ok = True
    except KeyboardInterrupt:
        ok = True
        log.info("stopped")
    finally:
        result.seconds = time.perf_counter() - start
        container.close()
        if writer is not None:
            writer.close(ok)
            result.saved = writer.path if ok else None
    if not result.predictions:
        log.warning("%s gave %d frames: fewer than one window of %d (stride %d)", what, result.frames,
                    win.segments, stride)
    return result
