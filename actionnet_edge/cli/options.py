"""Shared click option helpers."""
from __future__ import annotations

from typing import Callable, Iterable

import click

from ..errors import unknown_name


#: the int8 parity gates, the same options wherever an int8 export is made
min_sqnr_option = click.option("--min-sqnr", default=None, type=float,
                               help="int8 SQNR vs float (a QAT checkpoint: vs its fake-quantized model), dB.")
min_top1_int8_option = click.option("--min-top1-int8", default=None, type=float,
                                    help="int8 top-1 agreement with float (QAT: its fake-quantized model) (0..1).")


def parity_thresholds(**given: float | None):
    """parity.Thresholds from the options given (None: the default), checked up front."""
    from ..export.parity import Thresholds
    from ..export.request import check_numbers

    th = Thresholds(**{k: v for k, v in given.items() if v is not None})
    check_numbers(None, th)
    return th


def choice(valid: Callable[[], Iterable[str]], kind: str):
    """A click callback that rejects unknown names with the valid list and the closest match."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        if value is None:
            return value
        names = list(valid())
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v not in names:
                raise unknown_name(kind, v, names)
        return value

    return callback


def temporal_names() -> list[str]:
    """Temporal module names and their aliases (imports the models, so only when a value is checked)."""
    from ..models import list_temporal

    return list_temporal(aliases=True)


def arch_names() -> list[str]:
    from ..models import list_models

    return list_models()


def dataset_names() -> list[str]:
    from ..data import list_datasets

    return list_datasets()


def target_names() -> list[str]:
    from ..export import list_targets

    return list_targets()


#: the temporal names as the help texts list them (tests check them against the models' registry)
TEMPORAL_HELP = "none (= tsn), shift (= tsm), shift_online (TSM's online demo), action, ste, ce or me"
