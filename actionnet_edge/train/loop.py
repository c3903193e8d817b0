"""The one training loop: fp32 training and QAT fine-tuning, single process or DDP.

    result = fit(load_recipe("recipes/synthetic.yaml"), "runs/synth")

:func:`fit` reads as its steps, as torchtune's recipes do: set up the process, data, model and
optimizer; restore a run being resumed (with its own recipe: only ``train.epochs`` may grow);
then per epoch train, validate, save. Each epoch writes ``last.pt`` (weights, optimizer, recipe,
metrics rows, RNG state), ``best.pt`` when top-1 improves, then its ``metrics.jsonl`` row (and
TensorBoard ``tb/``); ``recipe.yaml`` records the recipe that runs. Sampler, dropout and workers
are seeded from ``(train.seed, epoch)``, so a resumed run equals an uninterrupted one on CPU.
DDP under ``torchrun`` (gloo on CPU, nccl and AMP on GPU); ``train.batch_size`` is the global
batch; rank 0 writes. QAT passes a PT2E-prepared ``GraphModule`` and :class:`Hooks`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..checkpoint import default_preprocess, save_checkpoint
from ..errors import ActionNetError
from ..fsutil import atomic_write_text, check_writable
from ..progress import bar_enabled, progress
from .builders import (_collate, _default_train_mode, _norm, _seed_worker, _tensorboard, build_datasets, build_model,
                       evaluate_model)
from .config import Recipe
from .run_recipe import resolved_recipe
from .resume import restore
from .schedule import lr_factor

log = logging.getLogger(__name__)

__all__ = ["Hooks", "fit", "build_model", "build_datasets", "evaluate_model"]


def _default_load_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    model.load_state_dict(state)


@dataclass
class Hooks:
    """Customisation points of :func:`fit` (see the module docstring)."""

    set_train_mode: Callable[[nn.Module, bool], None] = _default_train_mode
    on_epoch_start: Callable[[int, nn.Module], None] | None = None
    save: Callable[[Path, nn.Module, list[str], dict[str, Any]], None] | None = None
    load_state: Callable[[nn.Module, dict[str, torch.Tensor]], None] = _default_load_state


@dataclass
class _Run:
    """What the steps of :func:`fit` share."""

    recipe: Recipe
    out: Path
    hooks: Hooks
    dev: torch.device
    rank: int = 0
    world: int = 1
    max_steps: int | None = None
    model: nn.Module = None  # type: ignore[assignment]
    net: nn.Module = None  # type: ignore[assignment]
    train_set: Dataset = None  # type: ignore[assignment]
    val_set: Dataset = None  # type: ignore[assignment]
    labels: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    opt: torch.optim.Optimizer = None  # type: ignore[assignment]
    factor: Callable[[int], float] = lambda i: 1.0
    scaler: Any = None
    start_epoch: int = 0
    best: float = -1.0
    history: list[float] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    done_steps: int = 0

    @property
    def use_amp(self) -> bool:
        return self.recipe.train.amp and self.dev.type == "cuda"

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.recipe.train.batch_size)

    def out_of_steps(self) -> bool:
        return self.max_steps is not None and self.done_steps >= self.max_steps


# ----------------------------------------------------------------------------- the loop
def fit(recipe: Recipe, output: str | Path, *, data_root: str | Path | None = None, resume: bool = False,
        model: nn.Module | None = None, hooks: Hooks | None = None, train_set: Dataset | None = None,
        val_set: Dataset | None = None, max_steps: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Train ``model`` (default: built from the recipe) and return the final metrics.

    Args:
        recipe: a validated :class:`~actionnet_edge.train.config.Recipe` (on resume, the run's own:
            see :func:`~actionnet_edge.train.run_recipe.resumed_recipe`).
        output: run folder (``last.pt``, ``best.pt``, ``metrics.jsonl``, ``recipe.yaml``, ``tb/``).
        data_root: overrides ``recipe.data.root``.
        resume: continue from ``output/last.pt``.
        model, hooks: see the module docstring (QAT passes a prepared GraphModule).
        train_set, val_set: datasets to use instead of ``recipe.data``.
        max_steps: stop after this many optimizer steps in total (tests, smoke runs).
        device: ``cpu`` / ``cuda`` (default: cuda if available).
    Returns:
        ``{"epoch", "best_top1", "val": {...}, "train_loss", "losses": [...], "output", "epochs_trained"}``.
    """
    check_writable(output, "output folder")
    run = _setup_process(resolved_recipe(recipe, data_root), Path(output), hooks or Hooks(), device, max_steps)
    _setup_data(run, model, train_set, val_set)
    _setup_model(run, model)
    _setup_optimizer(run)
    if resume:
        restore(run)
    result: dict[str, Any] = {"output": str(run.out), "best_top1": run.best, "epoch": run.start_epoch - 1,
                              "losses": run.history, "epochs_trained": 0}
    if run.rows:
        result["val"] = {k[4:]: v for k, v in run.rows[-1].items() if k.startswith("val_")}
    if run.start_epoch >= run.recipe.train.epochs:
        log.info("nothing to train: %s has finished its %d epochs (pass --set train.epochs=N to extend it)",
                 run.out, run.recipe.train.epochs)
        return result
    new_folder = not run.out.exists()
    _start_outputs(run)
    val_loader = _val_loader(run)
    writer = _tensorboard(run.out / "tb") if run.rank == 0 else None
    try:
        for epoch in range(run.start_epoch, run.recipe.train.epochs):
            if run.out_of_steps():
                break
            row = _train_epoch(run, epoch)
            val = evaluate_model(run.model, val_loader, run.dev, run.hooks.set_train_mode)  # unwrapped: shards differ
            _end_epoch(run, epoch, row, val, writer)
            result.update(epoch=epoch, best_top1=run.best, val=val, train_loss=row["train_loss"],
                          epochs_trained=result["epochs_trained"] + 1)
    except BaseException:
        if writer is not None:
            writer.close()
        if new_folder and run.rank == 0 and not (run.out / "last.pt").exists():
            shutil.rmtree(run.out, ignore_errors=True)  # a run that failed before its first checkpoint leaves nothing
        raise
    if writer is not None:
        writer.close()
    return result


