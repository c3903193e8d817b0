"""JPEG frame decoding speed: torchvision.io.decode_jpeg vs PIL (with and without draft mode).

    python benchmarks/decode_jpeg.py

Frames the size of Jester (176x100) and EgoGesture (320x240); one thread; best of 5 runs.
"""
from __future__ import annotations

import io
import time

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg


def _jpeg(w: int, h: int) -> bytes:
    rng = np.random.default_rng(0)
    a = np.stack(np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h)), -1).sum(-1) / 2
    img = np.stack([a, a[::-1], np.full_like(a, 128)], -1) + rng.normal(0, 10, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    torch.set_num_threads(1)
    for w, h in [(176, 100), (320, 240)]:
        data = _jpeg(w, h)

        def tv():
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)

        def pil(draft: bool = False):
            im = Image.open(io.BytesIO(data))
            if draft:
                im.draft("RGB", (w // 2, h // 2))
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)

        for name, fn in [("decode_jpeg", tv), ("PIL", pil), ("PIL draft 1/2", lambda: pil(True))]:
            for _ in range(20):
                fn()
            best = min(_time(fn) for _ in range(5))
            print(f"{w}x{h} {name:<14} {best:7.0f} us/frame")


def _time(fn, n: int = 200) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


if __name__ == "__main__":
    main()
