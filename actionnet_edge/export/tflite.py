"""TFLite (LiteRT) ``.tflite``: fp32, fp16 and int8, run with ai-edge-litert's Interpreter.

Converters (``converter=`` option, ``--converter`` on the CLI):

* ``litert-torch`` (default): straight from PyTorch. fp32 as is; fp16 = the fp32 model with
  float16 weights and explicit DEQUANTIZE ops (ai-edge-quantizer's float-casting recipe, the
  usual TFLite "float16 quantization"); int8 = the converted PT2E model from litert-torch's
  quantizer (:func:`actionnet_edge.quant.quantize` with backend ``litert``: PTQ calibrated on
  clips, or the QAT checkpoint's graph and ranges) lowered in litert-torch's static mode: int8
  weights (per channel) and activations in every conv, the temporal modules included, the
  classifier float, float32 input/output behind QUANTIZE/DEQUANTIZE ops.
* ``onnx2tf``: from the ONNX export, fp32 only. It needs TensorFlow (~3 GB) and onnx2tf, which
  are not part of any extra here; without them it raises an error naming what to install.

Layout: NCHW input ``(1, T, 3, S, S)`` or NHWC ``(1, T, S, S, 3)`` (camera layout: the
transpose to the model's layout is inside the graph, 4-D only). metadata.json is embedded
in the flatbuffer's ``metadata`` list under the name ``actionnet_edge_metadata`` (read it
back with :func:`read_embedded_metadata`).

Layout: after conversion :func:`.tflite_layout.fold_transposes` removes the TRANSPOSEs that
leave the bytes in place (``fold_layout=False`` keeps them); the report counts them in
``layout_transposes_folded``.

Runtime: ai-edge-litert's Interpreter (XNNPACK delegate on CPU). tflite-runtime is not used:
its last wheel (2.14, 2023) needs numpy<2 and cannot load the op versions written here.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..compat import litert_one_dequantize_per_user
from ..errors import ActionNetError
from .base import Exporter, MultiRunner, Runner, RuntimeUnavailable, missing_extra
from .flatbuffer import load_schema, op_counts, opcode_index, pack, tensor_types, text, unpack
from .metadata import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

METADATA_NAME = "actionnet_edge_metadata"
CONVERTERS = ("litert-torch", "onnx2tf")


class TFLiteExporter(Exporter):
    name = "tflite"
    suffix = ".tflite"
    extra = "tflite"
    precisions = ("fp32", "fp16", "int8")
    quant_backend = "litert"
    stream_state_layout = "NHWC"  # LiteRT's convolutions are NHWC: the state needs no transposes
    stream_precisions = ("fp32", "fp16", "int8")  # fp16: float16 weights, float32 compute in LiteRT's CPU
    toolchain = ("ai_edge_litert.interpreter", "litert_torch")

    def convert(self, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], precision: str,
                path: Path, *, layout: str = "NCHW", metadata: dict, converter: str = "litert-torch",
                input_names: list[str] | None = None, output_names: list[str] | None = None, **options) -> dict:
        """A tuple ``example`` (multi-input step) becomes a signature with ``input_names`` /
        ``output_names`` (litert-torch; int8 and fp16 too). ``fold_layout=False`` keeps the layout
        transposes that :mod:`.tflite_layout` removes by default."""
        from ..models.edge import with_layout
        from .tflite_layout import fold_transposes

        if converter not in CONVERTERS:
            from ..errors import unknown_name

            raise unknown_name("tflite converter", converter, CONVERTERS)
        t0 = time.perf_counter()
        net = with_layout(model, layout)
        x = example if layout == "NCHW" else example.permute(0, 1, 3, 4, 2).contiguous()
        if not isinstance(x, torch.Tensor):  # a multi-input step (streaming): a named signature
            if converter != "litert-torch":
                raise ActionNetError("a multi-input (streaming) .tflite is made by the litert-torch converter")
            blob = _litert_torch_named(net, tuple(x), input_names, output_names, precision)
        elif converter == "onnx2tf":
            blob = _onnx2tf(net, x, precision, layout)
        else:
            blob = _litert_torch(net, x, precision)
        folded = 0
        if options.get("fold_layout", True):
            blob, folded = fold_transposes(blob)
        t1 = time.perf_counter()
        blob = embed_metadata(blob, metadata, short_names=True)
        Path(path).write_bytes(blob)
        ops = op_counts(blob)
        dtypes = tensor_types(blob)
        log.info("tflite (%s): %s %s in %.1fs, %.2f MB, %d layout transposes folded; ops %s", converter,
                 precision, layout, t1 - t0, len(blob) / 1e6, folded, dict(ops))
        return {
            "converter": converter,
            "ops": dict(sorted(ops.items())),
            "conv3d_ops": ops.get("CONV_3D", 0),
            "layout_transposes_folded": folded,
            "tensor_types": dtypes,
            "metadata_embedded": f"flatbuffer metadata '{METADATA_NAME}' (metadata.json bytes)",
            "runtime": "ai-edge-litert Interpreter",
            "tflite_runtime": "not supported: tflite-runtime 2.14 needs numpy<2 and older op versions",
            "stage_seconds": {"convert": round(t1 - t0, 2)},
        }

    def load(self, path: Path, *, layout: str = "NCHW", threads: int = 2) -> Runner:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeUnavailable(f"ai-edge-litert not installed ({e})") from None
        from .base import to_layout

        interp = Interpreter(model_path=str(path), num_threads=threads)
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

    def load_multi(self, path: Path, *, input_names: list[str], output_names: list[str],
                   threads: int = 2) -> MultiRunner:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise RuntimeUnavailable(f"ai-edge-litert not installed ({e})") from None
        runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner()
        found = (set(runner.get_input_details()), set(runner.get_output_details()))
        if found != (set(input_names), set(output_names)):
            raise RuntimeError(f"{Path(path).name}: its inputs/outputs are not the ones metadata.json names")

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            out = runner(**{n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(input_names, inputs)})
            return [np.asarray(out[n], dtype=np.float32) for n in output_names]

        return run


class _Named(nn.Module):
    """Named inputs (keyword arguments) and outputs (a dict): the .tflite signature's names."""

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str]) -> None:
        super().__init__()
        self.model, self.input_names, self.output_names = model, list(input_names), list(output_names)

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(*(inputs[n] for n in self.input_names))
        return dict(zip(self.output_names, out if isinstance(out, (tuple, list)) else (out,)))


