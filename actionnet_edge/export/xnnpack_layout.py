"""Layout copies the XNNPACK delegate does not need, removed from its graph before it is serialised.

:class:`FoldLayoutCopies` runs after ExecuTorch's own XNNPACK passes (added through
:func:`actionnet_edge.compat.xnnpack_extra_passes`) and turns each chain of layout transposes whose
bytes need not move into one reshape; whether the bytes match is computed by pushing an index
tensor through the chain. docs/ARCHITECTURE.md ("Layout folds") has the design and what it pays.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Iterator

import torch

from ..compat import xnnpack_extra_passes

log = logging.getLogger(__name__)

_NHWC = "XNN_NHWC_NODE"  # ChannelsLastTaggedReshapePass.XNN_NHWC_NODE


def _ops():
    from executorch.exir.dialects._ops import ops as exir_ops

    a = exir_ops.edge.aten
    qd = exir_ops.edge.quantized_decomposed
    return {
        "to_copy": a._to_copy.default, "view": a.view_copy.default, "permute": a.permute_copy.default,
        "q": qd.quantize_per_tensor.default, "dq": qd.dequantize_per_tensor.default,
        "elementwise": {a.add.Tensor, a.mul.Tensor, a.sub.Tensor, a.sigmoid.default, a.relu.default,
                        a.hardtanh.default, a.clamp.default},
    }


def _shape(node) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(int(d) for d in val.shape) if isinstance(val, torch.Tensor) else None


def _is_nhwc(node: torch.fx.Node) -> bool:
    shape = _shape(node)
    if shape is None or len(shape) != 4:
        return False
    if _NHWC in node.meta:  # the pass tags ops, inputs and constants (a constant to serialise NHWC)
        return bool(node.meta[_NHWC])
    val = node.meta["val"]
    return node.op == "placeholder" and val.is_contiguous(memory_format=torch.channels_last) and not val.is_contiguous()


def _physical(t: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """A logical (NCHW-indexed) tensor's elements in memory order."""
    return (t.permute(0, 2, 3, 1) if nhwc else t).reshape(-1)


