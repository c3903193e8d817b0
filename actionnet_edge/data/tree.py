"""A generated clip set written as a folder of JPEG frames: built in a temporary folder next to
the output, with a progress bar, and published whole (a failure leaves nothing behind)."""
from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import ActionNetError
from ..fsutil import publish_dir, temp_dir_for
from ..progress import progress

log = logging.getLogger(__name__)


@contextmanager
def building(out: str | Path, total: int, desc: str) -> Iterator[tuple[Path, Callable[[], None]]]:
    """Yield ``(tmp, tick)``: write the set into ``tmp`` and call ``tick()`` once per clip; on
    success ``tmp`` becomes ``out`` (which must be missing or empty)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ActionNetError(f"output folder is not empty: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, start = temp_dir_for(out), time.perf_counter()
    try:
        with progress(total, desc) as bar:
            yield tmp, lambda: bar.update(1)
        publish_dir(tmp, out, force=out.exists())  # an empty ``out`` is replaced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%s: wrote %d clips to %s in %.0fs", desc, total, out, time.perf_counter() - start)


def save_frames(folder: Path, clip: np.ndarray, quality: int) -> None:
    """Frames (T, H, W, 3) uint8 as ``folder/00001.jpg ...``."""
    from PIL import Image

    folder.mkdir(parents=True)
    for j, frame in enumerate(clip, 1):
        Image.fromarray(frame).save(folder / f"{j:05d}.jpg", quality=quality)