def _litert_torch_named(model: nn.Module, example: tuple, input_names: list[str], output_names: list[str],
                        precision: str = "fp32") -> bytes:
    """The multi-input step as a named signature; int8 keeps float32 inputs/outputs (``_float_io``)."""
    import contextlib
    import sys

    import litert_torch

    quant, model = _static_int8(model) if precision == "int8" else (None, model)
    net = _Named(model.eval(), input_names, output_names).eval()
    with contextlib.redirect_stdout(sys.stderr):  # litert-torch prints its progress on stdout
        blob = litert_torch.convert(net, (), sample_kwargs=dict(zip(input_names, example)),
                                    quant_config=quant).model_content()
    return _float_io(blob) if precision == "int8" else _float16_weights(blob) if precision == "fp16" else blob


def _static_int8(net: nn.Module):
    """(litert-torch's static int8 config, the converted PT2E graph ready for it): the graph's
    quantize/dequantize pairs become int8 tensors and kernels."""
    from litert_torch.quantize.quant_config import QuantConfig

    from ..quant import make_quantizer

    return QuantConfig(pt2e_quantizer=make_quantizer("litert", qat=False)), litert_one_dequantize_per_user(net)


def _litert_torch(net: nn.Module, x: torch.Tensor, precision: str) -> bytes:
    import contextlib
    import sys

    import litert_torch

    quant = None
    if precision == "int8":
        quant, net = _static_int8(net)
    with contextlib.redirect_stdout(sys.stderr):  # litert-torch prints its progress on stdout (breaks --json)
        # named like metadata.json's input and output: signature serving_default, clips -> logits
        named = _Named(net.eval(), [INPUT_NAME], [OUTPUT_NAME]).eval()
        blob = litert_torch.convert(named, (), sample_kwargs={INPUT_NAME: x}, quant_config=quant).model_content()
    if precision == "int8":
        return _float_io(blob)
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


def _float_io(blob: bytes) -> bytes:
    """int8 graph inputs/outputs -> float32 ones, through a QUANTIZE / DEQUANTIZE op.

    litert-torch's static mode folds the first quantize (and a last dequantize) into the
    graph's I/O tensors; metadata.json promises float32 clips in and logits out.
    """
    schema = load_schema()
    model = unpack(blob)

    changed = 0
    for sig in model.signatureDefs or [None]:
        sg = model.subgraphs[sig.subgraphIndex if sig else 0]
        for ends, maps, is_input in ((sg.inputs, sig.inputs if sig else [], True),
                                     (sg.outputs, sig.outputs if sig else [], False)):
            for k, old in enumerate(ends):
                q = sg.tensors[old]
                if q.type != schema.TensorType.INT8:
                    continue
                f = schema.TensorT()
                f.name, f.shape, f.shapeSignature, f.buffer = q.name, q.shape, q.shapeSignature, q.buffer
                f.type = schema.TensorType.FLOAT32
                q.name = bytes(q.name or b"") + b"_int8"
                sg.tensors.append(f)
                new = ends[k] = len(sg.tensors) - 1
                for m in maps:
                    if m.tensorIndex == old:
                        m.tensorIndex = new
                op = schema.OperatorT()
                if is_input:
                    op.opcodeIndex, op.inputs, op.outputs = opcode_index(model, schema.BuiltinOperator.QUANTIZE), [new], [old]
                    sg.operators.insert(0, op)
                else:
                    op.opcodeIndex, op.inputs, op.outputs = opcode_index(model, schema.BuiltinOperator.DEQUANTIZE), [old], [new]
                    sg.operators.append(op)
                changed += 1
    return pack(model, len(blob)) if changed else blob


def embed_metadata(blob: bytes, metadata: dict, *, short_names: bool = False) -> bytes:
    """Add metadata.json to the flatbuffer's ``metadata`` list (replacing an older entry).

    With ``short_names`` the graph's inner tensors are renamed ``t<index>``: litert-torch names
    each after its full module path (a sizeable part of an int8 file) and no runtime reads them
    (signatures and the graph's own inputs and outputs keep their names).
    """
    schema = load_schema()
    model = unpack(blob)
    if short_names:
        for sg in model.subgraphs or []:
            ends = {int(i) for i in list(sg.inputs) + list(sg.outputs)}
            for i, t in enumerate(sg.tensors or []):
                if i not in ends:
                    t.name = f"t{i}"
    payload = json.dumps(metadata, sort_keys=True).encode()
    buf = schema.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [buf]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if text(m.name) != METADATA_NAME] + [entry]
    return pack(model, len(blob) + len(payload))


def read_embedded_metadata(path: str | Path) -> dict:
    """metadata.json as embedded by :func:`embed_metadata`."""
    schema = load_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)
    for m in model.metadata or []:
        if text(m.name) == METADATA_NAME:
            return json.loads(bytes(np.asarray(model.buffers[m.buffer].data, dtype=np.uint8)).decode())
    raise ActionNetError(f"{path} has no embedded {METADATA_NAME}")


EXPORTER = TFLiteExporter()
