"""ONNX (opset 18) checked with ONNX Runtime; fp32, fp16 (weights and compute; float32 in/out) and int8.

int8 is the converted PT2E graph of ExecuTorch's XNNPACK quantizer (the same int8 model the
``.pte`` lowers: per-channel int8 weights, per-tensor int8 activations), exported as a QDQ model
(QuantizeLinear / DequantizeLinear around each float op) that ONNX Runtime, onnxruntime-web
included, fuses into its int8 kernels; float32 in and out, static batch of 1.

Labels and preprocessing are embedded in the model's ``metadata_props`` (key
``actionnet_edge.metadata``: metadata.json; ``labels``: JSON list), readable with
``onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map``.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Exporter, MultiRunner, Runner, RuntimeUnavailable, as_inputs, to_layout
from .metadata import INPUT_NAME, OUTPUT_NAME
from ..models.edge import with_layout

log = logging.getLogger(__name__)

OPSET = 18


class OnnxExporter(Exporter):
    name = "onnx"
    suffix = ".onnx"
    extra = "onnx"
    precisions = ("fp32", "fp16", "int8")
    stream_precisions = ("fp32", "int8")
    quant_backend = "xnnpack"  # QDQ from ExecuTorch's XNNPACK quantizer: the int8 model the .pte runs
    toolchain = ("onnx", "onnxruntime", "onnxscript")

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, input_names: list[str] | None = None,
                output_names: list[str] | None = None, **options) -> dict:
        import onnx

        t0 = time.perf_counter()
        logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one INFO line per initializer otherwise
        graph = isinstance(model, torch.fx.GraphModule)  # int8: a converted PT2E model, static batch of 1
        model = with_layout(model if graph else model.eval(), layout)
        if isinstance(example, torch.Tensor):  # one clip batch, dynamic batch size (float)
            args = (torch.from_numpy(to_layout(example.numpy(), layout)),)
            dynamic = None if graph else ({0: torch.export.Dim("batch", min=1, max=1024)},)
        else:  # a multi-input step (static batch of 1)
            args, dynamic = as_inputs(example), None
        if precision == "fp16":
            model = _Half(model)
        prog = torch.onnx.export(model, args, dynamo=True, opset_version=OPSET,
                                 input_names=input_names or [metadata.get("input", {}).get("name", INPUT_NAME)],
                                 output_names=output_names or [metadata.get("output", {}).get("name", OUTPUT_NAME)],
                                 dynamic_shapes=dynamic, optimize=True, verbose=False)
        proto = prog.model_proto
        _drop_debug_info(proto)
        _unshare_constant_dq(proto.graph)
        for k, v in {"actionnet_edge.metadata": json.dumps(metadata, sort_keys=True),
                     "labels": json.dumps(metadata.get("labels", []))}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
        ops = Counter(n.op_type for n in proto.graph.node)
        log.info("onnx: exported in %.1fs, opset %d, %d nodes", time.perf_counter() - t0, OPSET, sum(ops.values()))
        return {"opset": OPSET, "ops": dict(sorted(ops.items())), "metadata_embedded": "metadata_props"}

    def load(self, path: Path, *, layout: str = "NCHW", threads: int | None = None,
             shared_pool: bool = False) -> Runner:
        sess = _session(path, threads, shared_pool)
        inp = sess.get_inputs()[0]
        one = inp.shape[0] == 1  # an int8 model has a static batch of 1: run clip by clip

        def run(clips: np.ndarray) -> np.ndarray:
            x = to_layout(np.asarray(clips, dtype=np.float32), layout)
            outs = [sess.run(None, {inp.name: c})[0] for c in (np.split(x, len(x)) if one else [x])]
            return np.asarray(np.concatenate(outs), dtype=np.float32)

        return run

    def load_multi(self, path: Path, *, input_names: list[str], output_names: list[str], threads: int | None = None,
                   shared_pool: bool = False) -> MultiRunner:
        sess = _session(path, threads, shared_pool)
        found = ([i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()])
        if found != (list(input_names), list(output_names)):
            raise RuntimeError(f"{Path(path).name}: its inputs/outputs are not the ones metadata.json names")

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(input_names, inputs)}
            return [np.asarray(o, dtype=np.float32) for o in sess.run(output_names, feed)]

        return run


def _session(path: Path, threads: int | None, shared_pool: bool):
    """A CPU session: ``threads`` intra-op threads (None: ORT's default), or with ``shared_pool`` the
    process's global pool (set beforehand with onnxruntime's set_global_thread_pool_sizes)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RuntimeUnavailable(f"onnxruntime not installed ({e})") from None
    opts = ort.SessionOptions()
    # x86 without VNNI: ORT's U8S8 int8 kernels sum pairs of products in int16 and saturate; the
    # U8U8 path it offers for this is exact (no effect elsewhere; docs/ARCHITECTURE.md gives the figures)
    opts.add_session_config_entry("session.x64quantprecision", "1")
    if shared_pool:
        opts.use_per_session_threads = False
    elif threads:
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _drop_debug_info(proto) -> None:
    """Remove the exporter's metadata: per node its Python stack trace and FX node (paths of the
    exporting machine; 77% of an int8 step's bytes), and the model-level entries (ours replace them)."""
    del proto.metadata_props[:]
    for graph in (proto.graph, *proto.functions):
        for node in graph.node:
            del node.metadata_props[:]


def _unshare_constant_dq(graph) -> None:
    """Give every DequantizeLinear of a constant (a weight) one consumer and its own weight and zero
    point. The exporter shares equal constants (ACTION's 1/C channel-mean weights, the zero points),
    and ORT's exact U8U8 path (``session.x64quantprecision``) names each int8 constant it converts
    after the original: a shared one is converted twice and the session fails to load."""
    import onnx

    inits = {i.name: i for i in graph.initializer}
    users = defaultdict(list)
    for node in graph.node:
        for k, name in enumerate(node.input):
            users[name].append((node, k))
    taken: Counter = Counter()

    def own(name: str) -> str:  # the first user keeps a constant, later ones get a copy
        taken[name] += 1
        if taken[name] == 1:
            return name
        copy_ = onnx.TensorProto()
        copy_.CopyFrom(inits[name])
        copy_.name = f"{name}__{taken[name]}"
        graph.initializer.append(copy_)
        return copy_.name

    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        for i, (user, k) in enumerate(users[node.output[0]][1:], start=1):
            clone = onnx.NodeProto()
            clone.CopyFrom(node)
            clone.name, clone.output[0] = f"{node.name}__{i}", f"{node.output[0]}__{i}"
            user.input[k] = clone.output[0]
            nodes.append(clone)
    for node in nodes:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            node.input[0] = own(node.input[0])
            if len(node.input) > 2 and node.input[2] in inits:
                node.input[2] = own(node.input[2])
    del graph.node[:]
    graph.node.extend(nodes)


class _Half(nn.Module):
    """fp16 weights and compute with a float32 input and output (a Cast at each end)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()
        self.eval()  # a new module trains by default; torch.onnx warns on exporting one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


EXPORTER = OnnxExporter()
