"""One progress bar for every long step (training epochs, evaluation, calibration, synthetic sets, bench rounds).

A tqdm bar on stderr with throughput and ETA. It is shown only on a terminal and at the INFO
log level: off when stderr is not a TTY (logs in files and CI keep their plain INFO lines,
which carry the same rate and ETA) and off with ``-q`` (the CLI then logs at WARNING).
``TQDM_DISABLE=1`` in the environment turns it off too (tqdm's own setting).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm

from .logs import console

__all__ = ["progress", "bar_enabled"]


def bar_enabled() -> bool:
    """Whether :func:`progress` draws a bar here (stderr is a terminal, INFO lines are on)."""
    return _isatty(console()) and logging.getLogger("actionnet_edge").isEnabledFor(logging.INFO)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(total: int | None, desc: str, unit: str = "clip") -> Iterator[tqdm]:
    """A bar counting ``unit`` up to ``total``: call ``bar.update(n)``; log lines print above it."""
    enabled = bar_enabled()
    bar = tqdm(total=total, desc=desc, unit=unit, file=console(), disable=not enabled, leave=False,
               dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
