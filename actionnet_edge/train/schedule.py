"""Learning-rate schedules given as fractions of the run, so they survive a change of epochs.

``lr_schedule: step`` multiplies the rate by ``lr_gamma`` at each of ``lr_steps`` (fractions of
``epochs`` in (0, 1), rounded to the nearest epoch: the paper's steps at epochs 10, 20, 25 of
30 are ``[0.3333, 0.6667, 0.8333]``); ``cosine`` decays it to zero over the run. Both can start
with a linear warm-up over the first ``warmup`` fraction of the optimizer steps. The factor is
a function of the optimizer step alone, so a resumed run continues the same curve.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

__all__ = ["SCHEDULES", "step_epochs", "lr_factor"]

SCHEDULES = ("step", "cosine")


def step_epochs(fractions: Sequence[float], epochs: int) -> list[int]:
    """The epochs (1..epochs-1) after which a step schedule lowers the rate; steps that fall
    on the first or past the last epoch of a short run are dropped."""
    return sorted({e for e in (round(f * epochs) for f in fractions) if 0 < e < epochs})


def lr_factor(schedule: str, fractions: Sequence[float], gamma: float, warmup: float, epochs: int,
              steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the base rate at optimizer step ``i`` (0-based) of the run."""
    total = max(epochs * steps_per_epoch, 1)
    warm = int(round(warmup * total))
    milestones = step_epochs(fractions, epochs)

    def factor(i: int) -> float:
        if schedule == "cosine":
            progress = min(max(i - warm, 0) / max(total - warm, 1), 1.0)
            f = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            epoch = i // max(steps_per_epoch, 1)
            f = gamma ** sum(epoch >= m for m in milestones)
        return f * min(1.0, (i + 1) / warm) if warm else f

    return factor
