"""What export refuses before anything is loaded: names, counts and thresholds out of range."""
from __future__ import annotations

import math
from pathlib import Path

from ..constants import LAYOUTS, MAX_SEGMENTS, MIN_SEGMENTS
from ..errors import ActionNetError, unknown_name
from .parity import Thresholds


def check_request(exporter, precision: str, layout: str, streaming: bool, parity_clips: int, calib_clips: int,
                   data_root, dataset) -> None:
    """Reject a request the exporter cannot serve, before anything is loaded."""
    if precision not in exporter.precisions:
        raise unknown_name(f"precision for {exporter.name}", precision, exporter.precisions)
    if layout not in LAYOUTS:
        raise unknown_name("layout", layout, LAYOUTS)
    if parity_clips < 1 or calib_clips < 1:
        raise ActionNetError("--parity-clips and --calib-clips must be positive")
    if streaming and precision not in exporter.stream_precisions:
        raise ActionNetError(f"--streaming --target {exporter.name} exports {', '.join(exporter.stream_precisions)}; "
                             f"{precision} streaming is not supported there")
    if streaming and layout != "NCHW":
        raise ActionNetError("--streaming takes NCHW frames (1, 3, S, S) only; drop --layout NHWC")
    if data_root is not None and not Path(data_root).exists():
        raise ActionNetError(f"data root not found: {data_root}")
    if data_root is not None and not dataset:
        raise ActionNetError("--data-root needs --dataset (the reader of that folder)")


def check_numbers(segments: int | None, th: Thresholds) -> None:
    """T and the parity thresholds: finite and in range, the limits in the error."""
    if segments is not None and not MIN_SEGMENTS <= int(segments) <= MAX_SEGMENTS:
        raise ActionNetError(f"--segments must be in {MIN_SEGMENTS}..{MAX_SEGMENTS}, got {segments}")
    for name, value in th.to_dict().items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ActionNetError(f"parity threshold {name} must be a finite number, got {value}")
        if name != "min_sqnr_db" and not 0 <= value <= 1:
            raise ActionNetError(f"parity threshold {name} must be in 0..1, got {value}")
