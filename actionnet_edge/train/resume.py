"""Resuming a run: ``last.pt``'s weights, optimizer, epoch, best top-1, losses and metrics rows.

A checkpoint whose weights or optimizer state do not fit the run's model (another width, a
wrong-shape tensor, no optimizer state) is one error, not a traceback.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..checkpoint import read_checkpoint
from ..errors import ActionNetError
from .run_recipe import check_same_run

log = logging.getLogger("actionnet_edge.train.loop")


def restore(run) -> None:
    """Continue ``last.pt``: weights, optimizer, epoch, best, losses and metrics rows, after checking
    that the recipe is the run's own (but a longer ``train.epochs``)."""
    last = run.out / "last.pt"
    if not last.is_file():
        raise ActionNetError(f"nothing to resume: {last} does not exist")
    raw = read_checkpoint(last)
    state = raw.get("train_state")
    if not isinstance(state, dict):
        raise ActionNetError(f"{last} has no training state to resume from")
    check_same_run(run.recipe, raw.get("recipe"), str(last))
    _restore_weights(run, raw["state_dict"], state, last)
    if run.use_amp and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.start_epoch, run.best = int(state["epoch"]) + 1, float(state.get("best_top1", -1.0))
    run.history = list(state.get("losses", []))
    rows = state.get("rows")
    if rows is None:  # a checkpoint without its rows: the file's, one per epoch it covers
        rows = list({r["epoch"]: r for r in _read_rows(run.out / "metrics.jsonl")}.values())
    run.rows = [r for r in rows if r.get("epoch", -1) < run.start_epoch]
    log.info("resuming from %s at epoch %d (best top-1 so far %.4f)", last, run.start_epoch + 1, run.best)


def _restore_weights(run, weights: dict, state: dict, last: Path) -> None:
    """The model's weights and the optimizer's state; one error when they do not fit this model."""
    try:
        run.hooks.load_state(run.model, weights)
    except (RuntimeError, KeyError, ValueError) as e:
        lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__)[:200]
        raise ActionNetError(f"{last}: its weights do not fit the run's model ({detail}); "
                             "start a new run with another --output") from None
    if not isinstance(state.get("optimizer"), dict):
        raise ActionNetError(f"{last} has no optimizer state to resume from; start a new run with another --output")
    try:
        run.opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise ActionNetError(f"{last}: its optimizer state does not fit the run's model "
                             f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__})") from None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
