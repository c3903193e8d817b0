"""Layout transposes a ``.tflite`` does not need, removed from its graph after conversion.

:func:`fold_transposes` turns TRANSPOSE/RESHAPE chains that leave the bytes in place into one
RESHAPE, points reductions at an existing NHWC copy and moves elementwise ops to NHWC; whether the
bytes match is computed by pushing an index array through the chain, and each tensor keeps its
type and quantization. docs/ARCHITECTURE.md ("Layout folds") has the design and what it pays.
"""
from __future__ import annotations

import copy
import logging

import numpy as np

from .flatbuffer import load_schema, opcode_index, pack, unpack

log = logging.getLogger(__name__)

_ELEMENTWISE = ("ADD", "MUL", "SUB", "DIV", "MAXIMUM", "MINIMUM", "LOGISTIC", "TANH", "RELU", "RELU6",
                "HARD_SWISH")
_REDUCE = ("MEAN", "SUM")


def _same_quant(a, b) -> bool:
    qa, qb = a.quantization, b.quantization

    def key(q):
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        return (tuple(np.asarray(q.scale).tolist()), tuple(np.asarray(q.zeroPoint).tolist()),
                int(q.quantizedDimension or 0))

    return a.type == b.type and key(qa) == key(qb)


class _Graph:
    """One subgraph with its producer and consumer maps, and the rewrites."""

    def __init__(self, model, sg) -> None:
        self.model, self.sg, self.s = model, sg, load_schema()
        self.names = {v: k for k, v in vars(self.s.BuiltinOperator).items() if not k.startswith("_")}
        self.keep = {int(i) for i in sg.outputs}
        self.index()

    # -------------------------------------------------------------------------- reading
    def index(self) -> None:
        self.producer: dict[int, object] = {}
        self.consumers: dict[int, list] = {}
        for op in self.sg.operators:
            for t in op.outputs:
                self.producer[int(t)] = op
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(int(t), []).append(op)

    def kind(self, op) -> str:
        c = self.model.operatorCodes[op.opcodeIndex]
        return self.names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM")

    def tensor(self, i: int):
        return self.sg.tensors[int(i)]

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor(i).shape)

    def is_const(self, i: int) -> bool:
        t = self.tensor(i)
        data = self.model.buffers[t.buffer].data if t.buffer else None
        return data is not None and len(data) > 0

    def const(self, i: int) -> np.ndarray | None:
        """An int32/int64 constant's values (a perm, a shape, axes)."""
        if not self.is_const(i):
            return None
        t, buf = self.tensor(i), self.model.buffers[self.tensor(i).buffer]
        dtype = {self.s.TensorType.INT32: np.int32, self.s.TensorType.INT64: np.int64}.get(t.type)
        return None if dtype is None else np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=dtype)

    def perm(self, op) -> tuple[int, ...] | None:
        p = self.const(op.inputs[1]) if self.kind(op) == "TRANSPOSE" else None
        return None if p is None else tuple(int(v) for v in p)

    def apply(self, op, idx: np.ndarray) -> np.ndarray:
        """``idx`` pushed through a TRANSPOSE or RESHAPE."""
        if self.kind(op) == "TRANSPOSE":
            return np.transpose(idx, self.perm(op))
        return idx.reshape(self.shape(op.outputs[0]))

    def layout_op(self, op) -> bool:
        return self.kind(op) == "RESHAPE" or (self.kind(op) == "TRANSPOSE" and self.perm(op) is not None)

    # -------------------------------------------------------------------------- writing
    def new_tensor(self, like: int, shape) -> int:
        t = copy.copy(self.tensor(like))
        t.shape = np.asarray(shape, dtype=np.int32)
        t.shapeSignature = None
        t.buffer, t.name = 0, f"t{len(self.sg.tensors)}"
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def int32_const(self, values) -> int:
        s = self.s
        buf = s.BufferT()
        buf.data = np.frombuffer(np.asarray(values, dtype=np.int32).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buf)
        t = s.TensorT()
        t.shape, t.type, t.buffer = np.asarray([len(values)], dtype=np.int32), s.TensorType.INT32, len(self.model.buffers) - 1
        t.name = f"t{len(self.sg.tensors)}"
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def reshape(self, src: int, dst: int):
        s = self.s
        op = s.OperatorT()
        op.opcodeIndex = opcode_index(self.model, s.BuiltinOperator.RESHAPE)
        op.inputs, op.outputs = [int(src), self.int32_const(self.shape(dst))], [int(dst)]
        op.builtinOptionsType = s.BuiltinOptions.ReshapeOptions
        op.builtinOptions = s.ReshapeOptionsT()
        op.builtinOptions.newShape = list(self.shape(dst))
        return op

    def replace(self, old, new_ops: list) -> None:
        ops = self.sg.operators
        i = next(k for k, o in enumerate(ops) if o is old)
        ops[i:i + 1] = new_ops
        self.index()

    # -------------------------------------------------------------------------- rewrites
    def fold_chain(self, op) -> bool:
        """The end of a TRANSPOSE/RESHAPE chain whose far end has the same bytes -> one RESHAPE (none
        if the shapes are the same too)."""
        out = int(op.outputs[0])
        chain, src = [op], int(op.inputs[0])
        while src not in self.keep and src in self.producer and self.layout_op(self.producer[src]):
            chain.insert(0, self.producer[src])
            src = int(chain[0].inputs[0])
        for start in range(len(chain)):  # the furthest tensor first
            a = int(chain[start].inputs[0])
            if chain[start:] == [op] and self.kind(op) == "RESHAPE" and self.shape(a) != self.shape(out):
                return False  # already one reshape
            if not _same_quant(self.tensor(a), self.tensor(out)):
                continue
            idx = np.arange(int(np.prod(self.shape(a)))).reshape(self.shape(a))
            for o in chain[start:]:
                idx = self.apply(o, idx)
            if not np.array_equal(idx.reshape(-1), np.arange(idx.size)):
                continue
            if self.shape(a) == self.shape(out) and out not in self.keep:  # the chain is a no-op: read a
                for c in self.consumers.get(out, []):
                    c.inputs = [a if int(i) == out else int(i) for i in c.inputs]
                self.replace(op, [])
            else:
                self.replace(op, [self.reshape(a, out)])
            return True
        return False

    def in_layout(self, z: int, p: tuple[int, ...], made: list, depth: int = 0) -> int | None:
        """A tensor holding ``transpose(z, p)`` without moving bytes (new ops appended to ``made``), or None."""
        shape = self.shape(z)
        if len(shape) != len(p) or depth > 4:
            return None
        if int(np.prod(shape)) == 1:  # broadcasts the same in any layout
            return z
        target = tuple(shape[k] for k in p)
        idx = np.transpose(np.arange(int(np.prod(shape))).reshape(shape), p)
        if np.array_equal(idx.reshape(-1), np.arange(idx.size)):  # size-1 axes only move
            if target == shape:
                return z
            dst = self.new_tensor(z, target)
            made.append(self.reshape(z, dst))
            return dst
        if self.is_const(z):
            return None  # its data would have to be transposed
        for c in self.consumers.get(z, []):
            if self.kind(c) == "TRANSPOSE" and self.perm(c) == tuple(p) and _same_quant(self.tensor(z), self.tensor(c.outputs[0])):
                return int(c.outputs[0])
        prod = self.producer.get(z)
        if prod is None or z in self.keep or self.kind(prod) not in _ELEMENTWISE or len(self.consumers.get(z, [])) != 1:
            return None
        ins = [self.in_layout(int(i), p, made, depth + 1) for i in prod.inputs]
        if any(i is None for i in ins):
            return None
        dst = self.new_tensor(z, target)
        e = copy.copy(prod)
        e.inputs, e.outputs = ins, [dst]
        made.append(e)
        return dst

    def elementwise_to_nhwc(self, op) -> bool:
        """An elementwise op whose one consumer is a TRANSPOSE runs in the transpose's layout."""
        out = int(op.outputs[0])
        users = self.consumers.get(out, [])
        if out in self.keep or len(users) != 1 or self.kind(users[0]) != "TRANSPOSE" or self.perm(users[0]) is None:
            return False
        t = users[0]
        dst = int(t.outputs[0])
        if not _same_quant(self.tensor(out), self.tensor(dst)):
            return False
        made: list = []
        ins = [self.in_layout(int(i), self.perm(t), made) for i in op.inputs]
        if any(i is None for i in ins):
            return False
        e = copy.copy(op)
        e.inputs, e.outputs = ins, [dst]
        self.replace(t, made + [e])
        return True

    def reduce_other_copy(self, op) -> bool:
        """MEAN/SUM of a tensor that has a transposed copy: reduce the copy, the axes renumbered."""
        x = int(op.inputs[0])
        axes = self.const(op.inputs[1])
        opts = op.builtinOptions
        if axes is None or (opts is not None and opts.keepDims):
            return False
        rank = len(self.shape(x))
        for c in self.consumers.get(x, []):
            p = self.perm(c) if self.kind(c) == "TRANSPOSE" else None
            if p is None or not _same_quant(self.tensor(x), self.tensor(c.outputs[0])):
                continue
            where = {a: j for j, a in enumerate(p)}  # x's axis a is the copy's axis where[a]
            red = sorted(where[int(a) % rank] for a in axes)
            kept = [where[a] for a in range(rank) if a not in {int(v) % rank for v in axes}]
            if kept != sorted(kept):
                continue
            r = copy.copy(op)
            r.inputs = [int(c.outputs[0]), self.int32_const(red)]
            self.replace(op, [r])
            return True
        return False

    def dead_code(self) -> None:
        """Drop the ops of the kinds these rewrites leave behind once nothing reads their outputs."""
        kinds = {"TRANSPOSE", "RESHAPE", *_ELEMENTWISE, *_REDUCE}
        while True:
            live = [op for op in self.sg.operators if self.kind(op) not in kinds
                    or any(int(t) in self.keep or self.consumers.get(int(t)) for t in op.outputs)]
            if len(live) == len(self.sg.operators):
                return
            self.sg.operators = live
            self.index()

    def topological(self) -> None:
        """The ops in an order that runs, as close to the current one as possible."""
        ready = {int(i) for i in self.sg.inputs}
        produced = set(self.producer)
        pending, order = list(self.sg.operators), []
        while pending:
            for k, op in enumerate(pending):
                if all(int(i) in ready or int(i) not in produced for i in op.inputs):
                    order.append(pending.pop(k))
                    ready.update(int(t) for t in op.outputs)
                    break
            else:
                raise RuntimeError("tflite layout fold: the rewritten graph has a cycle")
        self.sg.operators = order

    def count(self, kind: str) -> int:
        return sum(self.kind(op) == kind for op in self.sg.operators)


