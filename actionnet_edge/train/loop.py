"""The one training loop: fp32 training and QAT fine-tuning, single process or DDP.

Usage::

    from actionnet_edge.train.config import load_recipe
    from actionnet_edge.train.loop import fit
    result = fit(load_recipe("recipes/synthetic.yaml"), "runs/synth")

What it does (TSM / ACTION-Net's recipe): SGD (momentum, weight decay; ``train.optimizer:
adamw`` for training from scratch, with ``momentum`` as beta1) with a step LR
schedule (``MultiStepLR`` stepped per epoch), gradient clipping by norm, cross-entropy on
clip logits. After every epoch it evaluates top-1/top-5 on the validation split, appends a
line to ``metrics.jsonl`` (and TensorBoard ``tb/``), and writes ``last.pt`` atomically
(model, optimizer, scheduler, epoch, recipe, labels, RNG state) and ``best.pt`` when top-1
improves. ``resume=True`` continues from ``last.pt``; every epoch re-seeds the sampler,
dropout and data workers from ``(train.seed, epoch)``, so a resumed run equals an
uninterrupted one on CPU. Bad samples (``BadSample``) are skipped, counted and named.

Distributed: launch with ``torchrun --nproc_per_node N -m actionnet_edge.cli.main train ...``;
the loop sees ``WORLD_SIZE`` and uses DDP (gloo on CPU, nccl on GPU; AMP on GPU when
``train.amp``). ``train.batch_size`` is the global batch; rank 0 writes files; validation
runs on each rank's shard and the counts are summed.

Hooks for QAT (the QAT code passes a PT2E-prepared ``torch.fx.GraphModule`` as ``model``):

* ``Hooks.set_train_mode(model, training)`` -- switch train/eval (default ``model.train(mode)``;
  PT2E models use ``torchao.quantization.pt2e.move_exported_model_to_train/eval``);
* ``Hooks.on_epoch_start(epoch, model)`` -- e.g. freeze observers / BN statistics;
* ``Hooks.save(path, model, labels, extra)`` -- write a checkpoint of a model that is not an
  :class:`~actionnet_edge.models.ActionNet` (default: :func:`~actionnet_edge.checkpoint.save_checkpoint`);
* ``Hooks.load_state(model, state_dict)`` -- restore weights on resume (default ``load_state_dict``).

``fit(recipe, output, model=..., hooks=..., train_set=..., val_set=...)`` trains the given
model with ``recipe.train`` (pass a recipe whose ``train`` section holds the QAT epochs/lr,
e.g. ``dataclasses.replace(recipe, train=...)``); datasets default to ``recipe.data``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..checkpoint import default_preprocess, read_checkpoint, save_checkpoint
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ActionNetError
from .config import Recipe

log = logging.getLogger(__name__)

__all__ = ["Hooks", "fit", "build_model", "build_datasets", "evaluate_model"]


def _default_train_mode(model: nn.Module, training: bool) -> None:
    model.train(training)


def _default_load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict(state)


@dataclass
class Hooks:
    """Customisation points of :func:`fit` (see the module docstring)."""

    set_train_mode: Callable[[nn.Module, bool], None] = _default_train_mode
    on_epoch_start: Callable[[int, nn.Module], None] | None = None
    save: Callable[[Path, nn.Module, list[str], dict[str, Any]], None] | None = None
    load_state: Callable[[nn.Module, dict[str, torch.Tensor]], None] = _default_load_state


# ----------------------------------------------------------------------------- setup
def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's model (ImageNet backbone weights from ``model.pretrained`` if given)."""
    from ..models import create_model

    m = recipe.model
    return create_model(m.arch, m.temporal, recipe.data.segments, num_classes, m.width_mult,
                        pretrained=m.pretrained, dropout=m.dropout, causal=m.causal, consensus=m.consensus)


def _norm(model: nn.Module | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = getattr(model, "mean", None) or IMAGENET_MEAN
    std = getattr(model, "std", None) or IMAGENET_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


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
                           std=std, flip=d.flip and train, seed=d.seed, **opts)
        if n is not None and "n" not in opts and n < len(ds):
            labels, flip_map = ds.labels, getattr(ds, "flip_map", None)
            ds = Subset(ds, range(n))
            ds.labels, ds.flip_map = labels, flip_map  # type: ignore[attr-defined]
        sets.append(ds)
    if len(sets[0]) == 0:
        raise ActionNetError("the training split is empty")
    return sets[0], sets[1]


def _collate(batch: list) -> dict[str, Any]:
    from ..data import collate

    return collate(batch)


