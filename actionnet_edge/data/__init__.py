"""Datasets: readers of the official layouts, TSN sampling, transforms, ``collate``.

The contract every data consumer (training, evaluation, export calibration, demos) relies on:

* :func:`build_dataset` ``(name, root, split, *, segments, size, train, mean, std, clips=1,
  crops=1, flip=False, seed=0, **options)`` -> a ``torch.utils.data.Dataset``;
* ``dataset[i]`` is a :class:`Sample` ``(clip, label, name)`` with ``clip`` float
  ``(T, 3, S, S)`` (``(V, T, 3, S, S)`` when ``clips * crops = V > 1``), or a
  :class:`BadSample` ``(name, reason)`` for a corrupt/empty/unknown-label sample;
* ``dataset.labels`` (index = class id) and ``dataset.flip_map``;
* :func:`collate` drops bad samples and lists them under ``"bad"``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from ..errors import ActionNetError, unknown_name

log = logging.getLogger(__name__)

__all__ = ["Sample", "BadSample", "DATASETS", "build_dataset", "collate", "list_datasets"]


class Sample(NamedTuple):
    """One readable clip."""

    clip: torch.Tensor
    label: int
    name: str


class BadSample(NamedTuple):
    """A sample that could not be used, and why (skipped by :func:`collate`)."""

    name: str
    reason: str


def collate(batch: list) -> dict[str, Any]:
    """Stack the good samples of a batch; list the bad ones as ``(name, reason)``.

    With every sample bad, ``clips`` is an empty tensor and ``labels`` has length 0.
    """
    good = [s for s in batch if isinstance(s, Sample)]
    bad = [(s.name, s.reason) for s in batch if isinstance(s, BadSample)]
    if good:
        clips = torch.stack([s.clip for s in good])
    else:
        clips = torch.empty(0)
    return {
        "clips": clips,
        "labels": torch.tensor([s.label for s in good], dtype=torch.long),
        "names": [s.name for s in good],
        "bad": bad,
    }


def _synthetic(root, split, **kw):
    if root is not None:  # `data synth --out DIR` wrote it in the Jester layout
        from .datasets import JesterDataset

        return JesterDataset(root, split, **kw)
    from .synth import SyntheticGestures

    return SyntheticGestures(split=split, **kw)


def _reader(name: str, cls_name: str) -> Callable[..., torch.utils.data.Dataset]:
    def build(root, split, **kw):
        from . import datasets

        if root is None:
            raise ActionNetError(f"the {name} dataset needs a data root (--data-root DIR)")
        return getattr(datasets, cls_name)(root, split, **kw)

    build.__name__ = cls_name
    return build


DATASETS: dict[str, Callable[..., torch.utils.data.Dataset]] = {
    "jester": _reader("jester", "JesterDataset"),
    "egogesture": _reader("egogesture", "EgoGestureDataset"),
    "ssv2": _reader("ssv2", "SSv2Dataset"),
    "csv": _reader("csv", "CSVDataset"),
    "synthetic": _synthetic,
}

SPLITS = ("train", "val", "test")


def list_datasets() -> list[str]:
    """Names accepted by :func:`build_dataset`."""
    return list(DATASETS)


def build_dataset(name: str, root: str | Path | None, split: str, *, segments: int, size: int, train: bool,
                  mean: Sequence[float], std: Sequence[float], clips: int = 1, crops: int = 1,
                  flip: bool = False, seed: int = 0, augment: str = "multiscale",
                  **options: Any) -> torch.utils.data.Dataset:
    """Build a dataset by name (see :data:`DATASETS`).

    Args:
        name: ``jester``, ``egogesture``, ``ssv2``, ``csv`` or ``synthetic``.
        root: the dataset folder in its official layout (``synthetic``: ``None`` = in memory).
        split: ``train`` or ``val`` (``test`` for EgoGesture's test subjects).
        segments: frames per clip (T).
        size: output side S.
        train: random sampling and multi-scale crops instead of centre frames and crops.
        mean, std: normalisation of RGB in 0..1.
        clips, crops: test views per sample (evaluation only): 10 x 3 in the paper.
        flip: random horizontal flip with the dataset's label-swap map (training only).
        seed: base seed (synthetic data; random sampling also follows ``torch.manual_seed``).
        augment: ``multiscale`` (the paper's corner crops, centre-crop evaluation) or ``light``
            (the whole frame, small scale jitter): see :mod:`.transforms`.
        options: reader-specific (``labels=`` a label file for ``csv``, ``subjects=`` for EgoGesture...).
    """
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS)
    if segments < 1 or size < 8:
        raise ActionNetError(f"need segments >= 1 and size >= 8, got segments={segments}, size={size}")
    if clips < 1 or crops not in (1, 3):
        raise ActionNetError(f"clips must be >= 1 and crops 1 or 3, got clips={clips}, crops={crops}")
    if train and clips * crops > 1:
        raise ActionNetError("multi-clip / multi-crop views are for evaluation (train=False)")
    from .transforms import AUGMENTS

    if augment not in AUGMENTS:
        raise unknown_name("augment", augment, AUGMENTS)
    if augment == "light" and crops != 1:
        raise ActionNetError("augment 'light' evaluates the whole frame: crops must be 1 (three crops need 'multiscale')")
    if root is not None and not Path(root).exists():
        raise ActionNetError(f"data root not found: {root}")
    try:
        return DATASETS[name](root, split, segments=segments, size=size, train=train, mean=tuple(mean),
                              std=tuple(std), clips=clips, crops=crops, flip=flip, seed=seed, augment=augment,
                              **options)
    except TypeError as e:  # an option this reader does not take
        if "unexpected keyword argument" not in str(e):
            raise
        raise ActionNetError(f"{name} dataset: {str(e).split('__init__() ')[-1]}") from None
