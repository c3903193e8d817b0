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
