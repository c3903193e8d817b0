"""Export to edge runtimes: a registry of targets behind one protocol (see :mod:`.base`).

``EXPORTERS`` maps a target name to its exporter; it feeds the CLI's ``--target`` choices
and the tests' parametrisation. A target module that is not present in this installation
is skipped; a target whose *toolchain* is missing is still listed and says which extra to
install when used (:meth:`Exporter.check_available`).
"""
from __future__ import annotations

import importlib
import logging

from ..errors import unknown_name
from .base import LAYOUTS, PRECISIONS, Exporter, RuntimeUnavailable

log = logging.getLogger(__name__)

#: target name -> module of this package defining ``EXPORTER``, in display order
_TARGETS = {"executorch": "executorch", "tflite": "tflite", "coreml": "coreml", "onnx": "onnx"}


def _load_registry() -> dict[str, Exporter]:
    out: dict[str, Exporter] = {}
    for name, module in _TARGETS.items():
        full = f"{__name__}.{module}"
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


def __getattr__(name: str):  # lazy: the orchestration imports torch.export machinery
    if name in ("export_model", "ExportResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["EXPORTERS", "Exporter", "RuntimeUnavailable", "PRECISIONS", "LAYOUTS", "list_targets",
           "get_exporter", "export_model", "ExportResult"]
