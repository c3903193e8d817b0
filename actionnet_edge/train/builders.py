"""Builders the training loop and QAT share: the recipe's model and datasets, the loaders'
collate and worker seeding, and validation through the one evaluation function."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ActionNetError
from .config import Recipe

log = logging.getLogger(__name__)

__all__ = ["build_model", "build_datasets", "evaluate_model"]


def _default_train_mode(model: nn.Module, training: bool) -> None:
    model.train(training)


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's model (ImageNet backbone weights from ``model.pretrained`` if given)."""
    from ..models import create_model

    m = recipe.model
    model = create_model(m.arch, m.temporal, recipe.data.segments, num_classes, m.width_mult,
                         pretrained=m.pretrained, dropout=m.dropout, causal=m.causal, consensus=m.consensus)
    if m.zero_init_residual:
        log.info("model: %d residual blocks start as the identity (model.zero_init_residual)", model.zero_init_residual())
    return model


def build_datasets(recipe: Recipe, data_root: str | Path | None = None,
                   mean: tuple[float, ...] = IMAGENET_MEAN,
                   std: tuple[float, ...] = IMAGENET_STD) -> tuple[Dataset, Dataset]:
    """Train and validation sets of ``recipe.data`` (``data_root`` overrides ``data.root``)."""
    from ..data import build_dataset

    d = recipe.data
    root = data_root if data_root is not None else d.root
    sets = []
    for split, train, n in (("train", True, d.num_train), ("val", False, d.num_val)):
        opts: dict[str, Any] = {}
        if d.dataset == "synthetic" and root is None and n is not None:
            opts["n"] = n
        ds = build_dataset(d.dataset, root, split, segments=d.segments, size=d.size, train=train, mean=mean,
                           std=std, flip=d.flip and train, seed=d.seed, augment=d.augment, **opts)
        if n is not None and "n" not in opts and n < len(ds):
            labels, flip_map = ds.labels, getattr(ds, "flip_map", None)
            ds = Subset(ds, range(n))
            ds.labels, ds.flip_map = labels, flip_map  # type: ignore[attr-defined]
        sets.append(ds)
    if len(sets[0]) == 0:
        raise ActionNetError("the training split is empty")
    log.info("data: %s, %d training and %d validation clips, %d classes", d.dataset, len(sets[0]), len(sets[1]),
             len(sets[0].labels))  # type: ignore[attr-defined]
    return sets[0], sets[1]


def _collate(batch: list) -> dict[str, Any]:
    from ..data import collate

    return collate(batch)


def _seed_worker(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: DataLoader, device: torch.device,
                   set_train_mode: Callable[[nn.Module, bool], None] = _default_train_mode) -> dict[str, float]:
    """Top-1/top-5/loss over ``loader`` (summed across DDP ranks), via the one evaluation
    function :func:`actionnet_edge.train.evaluate.evaluate`."""
    from .evaluate import evaluate

    r = evaluate(model, loader, device=device, set_train_mode=set_train_mode, log_every=60.0)
    return {"top1": r["top1"], "top5": r["top5"], "loss": r["loss"], "samples": int(r["num_samples"]),
            "bad": int(r["skipped"])}


def _norm(model: nn.Module | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = getattr(model, "mean", None) or IMAGENET_MEAN
    std = getattr(model, "std", None) or IMAGENET_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # tensorboard missing or broken: metrics.jsonl still has everything
        log.warning("TensorBoard logging off (%s)", e)
        return None
    return SummaryWriter(str(path))
