"""The one exception type for user-facing errors.

Anything raised as :class:`ActionNetError` is the user's input being wrong (an unknown
name, a missing file, a corrupt checkpoint...). The CLI prints its message as one line
and exits non-zero; library callers can catch it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class ActionNetError(Exception):
    """A user-facing error: its message is one line that names the problem."""

    exit_code = 2


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ActionNetError:
    """An error for an unknown ``name`` that lists the valid ones and suggests the closest."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ActionNetError(f"unknown {kind} '{name}'; valid: {', '.join(valid)}.{hint}")
