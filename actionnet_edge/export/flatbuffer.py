"""The ``.tflite`` flatbuffer as a mutable object: read, write, op codes and counts.

Shared by :mod:`.tflite` (I/O types, embedded metadata) and :mod:`.tflite_layout` (the layout
fold); both import from here and never from each other.
"""
from __future__ import annotations

from collections import Counter

import numpy as np


def load_schema():
    """ai-edge-litert's generated flatbuffer schema (imported lazily: the toolchain is optional)."""
    from ai_edge_litert import schema_py_generated as schema

    return schema


def unpack(blob: bytes):
    """The flatbuffer as a mutable ``ModelT`` (buffers stored after it by offset read in)."""
    model = load_schema().ModelT.InitFromPackedBuf(bytearray(blob), 0)
    for buf in model.buffers or []:  # large-model layout: data after the flatbuffer, by offset
        if getattr(buf, "offset", 0) > 1:
            buf.data = np.frombuffer(blob[buf.offset:buf.offset + buf.size], dtype=np.uint8)
            buf.offset, buf.size = 0, 0
    return model


def pack(model, size_hint: int) -> bytes:
    """``model`` serialised as a ``.tflite`` (file identifier TFL3)."""
    import flatbuffers

    b = flatbuffers.Builder(size_hint + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def text(v) -> str:
    """A flatbuffer string field (bytes) as str."""
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def opcode_index(model, builtin: int) -> int:
    """The index of ``builtin``'s operator code in ``model``, added if it has none."""
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
            return i
    c = load_schema().OperatorCodeT()
    c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(c)
    return len(model.operatorCodes) - 1


def op_counts(blob: bytes) -> Counter:
    """Builtin op name -> count over all subgraphs."""
    schema = load_schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    counts: Counter = Counter()
    for sg in model.subgraphs or []:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            counts[names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")] += 1
    return counts


def tensor_types(blob: bytes) -> dict[str, int]:
    """Tensor type name -> count (e.g. how many INT8 / FLOAT16 tensors)."""
    schema = load_schema()
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    c: Counter = Counter(names.get(t.type, str(t.type)) for sg in model.subgraphs or [] for t in sg.tensors or [])
    return dict(sorted(c.items()))
