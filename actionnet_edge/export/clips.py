"""Clips for parity checks and int8 calibration: a dataset on disk, or the synthetic generator."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ActionNetError

log = logging.getLogger(__name__)


def sample_clips(n: int, segments: int, size: int, mean, std, *, data_root: str | Path | None = None,
                 dataset: str | None = None, split: str = "val", seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` normalised clips (n, T, 3, S, S) and where they came from.

    The ``split`` of a dataset on disk when ``data_root`` is given, else the synthetic
    gesture generator (``actionnet_edge.data`` dataset ``synthetic``); uniform noise only if
    that generator is not part of this installation.
    """
    from ..data import build_dataset

    if data_root is not None:
        if not dataset:
            raise ActionNetError("--data-root needs --dataset (the reader of that folder)")
        ds, source = build_dataset(dataset, data_root, split, segments=segments, size=size, train=False,
                                   mean=mean, std=std, seed=seed), f"{dataset}:{split} ({data_root})"
    else:
        try:
            ds = build_dataset("synthetic", None, split, segments=segments, size=size, train=False,
                               mean=mean, std=std, seed=seed)
            source = f"synthetic:{split}"
        except ImportError as e:  # the generator module is not in this installation
            log.warning("synthetic clip generator unavailable (%s): using uniform noise clips", e)
            g = torch.Generator().manual_seed(seed)
            x = torch.rand(n, segments, 3, size, size, generator=g)
            m, s = torch.tensor(mean).view(1, 1, 3, 1, 1), torch.tensor(std).view(1, 1, 3, 1, 1)
            return (x - m) / s, "uniform noise"
    clips = []
    for i in range(len(ds)):
        item = ds[i]
        clip = getattr(item, "clip", None)
        if clip is None:  # a BadSample
            continue
        clips.append(clip.reshape(-1, segments, 3, size, size))
        if sum(c.shape[0] for c in clips) >= n:
            break
    if not clips:
        raise ActionNetError(f"no readable clips in {source}")
    x = torch.cat(clips)[:n].float()
    if x.shape[0] < n:
        log.warning("only %d clips available in %s (asked for %d)", x.shape[0], source, n)
    return x, source
