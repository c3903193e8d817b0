"""Quantization-aware fine-tuning of a float checkpoint with the one training loop.

:func:`run_qat`: float checkpoint -> edge form -> ``prepare_qat_pt2e`` with the backend's
quantizer -> observers initialised on real training clips -> :func:`~actionnet_edge.train.loop.fit`
with QAT hooks (BN statistics and observers frozen from ``qat.freeze_bn_epoch`` /
``qat.freeze_observer_epoch``; observers never see validation clips) -> QAT checkpoints
(``last.pt``, ``best.pt``) -> the converted int8 model scored on the validation split against
the float model (``qat_report.json``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..checkpoint import Checkpoint, default_preprocess, load_checkpoint, read_checkpoint
from ..errors import ActionNetError
from ..models.edge import to_edge
from .checkpoints import save_qat_checkpoint
from .pt2e import calibrate, convert, load_prepared, prepare, set_qat_mode

log = logging.getLogger(__name__)

__all__ = ["run_qat"]


def run_qat(recipe, output: str | Path, *, init: str | Path | None = None, backend: str | None = None,
            data_root: str | Path | None = None, resume: bool = False, max_steps: int | None = None,
            device: str | None = None) -> dict[str, Any]:
    """Fine-tune ``init`` (default: the bundled model) with fake quantization; returns the report.

    Args:
        recipe: a validated recipe; its ``qat`` section (defaults if absent) sets backend, epochs,
            lr, freezing; ``data`` gives the clips (``data.segments`` must match the checkpoint).
        output: run folder: ``last.pt`` / ``best.pt`` (QAT checkpoints), ``metrics.jsonl``,
            ``qat_report.json``.
        backend: overrides ``qat.backend`` (xnnpack, litert, coreml).
        max_steps: stop after this many optimizer steps (tests, smoke runs).
    """
    from ..data import collate
    from ..train.config import QATConfig
    from ..train.loop import build_datasets, evaluate_model, fit

    q = recipe.qat or QATConfig()
    backend = backend or q.backend
    out = Path(output)
    ck, t = _float_checkpoint(recipe, init)
    size = int(recipe.data.size)
    train_set, val_set = build_datasets(recipe, data_root, tuple(ck.preprocess["mean"]), tuple(ck.preprocess["std"]))
    _check_labels(train_set, ck)
    batch = q.batch_size or recipe.train.batch_size
    val_loader = DataLoader(val_set, batch_size=batch, shuffle=False, collate_fn=collate,
                            num_workers=recipe.data.workers)
    edge = to_edge(ck.model)
    float_val = evaluate_model(edge, val_loader, torch.device("cpu"))
    log.info("float %s: val top-1 %.4f on %d clips", ck.path.name, float_val["top1"], float_val["samples"])

    input_shape = (1, t, 3, size, size)
    prepared = _prepare_graph(edge, backend, input_shape, q, None if resume else train_set, batch, recipe.train.seed)
    hooks = _qat_hooks(q, ck, backend, input_shape, default_preprocess(ck.model, size), out)
    train_cfg = dataclasses.replace(recipe.train, epochs=q.epochs, lr=q.lr, lr_steps=list(q.lr_steps),
                                    lr_schedule="step", warmup=0.0, batch_size=batch)
    qat_recipe = dataclasses.replace(recipe, train=train_cfg, qat=dataclasses.replace(q, backend=backend))
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = fit(qat_recipe, out, data_root=data_root, resume=resume, model=prepared, hooks=hooks,
                 train_set=train_set, val_set=val_set, max_steps=max_steps, device=str(dev))

    int8_val = _score_int8(prepared, val_loader, evaluate_model)
    report = {
        "backend": backend, "init": {"path": str(ck.path), "sha256": ck.sha256},
        "qat_checkpoint": str(out / "last.pt"), "input_shape": list(input_shape),
        "epochs": q.epochs, "steps": len(result.get("losses", [])),
        "float_top1": float_val["top1"], "fake_quant_top1": (result.get("val") or {}).get("top1"),
        "int8_top1": int8_val["top1"], "int8_minus_float_points": round(100 * (int8_val["top1"] - float_val["top1"]), 2),
        "val_clips": int8_val["samples"], "recipe": qat_recipe.to_dict(),
    }
    (out / "qat_report.json").write_text(json.dumps(report, indent=2))
    log.info("int8 (%s) val top-1 %.4f vs float %.4f (%+.2f points); QAT checkpoint %s", backend,
             int8_val["top1"], float_val["top1"], report["int8_minus_float_points"], out / "last.pt")
    return report


def _float_checkpoint(recipe, init: str | Path | None) -> tuple[Checkpoint, int]:
    """The float checkpoint QAT starts from and its T, checked against the recipe."""
    ck = load_checkpoint(init)
    if isinstance(ck.raw.get("qat"), dict):
        raise ActionNetError(f"{ck.path} is already a QAT checkpoint; start QAT from a float checkpoint")
    t = int(ck.model.config["num_segments"])
    if recipe.data.segments != t:
        raise ActionNetError(f"recipe data.segments={recipe.data.segments} but {ck.path.name} was trained with "
                             f"{t} frames; pass --set data.segments={t}")
    return ck, t


def _check_labels(train_set, ck: Checkpoint) -> None:
    if list(train_set.labels) != list(ck.labels):
        raise ActionNetError(f"the recipe's dataset has labels {list(train_set.labels)[:4]}... but "
                             f"{ck.path.name} was trained on {ck.labels[:4]}...: QAT needs the same classes")


def _prepare_graph(edge: torch.nn.Module, backend: str, input_shape: tuple[int, ...], q, calib_set, batch: int,
                   seed: int) -> torch.fx.GraphModule:
    """The QAT graph, its ranges initialised on ``calib_set``'s clips (None: left to a resumed run)."""
    from ..data import collate

    t0 = time.perf_counter()
    prepared = prepare(edge, backend, torch.zeros(input_shape), qat=True, per_channel=q.per_channel)
    log.info("prepared the %s QAT graph in %.1fs", backend, time.perf_counter() - t0)
    if calib_set is not None and q.calib_batches:
        calib = DataLoader(calib_set, batch_size=batch, shuffle=True, collate_fn=collate,
                           generator=torch.Generator().manual_seed(seed))
        n = calibrate(prepared, (b["clips"] for b in calib if len(b["labels"])), max_batches=q.calib_batches)
        log.info("initialised the quantization ranges on %d training clips", n)
    return prepared


