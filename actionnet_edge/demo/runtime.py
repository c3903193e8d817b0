"""Open what the demos run: an exported artifact folder (its own runtime) or a checkpoint.

A folder whose metadata.json has a ``streaming`` section (``export --streaming``) opens as a
:class:`~actionnet_edge.export.streaming.StreamRunner` (``Model.stream``): one inference per frame.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ActionNetError
from .window import read_metadata

log = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class Model:
    """A runnable model for the demos: metadata (labels, segments, preprocessing) + runner."""

    meta: dict[str, Any]
    run: Runner | None  # (N, T, 3, S, S) float32 NCHW -> (N, K) logits; None for a streaming artifact
    description: str
    path: Path | None = None
    stream: Any = None  # a StreamRunner: one frame (1, 3, S, S) + state -> logits, frame logits, state


def artifact_file(artifact_dir: Path, meta: dict[str, Any]) -> tuple[str, Path]:
    """(target name, artifact path) of an export folder, from metadata.json (or the file suffix)."""
    from ..export import EXPORTERS

    by_suffix = {e.suffix: name for name, e in EXPORTERS.items()}
    name = meta.get("artifact") or meta.get("file")
    if name:
        path = artifact_dir / Path(str(name)).name
    else:
        found = [p for p in sorted(artifact_dir.iterdir()) if p.suffix in by_suffix]
        if len(found) != 1:
            raise ActionNetError(f"{artifact_dir}: metadata.json names no artifact and {len(found)} candidates found")
        path = found[0]
    if not path.exists():
        raise ActionNetError(f"{artifact_dir}: the artifact {path.name} named in metadata.json is missing")
    target = str(meta.get("target") or by_suffix.get(path.suffix, ""))
    if not target:
        raise ActionNetError(f"{path}: cannot tell the runtime of '{path.suffix}' files")
    return target, path


def open_artifact(artifact_dir: str | Path) -> Model:
    """Load an exported artifact folder with its exporter's own loader (``Exporter.load``, or
    ``StreamRunner.load`` for a streaming artifact)."""
    from ..export import EXPORTERS, RuntimeUnavailable
    from ..export.streaming import StreamRunner

    d = Path(artifact_dir)
    meta = read_metadata(d)
    target, path = artifact_file(d, meta)
    if target not in EXPORTERS:
        raise ActionNetError(f"{path}: no runtime for target '{target}' in this installation")
    precision = meta.get("precision", "fp32")
    try:
        if "streaming" in meta:
            stream = StreamRunner.load(EXPORTERS[target], path, meta["streaming"])
            return Model(meta, None, f"{path.name} ({target}, {precision}, streaming: one inference per frame)",
                         path, stream)
        run = EXPORTERS[target].load(path, layout=str(meta.get("layout", "NCHW")))
    except RuntimeUnavailable as e:
        raise ActionNetError(f"cannot run {path.name} here: {e}") from None
    return Model(meta, run, f"{path.name} ({target}, {precision})", path)


def open_checkpoint(path: str | Path | None) -> Model:
    """A checkpoint (None: the bundled model) run in PyTorch, with its own preprocessing."""
    import torch

    from ..checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    model = ck.model.eval()
    pre = ck.preprocess
    meta = {"labels": ck.labels, "segments": int(model.config["num_segments"]), "size": int(pre["size"]),
            "resize": int(pre.get("resize") or round(int(pre["size"]) * 256 / 224)),
            "mean": list(pre["mean"]), "std": list(pre["std"]), "layout": "NCHW"}

    def run(clips: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32))).numpy()

    return Model(meta, run, f"{ck.path.name} (PyTorch)", ck.path)
