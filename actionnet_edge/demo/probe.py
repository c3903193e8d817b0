"""Check an export folder before a demo uses it: the artifact against its metadata.json.

The demos trust metadata.json for the clip they build (segments, size, layout) and for the
labels they show. An artifact that is empty, truncated, or from another export than its
metadata would otherwise fail mid-run inside its runtime (or, in the browser, show the wrong
names). :func:`check_artifact` loads the artifact with its exporter's own loader and runs one
zero clip (or one zero frame and state, for a streaming artifact) of the shape metadata.json
gives, then compares the number of scores with the labels; any failure is one line.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActionNetError
from .runtime import artifact_file
from .window import read_metadata

log = logging.getLogger(__name__)


def first_line(e: BaseException) -> str:
    """The first line of an error from another library (its type's name if it says nothing)."""
    s = str(e).strip()
    return s.splitlines()[0][:240] if s else type(e).__name__


def _check_bytes(path: Path) -> None:
    """An empty file (or a package folder without files) is refused before any runtime sees it."""
    if path.is_dir():
        if not any(p.is_file() for p in path.rglob("*")):
            raise ActionNetError(f"{path} is an empty folder; export the model again")
    elif path.stat().st_size == 0:
        raise ActionNetError(f"{path} is empty (0 bytes); export the model again")


def _check_pte(path: Path) -> None:
    """A .pte's header against its size, read here because ExecuTorch's loader aborts the whole
    process on some malformed files (a C++ terminate, not an exception). The file identifier
    ("ET" + version) sits at bytes 4-8; the extended header ("eh00", little-endian) at byte 8
    gives the program's size and where its segments start and how long they are."""
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if len(head) < 8 or head[4:6] != b"ET":
        raise ActionNetError(f"{path} is not an ExecuTorch program (no 'ET' file identifier); export it again")
    if head[8:12] != b"eh00" or len(head) < 32:
        return
    length = int.from_bytes(head[12:16], "little")
    program = int.from_bytes(head[16:24], "little")
    base = int.from_bytes(head[24:32], "little")
    segments = int.from_bytes(head[32:40], "little") if length >= 32 and len(head) >= 40 else 0
    need = max(program, base + segments if base else 0)
    if size < need:
        raise ActionNetError(f"{path} is truncated: {size} of its {need} bytes; export it again")


def _check_labels(meta: dict[str, Any], scores: int, name: str) -> None:
    labels = len(meta["labels"])
    if scores != labels:
        raise ActionNetError(f"{name} gives {scores} scores, but metadata.json lists {labels} labels")
    declared = meta.get("num_classes")
    if declared is not None and int(declared) != labels:
        raise ActionNetError(f"metadata.json of {name} lists {labels} labels but says num_classes {declared}")


def _probe_clip(exporter, path: Path, meta: dict[str, Any]) -> int:
    """Run one zero clip of metadata.json's shape; the number of scores it gives."""
    from ..export import LAYOUTS, RuntimeUnavailable

    layout = str(meta.get("layout", "NCHW"))
    if layout not in LAYOUTS:
        raise ActionNetError(f"metadata.json of {path.name}: unknown layout '{layout}'; valid: {', '.join(LAYOUTS)}")
    t, s = int(meta["segments"]), int(meta["size"])
    shape = (1, t, s, s, 3) if layout == "NHWC" else (1, t, 3, s, s)
    try:
        run = exporter.load(path, layout=layout)
    except RuntimeUnavailable as e:
        raise ActionNetError(f"cannot run {path.name} here: {e}") from None
    except Exception as e:  # noqa: BLE001 (any runtime's own error: a damaged or truncated file)
        raise ActionNetError(f"cannot load {path} ({first_line(e)}); is it truncated? export it again") from None
    try:
        out = np.asarray(run(np.zeros((1, t, 3, s, s), np.float32)))
    except Exception as e:  # noqa: BLE001
        raise ActionNetError(f"{path.name} does not take the clip metadata.json describes ({t} frames of {s} px, "
                             f"{layout}: {shape}): {first_line(e)}") from None
    return int(out.reshape(out.shape[0], -1).shape[-1]) if out.size else 0


def _probe_stream(exporter, path: Path, meta: dict[str, Any]) -> int:
    """Run one zero frame and zero state through a streaming artifact; the number of scores."""
    from ..export import RuntimeUnavailable
    from ..export.streaming import StreamRunner

    if not isinstance(meta["streaming"], dict):
        raise ActionNetError(f"metadata.json of {path.name}: the 'streaming' section must be an object")
    try:
        stream = StreamRunner.load(exporter, path, meta["streaming"])
    except ActionNetError:
        raise
    except RuntimeUnavailable as e:
        raise ActionNetError(f"cannot run {path.name} here: {e}") from None
    except Exception as e:  # noqa: BLE001
        raise ActionNetError(f"cannot load {path} as the streaming artifact metadata.json describes "
                             f"({first_line(e)})") from None
    s = int(meta["size"])
    try:
        logits, _, _ = stream.step(np.zeros((1, 3, s, s), np.float32), stream.init_state())
    except ActionNetError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ActionNetError(f"{path.name} does not take the frame and state metadata.json describes: "
                             f"{first_line(e)}") from None
    return int(np.asarray(logits).size)


def check_artifact(artifact_dir: str | Path) -> tuple[dict[str, Any], str, Path]:
    """Check an export folder as above; returns ``(metadata, target, artifact path)``."""
    from ..export import get_exporter

    d = Path(artifact_dir)
    meta = read_metadata(d)
    target, path = artifact_file(d, meta)
    _check_bytes(path)
    if path.suffix == ".pte":
        _check_pte(path)
    exporter = get_exporter(target)
    probe = _probe_stream if "streaming" in meta else _probe_clip
    _check_labels(meta, probe(exporter, path, meta), path.name)
    log.debug("%s matches its metadata.json", path)
    return meta, target, path