def _setup_process(recipe: Recipe, out: Path, hooks: Hooks, device: str | None, max_steps: int | None) -> _Run:
    """Device, DDP process group and seeds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if recipe.train.batch_size % world:
        raise ActionNetError(f"train.batch_size {recipe.train.batch_size} is not divisible by the {world} processes")
    seed = recipe.train.seed
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    return _Run(recipe, out, hooks, dev, rank=dist.get_rank() if world > 1 else 0, world=world, max_steps=max_steps)


def _setup_data(run: _Run, model: nn.Module | None, train_set: Dataset | None, val_set: Dataset | None) -> None:
    """The datasets (the recipe's, normalised as the model's backbone expects) and their labels."""
    if train_set is None or val_set is None:
        mean, std = _norm(model)
        if model is None:
            from ..models.backbones import BACKBONES

            m = run.recipe.model
            if m.arch in BACKBONES:
                spec = BACKBONES[m.arch](m.width_mult)
                mean, std = tuple(spec.mean), tuple(spec.std)
        tr, va = build_datasets(run.recipe, None, mean, std)
        train_set = tr if train_set is None else train_set
        val_set = va if val_set is None else val_set
    run.train_set, run.val_set = train_set, val_set
    run.labels = list(train_set.labels)  # type: ignore[attr-defined]


def _setup_model(run: _Run, model: nn.Module | None) -> None:
    """The model (built from the recipe unless given), on the device, DDP-wrapped, and its preprocessing."""
    if model is None:
        torch.manual_seed(run.recipe.train.seed)
        model = build_model(run.recipe, len(run.labels))
    model.to(run.dev)
    size = run.recipe.data.size
    mean, std = _norm(model)
    run.preprocess = default_preprocess(model, size) if hasattr(model, "mean") else {
        "size": size, "resize": int(round(size * 256 / 224)), "mean": list(mean), "std": list(std)}
    run.model = run.net = model
    if run.world > 1:
        run.net = nn.parallel.DistributedDataParallel(model, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)


def _setup_optimizer(run: _Run) -> None:
    """Optimizer, the schedule's per-step factor and the AMP scaler."""
    t = run.recipe.train
    params = [p for p in run.model.parameters() if p.requires_grad]
    if t.optimizer == "adamw":
        run.opt = torch.optim.AdamW(params, lr=t.lr, betas=(t.momentum, 0.999), weight_decay=t.weight_decay)
    else:
        run.opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    for g in run.opt.param_groups:
        g["initial_lr"] = g["lr"]
    run.factor = lr_factor(t.lr_schedule, t.lr_steps, t.lr_gamma, t.warmup, t.epochs, run.steps_per_epoch)
    run.scaler = torch.amp.GradScaler("cuda", enabled=run.use_amp)


