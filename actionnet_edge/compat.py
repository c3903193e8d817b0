"""Workarounds of third-party limitations, all in one place, each with the version it was written
against and what it works around. ``tests/test_compat.py`` checks that each limitation is still
there, so the day upstream fixes one the test fails and the workaround can go.

* litert-torch 0.10.0 (with torch 2.14): its quantizer hands plain pattern *functions* to
  ``torch.export``, which only takes modules (:func:`litert_patterns_as_modules`).
* litert-torch 0.10.0: its add/mul/cat annotators find ops by ``source_fn_stack``, which only
  strict export records (:func:`litert_annotate`); and the LiteRT converter needs one scale
  across RESHAPE/TRANSPOSE/MEAN, which QAT's observers do not keep (:func:`align_same_scale_ranges`);
  its layout pass fails on a dequantize shared by several users (:func:`litert_one_dequantize_per_user`).
* executorch 1.5.1: the XNNPACK backend has no option to add a pass after its own layout passes
  (``XNNPACKPassManager``'s default list is fixed); :func:`xnnpack_extra_passes` appends one.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import operator
from typing import Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

#: versions these workarounds were written and tested against (.ci/constraints.txt)
UPSTREAM = {"litert-torch": "0.10.0", "executorch": "1.5.1", "torch": "2.14.1"}


# ----------------------------------------------------------------------------- litert-torch
class _Fn(nn.Module):
    """A plain function as a module (torch.export only takes modules)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


@contextlib.contextmanager
def litert_patterns_as_modules() -> Iterator[None]:
    """Within this context litert-torch's quantizer patterns reach torch.export wrapped in modules."""
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    original = utils._get_aten_graph_module_for_pattern

    def wrapped(pattern, *args, **kwargs):
        return original(pattern if isinstance(pattern, nn.Module) else _Fn(pattern), *args, **kwargs)

    utils._get_aten_graph_module_for_pattern = wrapped
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


#: ops litert-torch's annotators look up by ``source_fn_stack`` (recorded by strict export only)
_SOURCES = {torch.ops.aten.add.Tensor: operator.add, torch.ops.aten.mul.Tensor: operator.mul,
            torch.ops.aten.cat.default: torch.cat}


def record_sources(model: torch.fx.GraphModule) -> None:
    """Give add/mul/cat nodes of a non-strict graph the ``source_fn_stack`` strict export records."""
    for node in model.graph.nodes:
        fn = _SOURCES.get(node.target) if node.op == "call_function" else None
        if fn is not None and not node.meta.get("source_fn_stack"):
            node.meta["source_fn_stack"] = [(node.name, fn)]


def litert_annotate(annotate):
    """litert's ``annotate`` with two fixes of its annotation on non-strict graphs.

    * add, mul and cat get the sources its annotators look for (:func:`record_sources`);
      otherwise they stay float ops between DEQUANTIZE and QUANTIZE in the .tflite. Strict
      export is no way out: it tags the dynamic batch's integer arithmetic as adds too.
    * an add or mul reading a sigmoid shares the sigmoid's fixed int8 range: the converter puts
      (N, C, 1, 1) masks through a RESHAPE on that edge, and a RESHAPE must keep its scale.
    """
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    def run(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        record_sources(model)
        model = annotate(model)
        for node in model.graph.nodes:
            ann = node.meta.get("quantization_annotation")
            if ann is None or node.target not in (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor):
                continue
            for inp in list(ann.input_qspec_map):
                src = inp.meta.get("quantization_annotation")
                if inp.target == torch.ops.aten.sigmoid.default and src is not None and src.output_qspec is not None:
                    ann.input_qspec_map[inp] = SharedQuantizationSpec(inp)
        return model

    return run


#: ops LiteRT runs in int8 with their input's scale: those that only move values, and the mean
_SAME_SCALE_OPS = {"view", "reshape", "_unsafe_view", "permute", "transpose", "flatten", "unsqueeze", "squeeze",
                   "slice", "mean"}


def _is_qdq(node: torch.fx.Node, name: str) -> bool:
    return node.op == "call_function" and str(node.target) == f"quantized_decomposed.{name}.default"


def _is_same_scale(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and getattr(node.target, "_opname", None) in _SAME_SCALE_OPS
            and isinstance(node.args[0], torch.fx.Node))


def align_same_scale_ranges(gm: torch.fx.GraphModule) -> int:
    """Give each quantize that follows dequantize -> same-scale ops the dequantize's parameters.

    After QAT the far side's fake-quant observed rounded values and drifts a little; litert-torch
    0.10's converter folds that requantize into a layout TRANSPOSE (under its greedy layout
    partition, which every full model gets) and then rejects the TRANSPOSE's two scales
    ("quantization parameters violate the same scale constraint"; tests/test_compat.py).
    Returns how many changed.
    """
    changed = 0
    for node in gm.graph.nodes:
        if not _is_qdq(node, "quantize_per_tensor"):
            continue
        src = node.args[0]
        while _is_same_scale(src):
            src = src.args[0]
        if src is node.args[0] or not _is_qdq(src, "dequantize_per_tensor") or src.args[1:] == node.args[1:]:
            continue
        if src.args[3:] != node.args[3:]:  # another int type or range: leave it
            continue
        for n in (node, *(u for u in node.users if _is_qdq(u, "dequantize_per_tensor"))):
            n.args = (n.args[0], *src.args[1:])
        changed += 1
    gm.recompile()
    return changed


def litert_one_dequantize_per_user(net: nn.Module) -> nn.Module:
    """A copy of the PT2E graph(s) in ``net`` where each dequantize node has one user.

    torchao's convert shares a dequantize between users it did not annotate; litert-torch
    0.10's layout pass, when it puts a transpose after such a node for one user, drops the
    node's shape and then fails on the next ("Attempting to convert non-NHWC compatible node
    to NHWC: dequantize_per_tensor_..."). Same numbers.
    """
    net = copy.deepcopy(net)
    for gm in net.modules():
        if isinstance(gm, torch.fx.GraphModule):
            for node in list(gm.graph.nodes):
                if node.op == "call_function" and str(node.target).startswith("quantized_decomposed.dequantize"):
                    for user in list(node.users)[1:]:
                        with gm.graph.inserting_after(node):
                            user.replace_input_with(node, gm.graph.node_copy(node))
            gm.recompile()
    return net.eval()


# ----------------------------------------------------------------------------- executorch
@contextlib.contextmanager
def xnnpack_extra_passes(*extra: type) -> Iterator[bool]:
    """Within this context XNNPACK lowering runs the ``extra`` passes after its own default passes.

    Yields False (and changes nothing) when this ExecuTorch has no ``XNNPACKPassManager``.
    """
    import executorch.backends.xnnpack.xnnpack_preprocess as preprocess

    base = getattr(preprocess, "XNNPACKPassManager", None)
    if base is None:
        log.warning("executorch: no XNNPACKPassManager in this ExecuTorch version; extra passes not run")
        yield False
        return

    class PassManager(base):
        def __init__(self, exported_program, passes=None) -> None:
            super().__init__(exported_program, passes)
            if not passes:  # the default pipeline; a caller's own list is left as given
                self.passes = [*self.passes, *extra]

    preprocess.XNNPACKPassManager = PassManager
    try:
        yield True
    finally:
        preprocess.XNNPACKPassManager = base
