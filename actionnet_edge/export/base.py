"""The exporter protocol: one small interface per target format.

Every target lives in its own module ``actionnet_edge/export/<name>.py`` that defines a
module-level ``EXPORTER``, an instance of a subclass of :class:`Exporter`; the registry in
:mod:`actionnet_edge.export` collects them. Toolchains are imported lazily inside the
methods so that importing this package never needs an optional backend.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..constants import LAYOUTS, PRECISIONS  # noqa: F401  (re-exported by the package)

#: a runner: (N, T, 3, S, S) float32 NCHW clips -> (N, K) float32 logits
Runner = Callable[[np.ndarray], np.ndarray]
#: a multi-input runner: the inputs in ``input_names`` order -> the outputs in ``output_names`` order
MultiRunner = Callable[[list[np.ndarray]], list[np.ndarray]]


class RuntimeUnavailable(Exception):
    """The artifact's runtime cannot run here (e.g. CoreML on Linux); ``str`` = reason."""


class Exporter:
    """One target format; each target module subclasses this and sets ``EXPORTER``."""

    name: str  # "executorch" | "tflite" | "coreml" | "onnx"
    suffix: str  # ".pte" | ".tflite" | ".mlpackage" | ".onnx"
    extra: str  # the pip extra that installs its toolchain, e.g. "executorch"
    precisions: tuple[str, ...] = PRECISIONS  # subset of PRECISIONS
    quant_backend: str | None = None  # PT2E quantizer for int8: "xnnpack" | "litert" | "coreml" | None
    stream_state_layout: str = "NCHW"  # the streaming step's 4-D state: "NHWC" where the runtime's convolutions are
    stream_precisions: tuple[str, ...] = ("fp32",)  # precisions of the streaming step (export --streaming)
    toolchain: tuple[str, ...] = ()  # modules ``convert`` needs, checked by check_available

    def check_available(self) -> None:
        """Raise ActionNetError("... pip install 'actionnet-edge[EXTRA]'") if the toolchain is missing."""
        for module in self.toolchain:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise missing_extra(self.name, self.extra, e) from None

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, input_names: list[str] | None = None,
                output_names: list[str] | None = None, **options) -> dict:
        """Write the artifact to ``path`` (a temp path chosen by the caller).

        ``model`` is the edge form (float, eval) for fp32/fp16, or the converted PT2E int8
        model for int8. ``example`` is a (1, T, 3, S, S) clip, or a tuple of inputs for a
        multi-input model (e.g. the streaming step: frame + state), which is then exported
        with ``input_names`` / ``output_names`` (NCHW only). Returns info for report.json
        (e.g. delegated / non-delegated ops, op list).
        """
        raise NotImplementedError

    def load(self, path: Path, *, layout: str = "NCHW") -> Runner:
        """A runner in the artifact's OWN runtime: (N, T, 3, S, S) float32 NCHW clips -> (N, K)
        logits (the runner transposes to NHWC itself when the artifact takes NHWC).
        Raises :class:`RuntimeUnavailable`."""
        raise NotImplementedError

    def load_multi(self, path: Path, *, input_names: list[str], output_names: list[str]) -> MultiRunner:
        """A runner in the artifact's own runtime for a multi-input artifact: float32 arrays in
        ``input_names`` order -> arrays in ``output_names`` order (static batch of 1).
        Raises :class:`RuntimeUnavailable`."""
        raise NotImplementedError


def missing_extra(target: str, extra: str, err: Exception) -> "ActionNetError":
    """The one-line error for a missing optional toolchain, naming the extra to install."""
    from ..errors import ActionNetError

    return ActionNetError(
        f"the {target} exporter needs its toolchain ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
        f"install it with: pip install 'actionnet-edge[{extra}]'"
    )


def as_inputs(example) -> tuple[torch.Tensor, ...]:
    """``convert``'s example as a tuple of inputs (a single clip -> a 1-tuple)."""
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def to_layout(clips: np.ndarray, layout: str) -> np.ndarray:
    """(N, T, 3, S, S) NCHW clips -> the artifact's layout ((N, T, S, S, 3) for NHWC)."""
    if layout == "NHWC":
        return np.ascontiguousarray(clips.transpose(0, 1, 3, 4, 2))
    return np.ascontiguousarray(clips)