def _seed_worker(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
            "python": repr(random.getstate())}


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_model(model: nn.Module, loader: DataLoader, device: torch.device,
                   set_train_mode: Callable[[nn.Module, bool], None] = _default_train_mode) -> dict[str, float]:
    """Top-1/top-5/loss over ``loader`` (summed across DDP ranks), via the one evaluation
    function :func:`actionnet_edge.train.evaluate.evaluate`."""
    from .evaluate import evaluate

    r = evaluate(model, loader, device=device, set_train_mode=set_train_mode, log_every=60.0)
    return {"top1": r["top1"], "top5": r["top5"], "loss": r["loss"], "samples": int(r["num_samples"]),
            "bad": int(r["skipped"])}


# ----------------------------------------------------------------------------- the loop
def fit(recipe: Recipe, output: str | Path, *, data_root: str | Path | None = None, resume: bool = False,
        model: nn.Module | None = None, hooks: Hooks | None = None, train_set: Dataset | None = None,
        val_set: Dataset | None = None, max_steps: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Train ``model`` (default: built from the recipe) and return the final metrics.

    Args:
        recipe: a validated :class:`~actionnet_edge.train.config.Recipe`.
        output: run folder (``last.pt``, ``best.pt``, ``metrics.jsonl``, ``tb/``).
        data_root: overrides ``recipe.data.root``.
        resume: continue from ``output/last.pt``.
        model, hooks: see the module docstring (QAT passes a prepared GraphModule).
        train_set, val_set: datasets to use instead of ``recipe.data``.
        max_steps: stop after this many optimizer steps in total (tests, smoke runs).
        device: ``cpu`` / ``cuda`` (default: cuda if available).
    Returns:
        ``{"epoch", "best_top1", "val": {...}, "train_loss", "losses": [...], "output"}``.
    """
    hooks = hooks or Hooks()
    out = Path(output)
    t = recipe.train
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    if dev.type == "cuda" and distributed:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if t.batch_size % world:
        raise ActionNetError(f"train.batch_size {t.batch_size} is not divisible by the {world} processes")
    per_rank = t.batch_size // world
    last = out / "last.pt"
    if resume and not last.is_file():
        raise ActionNetError(f"nothing to resume: {last} does not exist")

    torch.manual_seed(t.seed)
    random.seed(t.seed)
    np.random.seed(t.seed)
    own_model = model is None
    if train_set is None or val_set is None:
        mean, std = _norm(model)
        if own_model:
            from ..models.backbones import BACKBONES

            spec = BACKBONES[recipe.model.arch](recipe.model.width_mult) if recipe.model.arch in BACKBONES else None
            mean, std = (tuple(spec.mean), tuple(spec.std)) if spec is not None else (mean, std)
        tr, va = build_datasets(recipe, data_root, mean, std)
        train_set = tr if train_set is None else train_set
        val_set = va if val_set is None else val_set
    labels = list(train_set.labels)  # type: ignore[attr-defined]
    if model is None:
        torch.manual_seed(t.seed)
        model = build_model(recipe, len(labels))
    model.to(dev)
    preprocess = default_preprocess(model, recipe.data.size) if hasattr(model, "mean") else {
        "size": recipe.data.size, "resize": int(round(recipe.data.size * 256 / 224)),
        "mean": list(_norm(model)[0]), "std": list(_norm(model)[1])}

    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=t.lr, betas=(t.momentum, 0.999), weight_decay=t.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(t.lr_steps), gamma=t.lr_gamma)
    use_amp = t.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, best, history = 0, -1.0, []
    if resume:
        raw = read_checkpoint(last)
        state = raw.get("train_state")
        if not isinstance(state, dict):
            raise ActionNetError(f"{last} has no training state to resume from")
        hooks.load_state(model, raw["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if use_amp and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best = int(state["epoch"]) + 1, float(state.get("best_top1", -1.0))
        history = list(state.get("losses", []))
        log.info("resuming from %s at epoch %d (best top-1 so far %.4f)", last, start_epoch, best)
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    val_idx = list(range(rank, len(val_set), world))
    val_loader = DataLoader(Subset(val_set, val_idx) if distributed else val_set, batch_size=per_rank,
                            shuffle=False, num_workers=recipe.data.workers, collate_fn=_collate,
                            worker_init_fn=_seed_worker)
    writer = _tensorboard(out / "tb") if rank == 0 else None
    steps_per_epoch = math.ceil(len(train_set) / t.batch_size)
    total_steps = steps_per_epoch * (t.epochs - start_epoch)
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    done_steps, t_start, val = 0, time.time(), {}
    result: dict[str, Any] = {"output": str(out), "best_top1": best, "epoch": start_epoch - 1, "losses": history}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        log.info("training %s on %d clips (%d classes), %d epochs from %d, batch %d x %d processes, %s",
                 type(model).__name__, len(train_set), len(labels), t.epochs, start_epoch, per_rank, world, dev)
    for epoch in range(start_epoch, t.epochs):
        if max_steps is not None and done_steps >= max_steps:
            break
        torch.manual_seed(t.seed * 100_003 + epoch * 1009 + rank)  # dropout, worker seeds
        if distributed:
            sampler = torch.utils.data.DistributedSampler(train_set, world, rank, shuffle=True, seed=t.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(t.seed * 7919 + epoch))
        loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=recipe.data.workers,
                            collate_fn=_collate, worker_init_fn=_seed_worker, drop_last=False,
                            persistent_workers=False)
        if hooks.on_epoch_start is not None:
            hooks.on_epoch_start(epoch, model)
        hooks.set_train_mode(model, True)
        lr = opt.param_groups[0]["lr"]
        loss_sum, correct, seen, bad, ep_start = 0.0, 0, 0, 0, time.time()
        for step, batch in enumerate(loader):
            if max_steps is not None and done_steps >= max_steps:
                break
            if batch["bad"]:
                bad += len(batch["bad"])
                log.warning("skipped %d bad sample(s): %s", len(batch["bad"]),
                            "; ".join(f"{n} ({r})" for n, r in batch["bad"][:3]))
            if len(batch["labels"]) == 0:
                continue
            x, y = batch["clips"].to(dev, non_blocking=True), batch["labels"].to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y)
            if not torch.isfinite(loss):
                raise ActionNetError(f"loss became {loss.item()} at epoch {epoch} step {step}: lower train.lr")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t.clip_grad:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(params, t.clip_grad)
            scaler.step(opt)
            scaler.update()
            done_steps += 1
            history.append(round(float(loss.item()), 6))
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            if rank == 0 and (done_steps % t.log_every == 0 or step == steps_per_epoch - 1):
                el = time.time() - t_start
                rate = done_steps * t.batch_size / max(el, 1e-6)
                eta = (total_steps - done_steps) * el / done_steps
                log.info("epoch %d/%d step %d/%d loss %.4f acc %.3f lr %.4g | %.2f clips/s, ETA %s",
                         epoch + 1, t.epochs, step + 1, steps_per_epoch, loss_sum / seen, correct / seen, lr, rate,
                         _hms(eta))
        sched.step()
        val = evaluate_model(model, val_loader, dev, hooks.set_train_mode)  # unwrapped: shards differ in size
        train_loss = loss_sum / max(seen, 1)
        improved = val["top1"] > best
        best = max(best, val["top1"])
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_top1": correct / max(seen, 1),
               "val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"], "bad_train": bad,
               "bad_val": val["bad"], "seconds": round(time.time() - ep_start, 1),
               "clips_per_s": round(seen * world / max(time.time() - ep_start, 1e-6), 3)}
        if rank == 0:
            log.info("epoch %d/%d: train loss %.4f top-1 %.4f | val top-1 %.4f top-5 %.4f%s | %d bad samples",
                     epoch + 1, t.epochs, train_loss, row["train_top1"], val["top1"], val["top5"],
                     " (best)" if improved else "", bad + val["bad"])
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, epoch)
                writer.flush()
            metrics = {"top1": val["top1"], "top5": val["top5"], "epoch": epoch}
            state = {"epoch": epoch, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "best_top1": best, "rng": _rng_state(), "losses": list(history),
                     "scaler": scaler.state_dict() if use_amp else None}
            extra = {"recipe": recipe.to_dict(), "metrics": metrics}
            _save(hooks, last, model, labels, preprocess, dict(extra, train_state=state))
            if improved:
                _save(hooks, out / "best.pt", model, labels, preprocess, extra)
        if distributed:
            dist.barrier()
        result.update(epoch=epoch, best_top1=best, val=val, train_loss=train_loss)
    if writer is not None:
        writer.close()
    result["losses"] = history
    return result


def _save(hooks: Hooks, path: Path, model: nn.Module, labels: list[str], preprocess: dict[str, Any],
          extra: dict[str, Any]) -> None:
    if hooks.save is not None:
        hooks.save(path, model, labels, dict(extra, preprocess=preprocess))
    else:
        save_checkpoint(path, model, labels, preprocess, **extra)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # tensorboard missing or broken: metrics.jsonl still has everything
        log.warning("TensorBoard logging off (%s)", e)
        return None
    return SummaryWriter(str(path))


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
