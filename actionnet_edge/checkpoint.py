"""Checkpoints: one format for training, evaluation, export and the bundled model.

A checkpoint is a plain dict saved with ``torch.save`` that loads with
``torch.load(..., weights_only=True)`` (tensors and primitive types only):

=============== ============================================================
``format``      ``"actionnet-edge.checkpoint/1"``
``version``     toolkit version that wrote it
``model``       ``ActionNet.config`` (arch, temporal, num_segments, ...)
``state_dict``  the model's weights
``labels``      class names, index = class id
``preprocess``  ``{"size", "resize", "mean", "std"}`` (RGB, 0..1 input)
``recipe``      the (validated) recipe it was trained with, optional
``train_state`` epoch, optimizer, scheduler, RNG state, best top-1; optional
``metrics``     last validation figures, optional
=============== ============================================================

Checkpoints are written to a temporary file and moved into place, so a kill never leaves
a truncated file. Files from elsewhere are untrusted: every field is validated on load.
"""
from __future__ import annotations

import errno
import hashlib
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .errors import ActionNetError
from .fsutil import atomic_write, fs_error, load_untrusted, sweep_stale

FORMAT = "actionnet-edge.checkpoint/1"
BUNDLED_NAME = "actionnet_mbv2_synth.pt"


def bundled_checkpoint() -> Path:
    """Path of the checkpoint shipped inside the package (the default model)."""
    return Path(str(resources.files("actionnet_edge") / "assets" / BUNDLED_NAME))


@dataclass
class Checkpoint:
    model: torch.nn.Module
    labels: list[str]
    preprocess: dict[str, Any]
    path: Path
    sha256: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.model.config)


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename into place.

    Temporary files a killed run left are swept first; a write that fails (a full disk shows
    up as torch's ``RuntimeError`` from its zip writer) is one error naming the path."""
    path = Path(path)
    sweep_stale(path.parent)
    try:
        atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except OSError as e:
        raise fs_error(e, path) from None
    except RuntimeError as e:
        if "inline_container" in str(e) or "file write failed" in str(e) or "PytorchStreamWriter" in str(e):
            full = shutil.disk_usage(path.parent).free < (1 << 26)  # torch's writer reports no errno
            raise fs_error(OSError(errno.ENOSPC if full else errno.EIO, "write failed", str(path)), path) from None
        raise


def default_preprocess(model: torch.nn.Module, size: int) -> dict[str, Any]:
    """The preprocessing a model expects: shorter side to ``resize``, centre crop ``size``."""
    return {
        "size": int(size),
        "resize": int(round(size * 256 / 224)),
        "mean": [float(v) for v in model.mean],
        "std": [float(v) for v in model.std],
    }


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    labels: list[str],
    preprocess: dict[str, Any],
    **extra: Any,
) -> None:
    """Write a checkpoint atomically. ``extra`` adds ``recipe``, ``train_state``, ``metrics``."""
    model = getattr(model, "module", model)  # unwrap DDP
    if len(labels) != model.config["num_classes"]:
        raise ValueError(f"{len(labels)} labels for a model with {model.config['num_classes']} classes")
    obj = {
        "format": FORMAT,
        "version": __version__,
        "model": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "labels": list(labels),
        "preprocess": dict(preprocess),
    }
    obj.update(extra)
    atomic_save(obj, path)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint(path: str | Path | None = None) -> dict[str, Any]:
    """Load and validate a checkpoint dict (``None``: the bundled model) without building it."""
    path = Path(path) if path is not None else bundled_checkpoint()
    raw = load_untrusted(path, "checkpoint")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ActionNetError(f"{path} is not an actionnet-edge checkpoint (no '{FORMAT}' format tag)")
    problems = []
    if not isinstance(raw.get("model"), dict) or "arch" not in raw["model"]:
        problems.append("'model' config missing")
    if not isinstance(raw.get("state_dict"), dict):
        problems.append("'state_dict' missing")
    labels = raw.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        problems.append("'labels' must be a list of strings")
    pre = raw.get("preprocess")
    if not isinstance(pre, dict) or not {"size", "mean", "std"} <= set(pre):
        problems.append("'preprocess' must have size, mean and std")
    if problems:
        raise ActionNetError(f"{path}: invalid checkpoint: {'; '.join(problems)}")
    return raw


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Build the model a checkpoint describes, load its weights, and return it in eval mode."""
    from .models import build_from_config

    raw = read_checkpoint(path)
    path = Path(path) if path is not None else bundled_checkpoint()
    config = raw["model"]
    model = build_from_config(config)
    if len(raw["labels"]) != model.config["num_classes"]:
        raise ActionNetError(f"{path}: {len(raw['labels'])} labels but the model has {model.config['num_classes']} classes")
    try:
        model.load_state_dict(raw["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ActionNetError(f"{path}: weights do not match a {config['arch']}/{config['temporal']} model ({detail[:200]})") from None
    model.eval()
    return Checkpoint(model, list(raw["labels"]), dict(raw["preprocess"]), path, file_sha256(path), raw)
