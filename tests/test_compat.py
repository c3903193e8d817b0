"""Each workaround in actionnet_edge/compat.py exists because of an upstream limitation; these tests
assert the limitation is still there. When one fails, upstream changed: drop the workaround."""
import inspect

import pytest
import torch
from torch import nn


class _Gate(nn.Module):
    """conv -> sigmoid gate -> x * gate + x: the add/mul pattern of ACTION's excitation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(y) + y


def test_torch_export_refuses_plain_pattern_functions():
    """litert-torch hands plain functions to torchao's pattern export, which only takes modules."""
    pytest.importorskip("litert_torch")
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    from actionnet_edge.compat import litert_patterns_as_modules

    def pattern(x, y):
        return x + y

    args = (torch.randn(2), torch.randn(2))
    with pytest.raises(ValueError, match="torch.nn.Module"):
        utils._get_aten_graph_module_for_pattern(pattern, args)
    with litert_patterns_as_modules():
        assert isinstance(utils._get_aten_graph_module_for_pattern(pattern, args), torch.fx.GraphModule)
    with pytest.raises(ValueError):  # restored on exit
        utils._get_aten_graph_module_for_pattern(pattern, args)


def _annotated_adds(annotate) -> int:
    gm = torch.export.export(_Gate().eval(), (torch.randn(1, 3, 8, 8),)).module()
    gm = annotate(gm)
    return sum(1 for n in gm.graph.nodes if n.target == torch.ops.aten.add.Tensor
               and n.meta.get("quantization_annotation") is not None)


def test_litert_quantizer_skips_adds_of_non_strict_graphs():
    """Non-strict export records no source_fn_stack, and litert-torch's add annotator needs it."""
    pytest.importorskip("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    from actionnet_edge.compat import litert_annotate

    gm = torch.export.export(_Gate().eval(), (torch.randn(1, 3, 8, 8),)).module()
    assert not any(n.meta.get("source_fn_stack") for n in gm.graph.nodes if n.op == "call_function")
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    assert _annotated_adds(q.annotate) == 0
    assert _annotated_adds(litert_annotate(q.annotate)) == 1


def test_xnnpack_backend_takes_no_extra_passes():
    """ExecuTorch's XNNPACK backend builds its pass list itself (no option for a caller's pass), so
    compat.xnnpack_extra_passes subclasses the XNNPACKPassManager it instantiates."""
    pytest.importorskip("executorch")
    import executorch.backends.xnnpack.xnnpack_preprocess as preprocess
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    from actionnet_edge.compat import xnnpack_extra_passes

    assert "XNNPACKPassManager(ep, passes=passes)" in inspect.getsource(preprocess.XnnpackBackend.preprocess)
    assert not any("pass" in p for p in inspect.signature(XnnpackPartitioner.__init__).parameters)
    base = preprocess.XNNPACKPassManager

    class Marker:
        pass

    with xnnpack_extra_passes(Marker) as added:
        assert added and preprocess.XNNPACKPassManager is not base
        assert issubclass(preprocess.XNNPACKPassManager, base)
    assert preprocess.XNNPACKPassManager is base


def _litert_int8(net: nn.Module, x: torch.Tensor) -> bytes:
    """The .tflite of a converted PT2E graph, as export/tflite.py lowers it (static int8)."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from actionnet_edge.quant import make_quantizer

    quant = QuantConfig(pt2e_quantizer=make_quantizer("litert", qat=False))
    return litert_torch.convert(net, (x,), quant_config=quant).model_content()


class _Transposed(nn.Module):
    """conv -> transpose -> a conv and a mean: the shift's way out of an ACTION module."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        z = self.a(x).transpose(2, 3)
        return self.b(z), z.mean((2, 3))


def test_litert_converter_needs_one_scale_across_a_transpose(monkeypatch):
    """litert-torch's converter folds a requantize into the TRANSPOSE next to it, then rejects that
    TRANSPOSE ("violate the same scale constraint"); after QAT the quantize behind same-scale ops
    drifts from the dequantize before them (its observer saw already rounded values).

    Only with its greedy layout partition, used once |V|^2 |E| >= 2000^3 (our smallest ACTION model
    is past that); a graph this small gets the min-cut one and a QUANTIZE op, hence the setenv."""
    pytest.importorskip("litert_torch")
    from actionnet_edge.compat import align_same_scale_ranges
    from actionnet_edge.quant.pt2e import convert, prepare, set_qat_mode

    monkeypatch.setenv("LAYOUT_OPTIMIZE_PARTITIONER", "GREEDY")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 4)
    prepared = prepare(_Transposed(), "litert", x, qat=True)
    set_qat_mode(prepared, True)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        sum(y.square().mean() for y in prepared(torch.randn(2, 3, 4, 4))).backward()
        opt.step()
    gm = convert(prepared, fold_weights=False)
    q = next(n for n in gm.graph.nodes if n.target == torch.ops.quantized_decomposed.quantize_per_tensor.default
             and n.args[0].target == torch.ops.aten.transpose.int)
    assert q.args[1:3] != q.args[0].args[0].args[1:3]  # QAT drifted: scale/zero point differ across it
    with pytest.raises(ValueError, match="'tfl.transpose' op quantization parameters violate the same scale"):
        _litert_int8(gm, x)
    assert align_same_scale_ranges(gm) == 1
    assert _litert_int8(gm, x)


class _SharedDequantize(nn.Module):
    """conv -> a reshape (NCHW) and a slice into a conv (NHWC): two users torchao leaves unannotated."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.a(x)
        return y.reshape(y.shape[0], -1), self.b(y[:, :, 1:, 1:])


def test_litert_layout_pass_fails_on_a_shared_dequantize():
    """torchao's convert gives the reshape and the slice one dequantize; litert-torch's layout pass,
    inserting the reshape's transpose to NCHW after it, overwrites that node's meta (its shape
    and layout mark) and then refuses to move it to NHWC for the slice."""
    pytest.importorskip("litert_torch")
    from actionnet_edge.compat import litert_one_dequantize_per_user
    from actionnet_edge.quant import quantize

    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 4)
    gm = quantize(_SharedDequantize(), "litert", calib=[torch.randn(2, 3, 4, 4)], example=x)
    dq = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    assert any(n.target == dq and len(n.users) == 2 for n in gm.graph.nodes)
    with pytest.raises(AssertionError, match="non-NHWC compatible node to NHWC: dequantize_per_tensor"):
        _litert_int8(gm, x)
    assert _litert_int8(litert_one_dequantize_per_user(gm), x)