def fold_transposes(blob: bytes) -> tuple[bytes, int]:
    """``blob`` with the layout transposes it does not need removed, and how many went."""
    model = unpack(blob)
    folded = 0
    for sg in model.subgraphs or []:
        if any(t.shapeSignature is not None and (np.asarray(t.shapeSignature) < 0).any() for t in sg.tensors or []):
            continue  # the index arrays need static shapes
        g = _Graph(model, sg)
        before = g.count("TRANSPOSE")
        for _ in range(8):  # to a fixed point; each pass only removes ops on the way
            changed = False
            for op in list(sg.operators):
                k = g.kind(op)
                if op in sg.operators and k in _ELEMENTWISE:
                    changed |= g.elementwise_to_nhwc(op)
            for op in list(sg.operators):
                if op in sg.operators and g.kind(op) in _REDUCE:
                    changed |= g.reduce_other_copy(op)
            g.dead_code()
            for op in list(sg.operators):
                if op in sg.operators and g.layout_op(op):
                    changed |= g.fold_chain(op)
            g.dead_code()
            if not changed:
                break
        g.topological()
        folded += before - g.count("TRANSPOSE")
    if not folded:
        return blob, 0
    log.info("tflite layout fold: %d transposes removed", folded)
    return pack(model, len(blob)), folded