def _start_outputs(run: _Run) -> None:
    """The run folder, its ``recipe.yaml`` (the recipe that runs) and ``metrics.jsonl`` (the rows of
    the epochs in ``last.pt``: a row written after a checkpoint that a kill lost is dropped)."""
    if run.rank != 0:
        return
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "recipe.yaml", yaml.safe_dump(run.recipe.to_dict(), sort_keys=False))
    atomic_write_text(run.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in run.rows))
    t = run.recipe.train
    log.info("training %s on %d clips (%d classes), %d epochs from %d, batch %d x %d processes, %s",
             type(run.model).__name__, len(run.train_set), len(run.labels), t.epochs, run.start_epoch + 1,
             t.batch_size // run.world, run.world, run.dev)


def _val_loader(run: _Run) -> DataLoader:
    val_idx = list(range(run.rank, len(run.val_set), run.world))
    data = Subset(run.val_set, val_idx) if run.world > 1 else run.val_set
    return DataLoader(data, batch_size=run.recipe.train.batch_size // run.world, shuffle=False,
                      num_workers=run.recipe.data.workers, collate_fn=_collate, worker_init_fn=_seed_worker)


def _train_loader(run: _Run, epoch: int) -> DataLoader:
    """This epoch's shuffled loader; sampler, dropout and worker seeds follow (seed, epoch)."""
    t = run.recipe.train
    torch.manual_seed(t.seed * 100_003 + epoch * 1009 + run.rank)  # dropout, worker seeds
    if run.world > 1:
        sampler = torch.utils.data.DistributedSampler(run.train_set, run.world, run.rank, shuffle=True, seed=t.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = torch.utils.data.RandomSampler(run.train_set,
                                                 generator=torch.Generator().manual_seed(t.seed * 7919 + epoch))
    return DataLoader(run.train_set, batch_size=t.batch_size // run.world, sampler=sampler,
                      num_workers=run.recipe.data.workers, collate_fn=_collate, worker_init_fn=_seed_worker)


def _train_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """One pass over the training set; returns the epoch's row (train figures) of ``metrics.jsonl``."""
    t = run.recipe.train
    if run.hooks.on_epoch_start is not None:
        run.hooks.on_epoch_start(epoch, run.model)
    run.hooks.set_train_mode(run.model, True)
    lr = run.opt.param_groups[0]["initial_lr"] * run.factor(epoch * run.steps_per_epoch)
    loss_sum, correct, seen, bad, start = 0.0, 0, 0, 0, time.time()
    show = run.rank == 0 and bar_enabled()
    with progress(len(run.train_set) // run.world if run.rank == 0 else 0, f"epoch {epoch + 1}/{t.epochs}") as bar:
        for step, batch in enumerate(_train_loader(run, epoch)):
            if run.out_of_steps():
                break
            bad += _report_bad(batch)
            if len(batch["labels"]) == 0:
                continue
            loss, hits = _train_step(run, batch, epoch * run.steps_per_epoch + step, f"epoch {epoch + 1} step {step}")
            n = len(batch["labels"])
            loss_sum, correct, seen = loss_sum + loss * n, correct + hits, seen + n
            bar.update(n)
            if run.rank == 0 and not show and (run.done_steps % t.log_every == 0 or step == run.steps_per_epoch - 1):
                _log_step(run, epoch, step, loss_sum / seen, correct / seen, seen, start)
    if seen == 0 and not run.out_of_steps():
        raise ActionNetError(f"no usable training samples in epoch {epoch + 1}: all {bad} read were bad "
                             "(see the warnings above); nothing was trained")
    return {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
            "bad_train": bad, "seconds": round(time.time() - start, 1),
            "clips_per_s": round(seen * run.world / max(time.time() - start, 1e-6), 3)}


def _train_step(run: _Run, batch: dict[str, Any], index: int, where: str) -> tuple[float, int]:
    """One optimizer step at position ``index`` of the run's schedule; returns (loss, correct)."""
    x, y = batch["clips"].to(run.dev, non_blocking=True), batch["labels"].to(run.dev, non_blocking=True)
    for g in run.opt.param_groups:
        g["lr"] = g["initial_lr"] * run.factor(index)
    with torch.autocast(run.dev.type, dtype=torch.float16, enabled=run.use_amp):
        logits = run.net(x)
        loss = F.cross_entropy(logits.float(), y)
    if not torch.isfinite(loss):
        raise ActionNetError(f"loss became {loss.item()} at {where}: lower train.lr (or add train.warmup); "
                             f"the last good checkpoint is kept in {run.out}")
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.recipe.train.clip_grad:
        run.scaler.unscale_(run.opt)
        nn.utils.clip_grad_norm_([p for g in run.opt.param_groups for p in g["params"]], run.recipe.train.clip_grad)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.done_steps += 1
    run.history.append(round(float(loss.item()), 6))
    return float(loss.item()), int((logits.argmax(1) == y).sum().item())


def _report_bad(batch: dict[str, Any]) -> int:
    if batch["bad"]:
        log.warning("skipped %d bad sample(s): %s", len(batch["bad"]),
                    "; ".join(f"{n} ({r})" for n, r in batch["bad"][:3]))
    return len(batch["bad"])


def _log_step(run: _Run, epoch: int, step: int, loss: float, acc: float, seen: int, start: float) -> None:
    """The progress line logged when no bar is drawn (logs in files, CI)."""
    t = run.recipe.train
    el = time.time() - start
    rate = seen * run.world / max(el, 1e-6)
    left = (t.epochs - epoch) * len(run.train_set) - seen * run.world
    log.info("epoch %d/%d step %d/%d loss %.4f acc %.3f lr %.4g | %.2f clips/s, ETA %s", epoch + 1, t.epochs,
             step + 1, run.steps_per_epoch, loss, acc, run.opt.param_groups[0]["lr"], rate, _hms(left / max(rate, 1e-9)))


def _end_epoch(run: _Run, epoch: int, row: dict[str, Any], val: dict[str, float], writer) -> None:
    """Checkpoints first, then the metrics row (so the rows never run ahead of ``last.pt``);
    weights that are no longer finite stop the run before they overwrite the last good checkpoint."""
    bad = [n for n, p in run.model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise ActionNetError(f"{len(bad)} weight tensor(s) became non-finite in epoch {epoch + 1} (e.g. {bad[0]}): "
                             f"lower train.lr (or add train.warmup); the last good checkpoint is kept in {run.out}")
    improved = val["top1"] > run.best
    run.best = max(run.best, val["top1"])
    row.update(val_top1=val["top1"], val_top5=val["top5"], val_loss=val["loss"], bad_val=val["bad"])
    run.rows.append(row)
    if run.rank == 0:
        log.info("epoch %d/%d: train loss %.4f top-1 %.4f | val top-1 %.4f top-5 %.4f%s | %d bad samples",
                 epoch + 1, run.recipe.train.epochs, row["train_loss"], row["train_top1"], val["top1"],
                 val["top5"], " (best)" if improved else "", row["bad_train"] + val["bad"])
        _save_checkpoints(run, epoch, val, improved)
        with open(run.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch)
            writer.flush()
    if run.world > 1:
        dist.barrier()


def _save_checkpoints(run: _Run, epoch: int, val: dict[str, float], improved: bool) -> None:
    state = {"epoch": epoch, "optimizer": run.opt.state_dict(), "best_top1": run.best, "rng": _rng_state(),
             "losses": list(run.history), "rows": list(run.rows),
             "scaler": run.scaler.state_dict() if run.use_amp else None}
    extra = {"recipe": run.recipe.to_dict(), "metrics": {"top1": val["top1"], "top5": val["top5"], "epoch": epoch}}
    _save(run, run.out / "last.pt", dict(extra, train_state=state))
    if improved:
        _save(run, run.out / "best.pt", extra)


def _save(run: _Run, path: Path, extra: dict[str, Any]) -> None:
    if run.hooks.save is not None:
        run.hooks.save(path, run.model, run.labels, dict(extra, preprocess=run.preprocess))
    else:
        save_checkpoint(path, run.model, run.labels, run.preprocess, **extra)


# ----------------------------------------------------------------------------- small helpers
def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
            "python": repr(random.getstate())}


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
