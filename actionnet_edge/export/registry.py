"""The registry of export targets: target name -> its module's ``EXPORTER``."""
from __future__ import annotations

import importlib
import logging

from ..constants import EXPORT_TARGETS
from ..errors import unknown_name
from .base import Exporter

log = logging.getLogger(__name__)

#: target name -> module of this package defining ``EXPORTER``, in display order
_TARGETS = {name: name for name in EXPORT_TARGETS}


def _load_registry() -> dict[str, Exporter]:
    out: dict[str, Exporter] = {}
    for name, module in _TARGETS.items():
        full = f"{__package__}.{module}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name == full:  # the target module itself is absent, not one of its imports
                log.debug("export target %s not available in this installation", name)
                continue
            raise
        exporter = mod.EXPORTER
        if exporter.name != name:
            raise RuntimeError(f"{full}.EXPORTER.name is {exporter.name!r}, expected {name!r}")
        out[name] = exporter
    return out


EXPORTERS: dict[str, Exporter] = _load_registry()


def list_targets() -> list[str]:
    """Names of the registered export targets."""
    return list(EXPORTERS)


def get_exporter(name: str) -> Exporter:
    """The exporter for ``name``; unknown names list the valid ones and suggest the closest."""
    if name not in EXPORTERS:
        raise unknown_name("export target", name, EXPORTERS)
    return EXPORTERS[name]
