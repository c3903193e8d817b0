"""CoreML ``.mlpackage`` (ML program): fp32 / fp16 (iOS 16+) and int8 (iOS 17+).

fp32/fp16: ``torch.export`` of the edge form -> ``run_decompositions({})`` -> ``ct.convert``
with ``compute_precision`` FLOAT32 or FLOAT16. int8: the converted PT2E model from ExecuTorch's
``CoreMLQuantizer`` (:func:`actionnet_edge.quant.quantize` with backend ``coreml``), converted
the same way with iOS 17 as the minimum target (int8 activations need it).

metadata.json is stored in the model's user-defined metadata under ``actionnet_edge`` (plus
``labels`` as a JSON list). ``MLModel.predict`` runs only on macOS: on other systems the
runner raises :class:`RuntimeUnavailable` and :meth:`CoreMLExporter.convert` reports what was
checked instead (the saved package reloads, input/output names and shapes, MIL op list).
"""
from __future__ import annotations

import json
import logging
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Exporter, MultiRunner, Runner, RuntimeUnavailable
from .metadata import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

METADATA_KEY = "actionnet_edge"


class CoreMLExporter(Exporter):
    name = "coreml"
    suffix = ".mlpackage"
    extra = "coreml"
    precisions = ("fp32", "fp16", "int8")
    quant_backend = "coreml"
    toolchain = ("coremltools",)

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, input_names: list[str] | None = None,
                output_names: list[str] | None = None, **options) -> dict:
        import coremltools as ct

        from ..models.edge import with_layout

        t0 = time.perf_counter()
        if isinstance(example, torch.Tensor):
            net = with_layout(model, layout)
            xs = (example if layout == "NCHW" else example.permute(0, 1, 3, 4, 2).contiguous(),)
            input_names, output_names = [INPUT_NAME], [OUTPUT_NAME]
        else:  # a multi-input step (streaming), NCHW
            net, xs = _DistinctOutputs(model), tuple(example)
        if not isinstance(net, torch.fx.GraphModule):
            net = net.eval()
        ep = torch.export.export(net, xs).run_decompositions({})
        t1 = time.perf_counter()
        target = ct.target.iOS17 if precision == "int8" else ct.target.iOS16
        mlmodel = ct.convert(
            ep, convert_to="mlprogram", minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            inputs=[ct.TensorType(name=n, shape=tuple(x.shape), dtype=np.float32) for n, x in zip(input_names, xs)],
            outputs=[ct.TensorType(name=n, dtype=np.float32) for n in output_names],
        )
        mlmodel.short_description = (f"ACTION-Net {metadata.get('model', {}).get('arch', '')} action recognition, "
                                     f"{precision}, {layout} input").strip()
        mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
        if "labels" in metadata:
            mlmodel.user_defined_metadata["labels"] = json.dumps(metadata["labels"])
        mlmodel.save(str(path))
        t2 = time.perf_counter()
        checked = inspect_package(path)
        names = ([i["name"] for i in checked["inputs"]], [o["name"] for o in checked["outputs"]])
        if names != (list(input_names), list(output_names)):
            raise RuntimeError(f"the saved {Path(path).name} has inputs/outputs {names}, expected "
                               f"{input_names} / {output_names}")
        log.info("coreml: %s %s (%s) in %.1fs; %d MIL ops: %s", precision, layout, checked["deployment_target"],
                 t2 - t0, sum(checked["mil_ops"].values()), checked["mil_ops"])
        return {
            "deployment_target": checked["deployment_target"],
            "linux_checks": checked,
            "metadata_embedded": f"user_defined_metadata['{METADATA_KEY}'] (metadata.json) and ['labels']",
            "stage_seconds": {"export": round(t1 - t0, 2), "convert": round(t2 - t1, 2)},
        }

    def load(self, path: Path, *, layout: str = "NCHW") -> Runner:
        from .base import to_layout

        mlmodel = _open_mlmodel(path)

        def run(clips: np.ndarray) -> np.ndarray:
            x = to_layout(np.asarray(clips, dtype=np.float32), layout)
            return np.concatenate([np.asarray(mlmodel.predict({INPUT_NAME: c[None]})[OUTPUT_NAME],
                                              dtype=np.float32).reshape(1, -1) for c in x])

        return run

    def load_multi(self, path: Path, *, input_names: list[str], output_names: list[str]) -> MultiRunner:
        mlmodel = _open_mlmodel(path)

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            out = mlmodel.predict({n: np.asarray(x, dtype=np.float32) for n, x in zip(input_names, inputs)})
            return [np.asarray(out[n], dtype=np.float32) for n in output_names]

        return run


class _DistinctOutputs(nn.Module):
    """Outputs that are an input passed through (a state shifted by one frame) get an ``+ 0``:
    coremltools cannot name one variable both as an input and as an output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor):
        ids = {id(x) for x in inputs}
        return tuple(y + 0.0 if id(y) in ids else y for y in self.model(*inputs))


def inspect_package(path: str | Path) -> dict:
    """What Linux can check of a saved .mlpackage: it reloads, its I/O, MIL ops and metadata."""
    import coremltools as ct

    try:
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as e:  # a package that does not reload is a failed export
        raise RuntimeError(f"the saved {path} does not reload: {e}") from e
    spec = mlmodel.get_spec()
    ops: Counter = Counter()
    if spec.WhichOneof("Type") == "mlProgram":
        for fn in spec.mlProgram.functions.values():
            for block in fn.block_specializations.values():
                _count_ops(block, ops)
    ios = {7: "iOS16", 8: "iOS17", 9: "iOS18"}.get(spec.specificationVersion, f"spec {spec.specificationVersion}")

    def io(features) -> list[dict]:
        out = []
        for f in features:
            arr = f.type.multiArrayType
            out.append({"name": f.name, "shape": [int(d) for d in arr.shape],
                        "dtype": {65568: "float32", 65552: "float16", 131104: "int32"}.get(arr.dataType, str(arr.dataType))})
        return out

    meta = dict(spec.description.metadata.userDefined)
    return {
        "reloads": True,
        "model_type": spec.WhichOneof("Type"),
        "deployment_target": ios,
        "inputs": io(spec.description.input),
        "outputs": io(spec.description.output),
        "mil_ops": dict(sorted(ops.items())),
        "metadata_keys": sorted(meta),
        "predict": "skipped: CoreML runtime needs macOS" if platform.system() != "Darwin" else "available",
    }


def _count_ops(block, ops: Counter) -> None:
    for op in block.operations:
        ops[op.type] += 1
        for inner in op.blocks:
            _count_ops(inner, ops)


def read_embedded_metadata(path: str | Path) -> dict:
    """metadata.json as embedded in a .mlpackage by :class:`CoreMLExporter`."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    return json.loads(spec.description.metadata.userDefined[METADATA_KEY])


def _open_mlmodel(path: Path):
    """The .mlpackage on the CPU in CoreML's own runtime; :class:`RuntimeUnavailable` off macOS."""
    if platform.system() != "Darwin":
        raise RuntimeUnavailable("CoreML runtime needs macOS")
    try:
        import coremltools as ct
    except ImportError as e:
        raise RuntimeUnavailable(f"coremltools not installed ({e})") from None
    return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)


EXPORTER = CoreMLExporter()
