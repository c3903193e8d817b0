"""ONNX (opset 17+) checked with ONNX Runtime; fp32 and fp16 (weights and compute; float32 in/out).

Labels and preprocessing are embedded in the model's ``metadata_props`` (key
``actionnet_edge.metadata``: metadata.json; ``labels``: JSON list), readable with
``onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map``.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from collections import Counter
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
    precisions = ("fp32", "fp16")
    toolchain = ("onnx", "onnxruntime", "onnxscript")

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, input_names: list[str] | None = None,
                output_names: list[str] | None = None, **options) -> dict:
        import onnx

        t0 = time.perf_counter()
        logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # one INFO line per initializer otherwise
        model = with_layout(model.eval(), layout)
        if isinstance(example, torch.Tensor):  # one clip batch, dynamic batch size
            args = (torch.from_numpy(to_layout(example.numpy(), layout)),)
            dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},)
        else:  # a multi-input step (static batch of 1)
            args, dynamic = as_inputs(example), None
        if precision == "fp16":
            model = _Half(model)
        prog = torch.onnx.export(model, args, dynamo=True, opset_version=OPSET,
                                 input_names=input_names or [metadata.get("input", {}).get("name", INPUT_NAME)],
                                 output_names=output_names or [metadata.get("output", {}).get("name", OUTPUT_NAME)],
                                 dynamic_shapes=dynamic, optimize=True, verbose=False)
        proto = prog.model_proto
        del proto.metadata_props[:]
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

        def run(clips: np.ndarray) -> np.ndarray:
            x = to_layout(np.asarray(clips, dtype=np.float32), layout)
            return np.asarray(sess.run(None, {inp.name: x})[0], dtype=np.float32)

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
    if shared_pool:
        opts.use_per_session_threads = False
    elif threads:
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class _Half(nn.Module):
    """fp16 weights and compute with a float32 input and output (a Cast at each end)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


EXPORTER = OnnxExporter()
