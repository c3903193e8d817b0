"""The ONNX writer's graph pass: constants shared between DequantizeLinear nodes are split, so ONNX
Runtime's exact U8U8 path (``session.x64quantprecision``) can load the file."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from actionnet_edge.export.onnx import _unshare_constant_dq  # noqa: E402


def _shared_weight_model():
    """One int8 weight (values beyond +-64, which ORT converts) and one zero point behind a single
    DequantizeLinear feeding two convolutions, as torch.onnx writes ACTION's equal 1/C weights."""
    w = numpy_helper.from_array(np.array([[[[100]], [[-90]]]], dtype=np.int8), "w")  # (1, 2, 1, 1)
    zp = numpy_helper.from_array(np.zeros(1, dtype=np.int8), "zp")
    scale = numpy_helper.from_array(np.array([0.01], dtype=np.float32), "scale")
    nodes = [helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["wf"], name="dq", axis=0),
             helper.make_node("Conv", ["x", "wf"], ["a"], name="c1"),
             helper.make_node("Conv", ["x", "wf"], ["b"], name="c2"),
             helper.make_node("Add", ["a", "b"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])],
                              initializer=[w, zp, scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _run(model, precise: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.x64quantprecision", "1" if precise else "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)})[0]


def test_each_constant_dequantize_gets_one_consumer_and_its_own_constants():
    model = _shared_weight_model()
    before = _run(model, precise=False)
    _unshare_constant_dq(model.graph)
    onnx.checker.check_model(model)
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 2
    assert len({n.output[0] for n in dqs}) == 2 and len({n.input[0] for n in dqs}) == 2
    assert len({n.input[2] for n in dqs}) == 2
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert {c.input[1] for c in convs} == {n.output[0] for n in dqs}
    np.testing.assert_array_equal(_run(model, precise=False), before)
    np.testing.assert_allclose(_run(model, precise=True), before, rtol=1e-6)  # loads, same numbers
