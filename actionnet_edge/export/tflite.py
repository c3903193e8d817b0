"""TFLite (LiteRT) ``.tflite``: fp32, fp16 and int8, run with ai-edge-litert's Interpreter.

Converters (``converter=`` option, ``--converter`` on the CLI):

* ``litert-torch`` (default): straight from PyTorch. fp32 as is; fp16 = the fp32 model with
  float16 weights and explicit DEQUANTIZE ops (ai-edge-quantizer's float-casting recipe, the
  usual TFLite "float16 quantization"); int8 = the converted PT2E model from litert-torch's
  quantizer (:func:`actionnet_edge.quant.quantize` with backend ``litert``): NOT enabled, the
  converter's NHWC pass fails on it here (see ``precisions``).
* ``onnx2tf``: from the ONNX export, fp32 only. It needs TensorFlow (~3 GB) and onnx2tf, which
  are not part of any extra here; without them it raises an error naming what to install.

Layout: NCHW input ``(1, T, 3, S, S)`` or NHWC ``(1, T, S, S, 3)`` (camera layout: the
transpose to the model's layout is inside the graph, 4-D only). metadata.json is embedded
in the flatbuffer's ``metadata`` list under the name ``actionnet_edge_metadata`` (read it
back with :func:`read_embedded_metadata`).

Runtime: ai-edge-litert's Interpreter (XNNPACK delegate on CPU). tflite-runtime is not used:
its last wheel (2.14, 2023) needs numpy<2 and cannot load the op versions written here.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ActionNetError
from .base import RuntimeUnavailable, Runner, missing_extra

log = logging.getLogger(__name__)

METADATA_NAME = "actionnet_edge_metadata"
CONVERTERS = ("litert-torch", "onnx2tf")


class TFLiteExporter:
    name = "tflite"
    suffix = ".tflite"
    extra = "tflite"
    #: int8 is not offered yet: litert-torch 0.10's NHWC layout pass fails on the converted PT2E
    #: graph ("Attempting to convert non-NHWC compatible node to NHWC: dequantize_per_tensor_..."),
    #: even with the temporal modules left in float. The int8 code path below is kept for it.
    precisions = ("fp32", "fp16")
    quant_backend = "litert"

    def check_available(self) -> None:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
            import litert_torch  # noqa: F401
        except ImportError as e:
            raise missing_extra(self.name, self.extra, e) from None

    def convert(self, model: nn.Module, example: torch.Tensor, precision: str, path: Path,
                *, layout: str = "NCHW", metadata: dict, converter: str = "litert-torch", **options) -> dict:
        from .edge import with_layout

        if converter not in CONVERTERS:
            from ..errors import unknown_name

            raise unknown_name("tflite converter", converter, CONVERTERS)
        t0 = time.perf_counter()
        net = with_layout(model, layout)
        x = example if layout == "NCHW" else example.permute(0, 1, 3, 4, 2).contiguous()
        if converter == "onnx2tf":
            blob = _onnx2tf(net, x, precision, layout)
        else:
            blob = _litert_torch(net, x, precision)
        t1 = time.perf_counter()
        blob = embed_metadata(blob, metadata)
        Path(path).write_bytes(blob)
        ops = op_counts(blob)
        dtypes = tensor_types(blob)
        log.info("tflite (%s): %s %s in %.1fs, %.2f MB; ops %s", converter, precision, layout, t1 - t0,
                 len(blob) / 1e6, dict(ops))
        return {
            "converter": converter,
            "ops": dict(sorted(ops.items())),
            "conv3d_ops": ops.get("CONV_3D", 0),
            "tensor_types": dtypes,
            "metadata_embedded": f"flatbuffer metadata '{METADATA_NAME}' (metadata.json bytes)",
            "runtime": "ai-edge-litert Interpreter",
            "tflite_runtime": "not supported: tflite-runtime 2.14 needs numpy<2 and older op versions",
            "stage_seconds": {"convert": round(t1 - t0, 2)},
        }

    def load(self, path: Path, *, layout: str = "NCHW") -> Runner:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeUnavailable(f"ai-edge-litert not installed ({e})") from None
        from .base import to_layout

        interp = Interpreter(model_path=str(path), num_threads=2)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]

        def run(clips: np.ndarray) -> np.ndarray:
            x = to_layout(np.asarray(clips, dtype=np.float32), layout)
            rows = []
            for c in x:  # static batch of 1
                interp.set_tensor(inp["index"], c[None])
                interp.invoke()
                rows.append(interp.get_tensor(out["index"]).reshape(1, -1).astype(np.float32))
            return np.concatenate(rows)

        return run


def _litert_torch(net: nn.Module, x: torch.Tensor, precision: str) -> bytes:
    import litert_torch

    if precision == "int8":
        from ..quant import _litert_patterns, make_quantizer
        from litert_torch.quantize.quant_config import QuantConfig

        # the model is already the converted PT2E graph; the config tells the converter to keep
        # its quantize/dequantize pairs as int8 tensors
        quant = QuantConfig(pt2e_quantizer=make_quantizer("litert", qat=False))
        with _litert_patterns("litert"):
            edge_model = litert_torch.convert(net, (x,), quant_config=quant)
    else:
        edge_model = litert_torch.convert(net.eval(), (x,))
    blob = edge_model.model_content()
    if precision == "fp16":
        blob = _float16_weights(blob)
    return blob


def _float16_weights(blob: bytes) -> bytes:
    """fp32 model -> float16 weights with explicit dequantize (ai-edge-quantizer float casting)."""
    try:
        from ai_edge_quantizer import quantizer, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName
    except ImportError as e:
        raise missing_extra("tflite (fp16)", "tflite", e) from None
    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    q = quantizer.Quantizer(bytearray(blob), rm.get_quantization_recipe())
    return bytes(q.quantize().quantized_model)


def _onnx2tf(net: nn.Module, x: torch.Tensor, precision: str, layout: str) -> bytes:
    """fp32 .tflite via ONNX -> onnx2tf (needs TensorFlow and onnx2tf, not in any extra)."""
    try:
        import onnx2tf  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError as e:
        raise ActionNetError(
            f"--converter onnx2tf needs onnx2tf and TensorFlow ({type(e).__name__}: {e}); install them with "
            "pip install 'onnx2tf==1.29.24' 'tensorflow==2.19.*' onnxsim (about 3 GB), or use the default "
            "--converter litert-torch") from None
    if precision != "fp32":
        raise ActionNetError("--converter onnx2tf supports fp32 only here (its int8 output does not run under "
                             "XNNPACK); use the default litert-torch converter for fp16/int8")
    if layout != "NHWC":
        raise ActionNetError("--converter onnx2tf writes NHWC input; pass --layout NHWC")
    import tempfile

    import onnx2tf

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        nchw = net.model if hasattr(net, "model") else net  # onnx2tf does its own NCHW->NHWC
        xin = x.permute(0, 1, 4, 2, 3).contiguous()
        torch.onnx.export(nchw.eval(), (xin,), str(onnx_path), input_names=["clips"], output_names=["logits"],
                          opset_version=17, dynamo=False)
        onnx2tf.convert(input_onnx_file_path=str(onnx_path), output_folder_path=tmp, non_verbose=True)
        found = sorted(Path(tmp).glob("*_float32.tflite"))
        if not found:
            raise RuntimeError("onnx2tf wrote no *_float32.tflite")
        return found[0].read_bytes()


# ----------------------------------------------------------------------------- flatbuffer helpers
def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def embed_metadata(blob: bytes, metadata: dict) -> bytes:
    """Add metadata.json to the flatbuffer's ``metadata`` list (replacing an older entry)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    for buf in model.buffers or []:  # large-model layout: data after the flatbuffer, by offset
        if getattr(buf, "offset", 0) > 1:
            buf.data = np.frombuffer(blob[buf.offset:buf.offset + buf.size], dtype=np.uint8)
            buf.offset, buf.size = 0, 0
    payload = json.dumps(metadata, sort_keys=True).encode()
    buf = schema.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [buf]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [entry]
    b = flatbuffers.Builder(len(blob) + len(payload) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _name(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def read_embedded_metadata(path: str | Path) -> dict:
    """metadata.json as embedded by :func:`embed_metadata`."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)
    for m in model.metadata or []:
        if _name(m.name) == METADATA_NAME:
            return json.loads(bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8)).decode())
    raise ActionNetError(f"{path} has no embedded {METADATA_NAME}")


def op_counts(blob: bytes) -> Counter:
    """Builtin op name -> count over all subgraphs."""
    schema = _schema()
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
    schema = _schema()
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    c: Counter = Counter(names.get(t.type, str(t.type)) for sg in model.subgraphs or [] for t in sg.tensors or [])
    return dict(sorted(c.items()))


EXPORTER = TFLiteExporter()
