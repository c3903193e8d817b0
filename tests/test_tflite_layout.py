"""The .tflite layout fold (export/tflite_layout.py): fewer transposes, the same numbers.

One ACTION block between two convolutions (as in MobileNetV2) is converted by litert-torch
with and without the fold; LiteRT runs both.
"""
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from actionnet_edge.export.tflite import EXPORTER  # noqa: E402
from actionnet_edge.export.tflite_layout import fold_transposes  # noqa: E402
from _layout_block import C, HW, T, layout_block  # noqa: E402

pytestmark = pytest.mark.slow  # whole-model conversions


def _convert(kind: str, precision: str, tmp: Path) -> dict:
    model = layout_block(kind)
    x = torch.randn(1, T, C, HW, HW)
    if precision == "int8":
        from actionnet_edge.quant import quantize

        model = quantize(model, "litert", calib=[torch.randn(2, T, C, HW, HW) for _ in range(4)], example=x)
    runs = {}
    for fold in (False, True):
        path = tmp / f"{kind}-{precision}-{fold}.tflite"
        info = EXPORTER.convert(model, x, precision, path, metadata={}, fold_layout=fold)
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x.numpy())
        it.invoke()
        runs[fold] = {"out": it.get_tensor(it.get_output_details()[0]["index"]).copy(), "path": path,
                      "transposes": info["ops"].get("TRANSPOSE", 0), "folded": info["layout_transposes_folded"]}
    with torch.no_grad():
        runs["ref"] = model(x).numpy()
    return runs


@pytest.fixture(scope="module")
def converted():
    with tempfile.TemporaryDirectory() as tmp:
        yield {(k, p): _convert(k, p, Path(tmp)) for k, p in (("action", "fp32"), ("action", "int8"),
                                                              ("causal", "fp32"), ("tsm", "int8"))}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fold_removes_the_action_block_transposes(converted, precision):
    runs = converted["action", precision]
    assert runs[False]["folded"] == 0
    # litert-torch writes 7 around the module, and the block's NCHW input and output; left: those
    # two and STE's two (frames to channels and back), real data moves
    assert runs[True]["transposes"] == 4
    assert runs[False]["transposes"] - runs[True]["transposes"] == runs[True]["folded"] == 5


@pytest.mark.parametrize("kind,precision", [("action", "fp32"), ("action", "int8"), ("causal", "fp32"),
                                            ("tsm", "int8")])
def test_fold_keeps_the_numbers(converted, kind, precision):
    runs = converted[kind, precision]
    before, after = runs[False]["out"], runs[True]["out"]
    if precision == "int8":  # the same integer kernels on the same integers
        np.testing.assert_array_equal(after, before)
    else:
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
    tol = 1e-5 if precision == "fp32" else 0.1 * float(np.abs(runs["ref"]).max())
    np.testing.assert_allclose(after, runs["ref"], rtol=0, atol=tol)


def test_fold_never_adds_transposes_and_is_idempotent(converted):
    for key in converted:
        runs = converted[key]
        assert runs[True]["transposes"] <= runs[False]["transposes"]
        blob = runs[True]["path"].read_bytes()
        assert fold_transposes(blob) == (blob, 0)