class FoldLayoutCopies:
    """The rewrite (see the module docstring) on one delegate graph; ``folded`` counts the
    transposes removed."""

    def __init__(self, graph: torch.fx.Graph) -> None:
        self.graph, self.op = graph, _ops()
        self.folded = 0

    # -- the int8 graph's q -> dq links -------------------------------------------------
    def _producer(self, arg):
        """(producing op, q params or None) of an op's tensor input, through a q -> dq pair."""
        if isinstance(arg, torch.fx.Node) and arg.target == self.op["dq"]:
            q = arg.args[0]
            if isinstance(q, torch.fx.Node) and q.target == self.op["q"] and tuple(q.args[1:]) == tuple(arg.args[1:]):
                return q.args[0], tuple(arg.args[1:])
            return None, None
        return arg, None

    def _out_q(self, node):
        """The q params of node's output (its one user a q), or None in a float graph."""
        (u, *more) = node.users or [None]
        return tuple(u.args[1:]) if u is not None and not more and u.target == self.op["q"] else None

    # -- chains of layout ops -----------------------------------------------------------
    def _reshapes_bytes(self, start, start_nhwc: bool, path, end_nhwc: bool) -> bool:
        """True when ``path`` (layout ops after ``start``) leaves the bytes in memory order as they are."""
        shape = _shape(start)
        if shape is None or (start_nhwc and len(shape) != 4):
            return False
        n = math.prod(shape)
        t = torch.arange(n)
        t = t.reshape(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2) if start_nhwc else t.reshape(shape)
        for op in path:
            if op.target == self.op["view"]:
                t = t.reshape([int(d) for d in op.args[1]])
            elif op.target == self.op["permute"]:
                t = t.permute([int(d) for d in op.args[1]])
            # a _to_copy changes the layout, not the values
            if tuple(t.shape) != _shape(op):
                return False
        if end_nhwc and t.dim() != 4:
            return False
        return torch.equal(_physical(t, end_nhwc), torch.arange(n))

    def _fold_source(self, copy):
        """The input to read ``copy``'s output from with one reshape, or None."""
        out_q = self._out_q(copy)
        return self._source(copy.args[0], [copy], _is_nhwc(copy), out_q)

    def _source(self, arg, path, end_nhwc: bool, out_q):
        """Walk back from ``arg`` (the input of ``path``, layout ops ending in the layout
        ``end_nhwc``) through layout ops to the furthest tensor whose bytes already are the
        path's output; the node to reshape it from, or None."""
        layout = (self.op["to_copy"], self.op["view"], self.op["permute"])
        path, best, params = list(path), None, {out_q}
        while True:
            prev, q = self._producer(arg)
            if prev is None:
                break
            params.add(q)
            if len(params) > 1:  # a float link beside an int8 one, or two scales: not one tensor
                break
            if prev.op in ("call_function", "placeholder") and self._reshapes_bytes(prev, _is_nhwc(prev), path, end_nhwc):
                best = arg
            if prev.op != "call_function" or prev.target not in layout:
                break
            path.insert(0, prev)
            arg = prev.args[0]
        return best

    # -- elementwise ops between two layout borders ---------------------------------------
    def _readers(self, node) -> list | None:
        """The ops reading ``node``'s output (through its q -> dq pairs), or None when another
        kind of node reads it."""
        out = []
        for u in node.users:
            if u.target == self.op["q"]:
                for d in u.users:
                    if d.target != self.op["dq"] or tuple(d.args[1:]) != tuple(u.args[1:]):
                        return None
                    out.extend(d.users)
            elif u.op == "call_function":
                out.append(u)
            else:
                return None
        return out

    def _flippable(self, node) -> bool:
        shape = _shape(node)
        return (node.op == "call_function" and node.target in self.op["elementwise"] and shape is not None
                and len(shape) == 4 and not _is_nhwc(node))

    def _nhwc_plan(self, e):
        """How each 4-D input of elementwise ``e`` reaches NHWC without a transpose: a list of
        (input, "flip", op, its plan) / (input, "view", source), or None when one cannot."""
        plan = []
        for a in e.args:
            if not isinstance(a, torch.fx.Node):
                continue
            shape = _shape(a)
            if shape is None or len(shape) not in (0, 4):  # 1-3-D operands broadcast differently in NHWC
                return None
            if len(shape) == 0:
                continue
            prev, q = self._producer(a)
            if prev is None:
                return None
            if _is_nhwc(prev):
                plan.append((a, "keep"))
                continue
            if self._flippable(prev) and self._readers(prev) == [e]:
                sub = self._nhwc_plan(prev)
                if sub is not None:
                    plan.append((a, "flip", prev, sub))
                    continue
            source = self._source(a, [], True, q)
            if source is None:
                return None
            plan.append((a, "view", source))
        return plan

    def _tag_nhwc(self, node) -> None:
        node.meta[_NHWC] = True
        for u in node.users:
            if u.target == self.op["q"]:
                u.meta[_NHWC] = True
                for d in u.users:
                    d.meta[_NHWC] = True

    def _apply(self, e, plan) -> None:
        for a, how, *rest in plan:
            if how == "flip":
                self._apply(*rest)
            elif how == "view":
                (source,) = rest
                with self.graph.inserting_before(e):
                    view = self.graph.call_function(self.op["view"], (source, list(_shape(a))))
                view.meta = {"val": a.meta["val"], _NHWC: True}
                new = view
                if a.target == self.op["dq"]:  # int8: the reshape keeps the tensor's scale
                    q = a.args[0]
                    with self.graph.inserting_before(e):
                        q2 = self.graph.call_function(q.target, (view, *q.args[1:]))
                        new = self.graph.call_function(a.target, (q2, *a.args[1:]))
                    q2.meta, new.meta = {**q.meta, _NHWC: True}, {**a.meta, _NHWC: True}
                e.replace_input_with(a, new)
        self._tag_nhwc(e)

    def flip_elementwise(self) -> None:
        """Run elementwise ops NHWC when only transposes to NHWC read them and their inputs get
        there by reshapes; the transposes after them go."""
        for node in list(self.graph.nodes):
            if node.op != "call_function" or node.target != self.op["to_copy"] or not _is_nhwc(node):
                continue
            e, _ = self._producer(node.args[0])
            if e is None or not self._flippable(e):
                continue
            readers = self._readers(e)
            if not readers or any(r.target != self.op["to_copy"] or not _is_nhwc(r) for r in readers):
                continue
            if any(self._out_q(r) != self._out_q(e) for r in readers):  # a transpose keeps the scale
                continue
            plan = self._nhwc_plan(e)
            if plan is None:
                continue
            self._apply(e, plan)
            for copy in readers:
                self._bypass(copy, e)
                self.folded += 1

    def _bypass(self, copy, e) -> None:
        """Drop a transpose of ``e`` that has become an NHWC -> NHWC no-op."""
        if copy.args[0] is e:
            copy.replace_all_uses_with(e)
            return
        (qe,) = e.users  # int8: e -> q -> dq -> copy -> q -> dq...
        for q in list(copy.users):
            for d in list(q.users):
                d.args = (qe, *d.args[1:])

    def _to_view(self, node, source) -> None:
        """``node`` becomes ``view_copy(source, node's shape)``, its layout tag and users kept."""
        node.target, node.args, node.kwargs = self.op["view"], (source, list(_shape(node))), {}
        if not node.meta.get(_NHWC, False):
            node.meta.pop(_NHWC, None)  # the view visitor permutes the shape when the tag is present at all
        self.folded += 1

    def fold_copies(self) -> None:
        """Every transpose whose output bytes some tensor before it already holds becomes a reshape."""
        for node in list(self.graph.nodes):
            if node.op == "call_function" and node.target == self.op["to_copy"]:
                source = self._fold_source(node)
                if source is not None:
                    self._to_view(node, source)

    def run(self) -> int:
        self.fold_copies()
        self.flip_elementwise()
        self.graph.eliminate_dead_code()
        return self.folded


def _pass_class():
    """An XNNPACKPass running :class:`FoldLayoutCopies` (built lazily: executorch is optional)."""
    from executorch.backends.xnnpack._passes.xnnpack_pass import XNNPACKPass
    from executorch.exir.pass_base import PassResult

    class FoldLayoutCopiesPass(XNNPACKPass):
        def call(self, graph_module: torch.fx.GraphModule) -> PassResult:
            folded = FoldLayoutCopies(graph_module.graph).run()
            graph_module.recompile()
            FoldLayoutCopiesPass.folded += folded
            return PassResult(graph_module, folded > 0)

    FoldLayoutCopiesPass.folded = 0
    return FoldLayoutCopiesPass


@contextlib.contextmanager
def fold_layout_copies() -> Iterator[type | None]:
    """Within this context, XNNPACK lowering runs :class:`FoldLayoutCopies` after its own passes.
    Yields the pass class (its ``folded`` counts the transposes removed), or None if it cannot run."""
    fold = _pass_class()
    with xnnpack_extra_passes(fold) as added:
        yield fold if added else None
