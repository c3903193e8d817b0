"""Decoding frames: folders of JPEG/PNG frames and video files.

Videos are decoded with **PyAV** (FFmpeg bindings): it is a declared dependency already
installed everywhere the toolkit runs, it reads every container and codec FFmpeg does
(SSv2's VP9 ``.webm``, mp4/H.264, avi...) with wheels that bundle FFmpeg, and decoded
frames stay in the codec's compact pixel format until the few a clip samples are converted.
``torchvision.io``'s video API was deprecated in favour of TorchCodec and is gone from the
installed torchvision 0.29 (no ``read_video``); TorchCodec is not installed here and needs
a matching system FFmpeg.

JPEG frames are decoded with ``torchvision.io.decode_jpeg`` (libjpeg-turbo, straight to a
uint8 CHW tensor): ``python benchmarks/decode_jpeg.py`` on this (busy, 2-core) machine gave
660 vs 1069 us per 176x100 (Jester-sized) frame and 1756 vs 2586 us per 320x240
(EgoGesture-sized) frame against PIL, 1.5-1.6x faster; PIL's draft mode (decoding at half
size, 2360 us) did not close the gap and would drop below the 128 px shorter side that a
112 px crop needs. Other image formats go through PIL. torchvision 0.29 marks its image
codecs deprecated in favour of TorchCodec (not installed here): the warning is silenced,
and PIL takes over the day ``decode_jpeg`` disappears.

Every function raises :class:`DecodeError` with a short reason for a file that cannot be
read, so that the dataset can turn it into a ``BadSample``.
"""
from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

__all__ = ["DecodeError", "FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "list_frames", "read_frames", "read_video",
           "FrameSource", "open_source"]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".gif")


class DecodeError(Exception):
    """A frame or video that cannot be decoded (the message is the reason)."""


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of a frame folder, sorted by name (``00001.jpg`` ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DecodeError(f"frame folder not found: {folder}")
    return list(_listing(str(folder), folder.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _listing(folder: str, mtime_ns: int) -> tuple[Path, ...]:
    # EgoGesture cuts several gestures out of one long folder: list it once, not per gesture
    return tuple(sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_EXTENSIONS))


try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # pragma: no cover - a future torchvision without image codecs
    decode_jpeg = None


def _decode_image(path: Path) -> torch.Tensor:
    try:
        if decode_jpeg is not None and path.suffix.lower() in (".jpg", ".jpeg"):
            data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
            if data.numel() == 0:
                raise DecodeError(f"empty frame file {path.name}")
            with warnings.catch_warnings():  # torchvision 0.29's deprecation notice, once per frame
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(data, mode=ImageReadMode.RGB)
        from PIL import Image

        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    except DecodeError:
        raise
    except Exception as e:  # libjpeg / PIL errors have many types
        raise DecodeError(f"corrupt frame {path.name}: {str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__}") from None


def read_frames(paths: Sequence[Path]) -> torch.Tensor:
    """Decode image files into one uint8 tensor ``(N, 3, H, W)``."""
    frames = [_decode_image(Path(p)) for p in paths]
    if len({tuple(f.shape) for f in frames}) > 1:
        raise DecodeError("frames of different sizes")
    return torch.stack(frames)


def read_video(path: str | Path, start: int | None = None, end: int | None = None) -> list:
    """Decode a video's frames ``start..end`` (0-based, inclusive) as PyAV ``VideoFrame``s.

    A video that cannot be opened or yields no frame raises :class:`DecodeError`; one that
    breaks off part way (a truncated download) keeps the frames decoded before the break.

    Decoded frames stay in the codec's pixel format until :func:`frames_to_tensor` converts
    the few that a clip samples.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"video not found: {path}")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"no video stream in {path.name}")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if end is not None and i > end:
                    break
                if start is None or i >= start:
                    frames.append(frame)
    except DecodeError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, EOF...) and OSError
        if not frames:
            msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise DecodeError(f"unreadable video {path.name}: {msg}") from None
        log.warning("%s: damaged, using the %d frames decoded before the error (%s)", path.name, len(frames), e)
    return frames


def frames_to_tensor(frames: Sequence) -> torch.Tensor:
    """PyAV frames -> uint8 ``(N, 3, H, W)`` RGB."""
    return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in frames])).permute(0, 3, 1, 2).contiguous()


class FrameSource:
    """The frames of one sample (a frame folder or a video file), restricted to ``start..end``."""

    def __init__(self, path: str | Path, start: int | None = None, end: int | None = None) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            files = list_frames(self.path)
            self._files: list[Path] | None = files[start or 0: None if end is None else end + 1]
            self._video = None
        elif self.path.is_file():
            self._files = None
            self._video = read_video(self.path, start, end)
        else:
            raise DecodeError(f"not found: {self.path}")

    def __len__(self) -> int:
        return len(self._files) if self._files is not None else len(self._video)

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 ``(len(indices), 3, H, W)`` for the given 0-based frame indices."""
        if len(self) == 0:
            raise DecodeError("no frames")
        if self._files is not None:
            uniq = sorted(set(indices))
            decoded = dict(zip(uniq, read_frames([self._files[i] for i in uniq])))
            return torch.stack([decoded[i] for i in indices])
        return frames_to_tensor([self._video[i] for i in indices])


def open_source(path: str | Path, start: int | None = None, end: int | None = None) -> FrameSource:
    """Open a frame folder or video file; raises :class:`DecodeError` if unreadable or empty."""
    src = FrameSource(path, start, end)
    if len(src) == 0:
        raise DecodeError("empty frame folder" if src.path.is_dir() else "video has no frames")
    return src
