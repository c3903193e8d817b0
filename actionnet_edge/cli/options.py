"""Shared click option helpers."""
from __future__ import annotations

from typing import Callable, Iterable

import click

from ..errors import unknown_name


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
