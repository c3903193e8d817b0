"""A run's recipe as it ran: resolved before training, compared and extended on resume."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..errors import ActionNetError
from .config import Recipe, parse_recipe


#: keys a resumed run does not compare: its length (extended only on purpose, see resumed_recipe)
#: and where its data is (a folder may move between machines)
_RESUME_FREE = ("train.epochs", "data.root")


def _flat(recipe: Recipe) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, section in recipe.to_dict().items() for k, v in section.items()}


def recipe_differences(run: Recipe, given: Recipe) -> list[str]:
    """``key: <run's value> in the run, <given> given`` for each key (but epochs and data root) that differs."""
    a, b = _flat(run), _flat(given)
    return [f"{k}: {a.get(k)!r} in the run, {b.get(k)!r} given" for k in sorted(set(a) | set(b))
            if k not in _RESUME_FREE and a.get(k) != b.get(k)]


def resumed_recipe(stored: Any, where: str, given: Recipe | None = None, epochs: int | None = None) -> Recipe:
    """The recipe of the run being resumed: the one stored in its checkpoint (``where``).

    ``given`` (a recipe file with ``--set`` applied), when passed, must agree with it; ``epochs``
    (an explicit ``--set train.epochs``) is the one change allowed, and only upwards: it extends
    the run, its schedule (fractions of the run) stretched to the new length.
    """
    if not isinstance(stored, dict):
        raise ActionNetError(f"{where} stores no recipe to resume with; start a new run with another --output")
    run = parse_recipe(stored, source=f"{where} (the run's recipe)")
    if given is not None:
        diffs = recipe_differences(run, given)
        if epochs is None and given.train.epochs != run.train.epochs:
            diffs.insert(0, f"train.epochs: {run.train.epochs} in the run, {given.train.epochs} given")
        if diffs:
            raise ActionNetError(
                f"--resume continues the run of {where} with its own recipe, but the recipe given differs "
                f"({'; '.join(diffs)}): resume without RECIPE and --set, or start a new run with another --output")
    if epochs is not None and epochs != run.train.epochs:
        if epochs < run.train.epochs:
            raise ActionNetError(f"--set train.epochs={epochs}: a resumed run can only be extended beyond its "
                                 f"{run.train.epochs} epochs")
        run = dataclasses.replace(run, train=dataclasses.replace(run.train, epochs=epochs))
    return run


def resolved_recipe(recipe: Recipe, data_root: str | Path | None = None) -> Recipe:
    """``recipe`` as it runs: ``data.root`` from ``data_root`` if given (an absolute path), and
    ``data.dataset`` the reader that folder gets (``synthetic`` with a root is a set that
    ``data synth --out`` wrote in the Jester layout, read as ``jester``)."""
    d = recipe.data
    root = data_root if data_root is not None else d.root
    root = os.path.abspath(os.path.expanduser(str(root))) if root is not None else None
    dataset = "jester" if d.dataset == "synthetic" and root is not None else d.dataset
    return dataclasses.replace(recipe, data=dataclasses.replace(d, dataset=dataset, root=root))


def check_same_run(recipe: Recipe, stored: Any, where: str) -> None:
    """Resuming the run of checkpoint ``where`` (recipe ``stored``) with ``recipe``: an error naming
    every difference, but a longer ``train.epochs``. A checkpoint without a recipe is not checked."""
    if not isinstance(stored, dict):
        return
    before = parse_recipe(stored, source=f"{where} (the run's recipe)")
    diffs = recipe_differences(before, recipe)
    if recipe.train.epochs < before.train.epochs:
        diffs.insert(0, f"train.epochs: {before.train.epochs} in the run, {recipe.train.epochs} given (only "
                        "extending is allowed)")
    if diffs:
        raise ActionNetError(f"resuming {where} with another recipe ({'; '.join(diffs)}): resume with the run's "
                             "own recipe, or start a new run in another folder")