def _qat_hooks(q, ck: Checkpoint, backend: str, input_shape: tuple[int, ...], preprocess: dict, out: Path):
    """The training loop's hooks for a QAT graph: freezing schedule, train/eval switch, QAT checkpoints."""
    from ..train.loop import Hooks

    frozen = {"bn": False, "observers": False}

    def on_epoch_start(epoch: int, model: torch.nn.Module) -> None:
        for key, at in (("bn", q.freeze_bn_epoch), ("observers", q.freeze_observer_epoch)):
            if at is not None and epoch >= at and not frozen[key]:
                frozen[key] = True
                log.info("epoch %d: %s frozen", epoch + 1, "BN statistics" if key == "bn" else "observers")

    def set_train_mode(model: torch.nn.Module, training: bool) -> None:
        set_qat_mode(model, training, bn_frozen=frozen["bn"], observers_frozen=frozen["observers"])

    def save(path: Path, model: torch.nn.Module, labels: list[str], extra: dict[str, Any]) -> None:
        extra = {k: v for k, v in extra.items() if k != "preprocess"}
        save_qat_checkpoint(path, model, ck.model, labels, preprocess, backend=backend, input_shape=input_shape,
                            per_channel=q.per_channel, init={"path": str(ck.path), "sha256": ck.sha256}, **extra)

    def load_state(model: torch.nn.Module, _float_state: dict) -> None:
        load_prepared(model, read_checkpoint(out / "last.pt")["qat"]["state_dict"])

    return Hooks(set_train_mode=set_train_mode, on_epoch_start=on_epoch_start, save=save, load_state=load_state)


def _score_int8(prepared: torch.fx.GraphModule, val_loader: DataLoader, evaluate_model) -> dict[str, Any]:
    """The trained graph converted to int8 and scored on the validation clips (on the CPU)."""
    t1 = time.perf_counter()
    prepared.to("cpu")
    int8 = convert(prepared)
    log.info("converted to int8 in %.1fs", time.perf_counter() - t1)
    return evaluate_model(int8, val_loader, torch.device("cpu"), set_train_mode=lambda m, training: None)
