"""TFLite (LiteRT) exporter: fp16 with NHWC input run in ai-edge-litert, embedded metadata, op
list, and the optional onnx2tf path's error. (fp32 NCHW parity is covered for every target
by test_export.py.) One conversion per module."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actionnet_edge.errors import ActionNetError
from actionnet_edge.models import create_model

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from actionnet_edge.export.edge import to_edge  # noqa: E402
from actionnet_edge.export.tflite import EXPORTER, read_embedded_metadata  # noqa: E402

T, S, K = 4, 64, 5
META = {"labels": [f"g{i}" for i in range(K)], "segments": T, "size": S, "layout": "NHWC"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("mobilenet_v2", "action", T, K, 0.25, dropout=0.0).eval()
    with torch.no_grad():
        torch.nn.init.normal_(m.fc.weight, 0, 1.0)
    return m


@pytest.fixture(scope="module")
def fp16_nhwc(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite") / "m_fp16.tflite"
    info = EXPORTER.convert(to_edge(model), torch.zeros(1, T, 3, S, S), "fp16", path, layout="NHWC", metadata=META)
    return path, info


def test_fp16_nhwc_parity(model, fp16_nhwc):
    path, info = fp16_nhwc
    run = EXPORTER.load(path, layout="NHWC")  # takes NCHW clips, transposes itself
    x = torch.randn(3, T, 3, S, S)
    with torch.no_grad():
        ref = model(x).numpy()
    got = run(x.numpy())
    assert got.shape == (3, K)
    cos = (got * ref).sum() / np.linalg.norm(got) / np.linalg.norm(ref)
    assert cos > 0.999 and (got.argmax(1) == ref.argmax(1)).all()
    assert np.abs(got - ref).max() < 0.05 * max(1.0, np.abs(ref).max())


def test_fp16_artifact_content(fp16_nhwc):
    path, info = fp16_nhwc
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    assert list(interp.get_input_details()[0]["shape"]) == [1, T, S, S, 3]  # NHWC camera layout
    assert list(interp.get_output_details()[0]["shape"]) == [1, K]
    assert info["tensor_types"].get("FLOAT16", 0) > 10 and info["ops"].get("DEQUANTIZE", 0) > 10
    assert info["conv3d_ops"] == 0 and "CONV_2D" in info["ops"]
    assert read_embedded_metadata(path) == META


def test_unknown_converter(model, tmp_path):
    with pytest.raises(ActionNetError, match="unknown tflite converter 'onx2tf'.*Did you mean 'onnx2tf'"):
        EXPORTER.convert(to_edge(model), torch.zeros(1, T, 3, S, S), "fp32", tmp_path / "x.tflite", metadata={},
                         converter="onx2tf")
    assert not (tmp_path / "x.tflite").exists()


def test_onnx2tf_names_what_to_install(model, tmp_path):
    try:
        import onnx2tf  # noqa: F401
        import tensorflow  # noqa: F401
        pytest.skip("onnx2tf and TensorFlow are installed")
    except ImportError:
        pass
    with pytest.raises(ActionNetError, match="onnx2tf needs onnx2tf and TensorFlow.*pip install"):
        EXPORTER.convert(to_edge(model), torch.zeros(1, T, 3, S, S), "fp32", tmp_path / "x.tflite", metadata={},
                         converter="onnx2tf", layout="NHWC")
