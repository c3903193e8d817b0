"""ExecuTorch ``.pte`` with the XNNPACK delegate (fp32, and int8 from a converted PT2E model).

Labels and preprocessing are embedded as a constant method ``metadata_json`` returning the
UTF-8 bytes of metadata.json as a uint8 tensor (``method.execute([])[0]``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Exporter, MultiRunner, Runner, RuntimeUnavailable, as_inputs, to_layout
from .xnnpack_layout import fold_layout_copies

log = logging.getLogger(__name__)

#: ops outside the delegate that only reshape/select (no arithmetic) count as trivial
TRIVIAL_OPS = ("getitem", "view", "reshape", "squeeze", "unsqueeze", "alloc", "clone", "_to_dim_order_copy")


def _op_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    return str(name).split(":")[0].replace("<EdgeOpOverload: ", "").strip("<>")


@contextlib.contextmanager
def one_torch_thread():
    """Run ExecuTorch calls with torch's intra-op pool at one thread, then restore it.

    The Python binding moves tensors with torch ops; with torch's pool at 2+ threads its
    OpenMP workers keep spinning after each copy and take cores from XNNPACK's own
    threadpool (docs/ARCHITECTURE.md has the measurement).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ExecuTorchExporter(Exporter):
    name = "executorch"
    suffix = ".pte"
    extra = "executorch"
    precisions = ("fp32", "int8")
    stream_precisions = ("fp32", "int8")
    quant_backend = "xnnpack"
    toolchain = ("executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner")

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, input_names: list[str] | None = None,
                output_names: list[str] | None = None, **options) -> dict:
        """Inputs and outputs of a .pte are positional: ``input_names``/``output_names`` are the
        order recorded in metadata.json. ``fold_layout=False`` keeps the layout transposes that
        :mod:`.xnnpack_layout` otherwise removes (for A/B measurements)."""
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        from ..models.edge import with_layout

        t0 = time.perf_counter()
        net = with_layout(model if isinstance(model, torch.fx.GraphModule) else model.eval(), layout)
        x = example if layout == "NCHW" else example.permute(0, 1, 3, 4, 2).contiguous()
        if isinstance(model, torch.fx.GraphModule):  # a converted PT2E model is already a graph
            ep = torch.export.export(net, as_inputs(x), strict=False)
        else:
            ep = torch.export.export(net, as_inputs(x))
        t1 = time.perf_counter()
        blob = torch.frombuffer(bytearray(json.dumps(metadata, sort_keys=True).encode()), dtype=torch.uint8)
        fold = fold_layout_copies() if options.get("fold_layout", True) else contextlib.nullcontext()
        with fold as folding:
            edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                               constant_methods={"metadata_json": blob})
        folded = folding.folded if folding is not None else 0
        t2 = time.perf_counter()
        graph = edge.exported_program().graph_module.graph
        ops = Counter(_op_name(n.target) for n in graph.nodes if n.op == "call_function")
        delegates = ops.pop("executorch_call_delegate", 0)
        outside = dict(sorted(ops.items()))
        nontrivial = {k: v for k, v in outside.items() if not any(t in k for t in TRIVIAL_OPS)}
        prog = edge.to_executorch()
        Path(path).write_bytes(prog.buffer)
        t3 = time.perf_counter()
        log.info("executorch: export %.1fs, lower %.1fs, serialise %.1fs; %d delegated subgraph(s), %d layout "
                 "transposes folded into reshapes, ops outside the delegate: %s", t1 - t0, t2 - t1, t3 - t2,
                 delegates, folded, outside or "none")
        if nontrivial:
            log.warning("executorch: non-delegated compute ops (run by portable kernels): %s", nontrivial)
        return {
            "backend": "xnnpack",
            "delegated_subgraphs": delegates,
            "layout_transposes_folded": folded,
            "non_delegated_ops": outside,
            "non_delegated_compute_ops": nontrivial,
            "fully_delegated": not nontrivial,
            "metadata_embedded": "constant method 'metadata_json' (uint8 tensor of metadata.json)",
            "stage_seconds": {"export": round(t1 - t0, 2), "lower": round(t2 - t1, 2), "serialise": round(t3 - t2, 2)},
        }

    def load(self, path: Path, *, layout: str = "NCHW", threads: int | None = None, etdump: bool = False) -> Runner:
        program, method = self._method(path, threads, etdump)

        def run(clips: np.ndarray) -> np.ndarray:
            # the program has a static batch of 1: run clip by clip
            x = to_layout(np.asarray(clips, dtype=np.float32), layout)
            with one_torch_thread():
                outs = [method.execute([torch.from_numpy(np.ascontiguousarray(c[None]))])[0] for c in x]
            return torch.cat([o.reshape(1, -1) for o in outs]).numpy()

        run.write_etdump = program.write_etdump_result_to_file  # type: ignore[attr-defined]
        return run

    def load_multi(self, path: Path, *, input_names: list[str], output_names: list[str], threads: int | None = None,
                   etdump: bool = False) -> MultiRunner:
        program, method = self._method(path, threads, etdump)
        found = (method.metadata.num_inputs(), method.metadata.num_outputs())
        if found != (len(input_names), len(output_names)):
            raise RuntimeError(f"{Path(path).name} has {found[0]} inputs / {found[1]} outputs, expected "
                               f"{len(input_names)} / {len(output_names)}")

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            with one_torch_thread():
                outs = method.execute([torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs])
            return [np.array(o.numpy(), copy=True) for o in outs]  # copies: the method reuses its buffers

        run.write_etdump = program.write_etdump_result_to_file  # type: ignore[attr-defined]
        return run

    @staticmethod
    def _method(path: Path, threads: int | None = None, etdump: bool = False):
        """(program, its forward method); ``threads`` resizes XNNPACK's process-wide pool."""
        try:
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
        except ImportError as e:
            raise RuntimeUnavailable(f"executorch runtime not installed ({e})") from None
        if threads:
            portable_lib._unsafe_reset_threadpool(threads)
        program = Runtime.get().load_program(str(path), enable_etdump=etdump)
        return program, program.load_method("forward")


def read_embedded_metadata(path: Path) -> dict:
    """metadata.json as embedded in a .pte by :class:`ExecuTorchExporter`."""
    from executorch.runtime import Runtime

    blob = Runtime.get().load_program(str(path)).load_method("metadata_json").execute([])[0]
    return json.loads(bytes(blob.numpy().astype(np.uint8)).decode())


EXPORTER = ExecuTorchExporter()
