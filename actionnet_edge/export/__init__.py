"""Export to edge runtimes: a registry of targets behind one base class (see :mod:`.base`).

``EXPORTERS`` maps a target name to its exporter; it feeds the CLI's ``--target`` choices
and the tests' parametrisation. A target module that is not present in this installation
is skipped; a target whose *toolchain* is missing is still listed and says which extra to
install when used (:meth:`Exporter.check_available`).
"""
from __future__ import annotations

from .api import ExportResult, export_model
from .base import LAYOUTS, PRECISIONS, Exporter, RuntimeUnavailable
from .registry import EXPORTERS, get_exporter, list_targets

__all__ = ["EXPORTERS", "Exporter", "RuntimeUnavailable", "PRECISIONS", "LAYOUTS", "list_targets",
           "get_exporter", "export_model", "ExportResult"]
