"""The edge form equals the training form (random weights, every temporal module, eval mode)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from actionnet_edge.models.edge import to_edge, with_layout
from actionnet_edge.models import create_model, list_temporal


def _random_model(temporal: str, t: int = 4, seed: int = 0, causal: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    m = create_model("mobilenet_v2", temporal, t, 5, 0.25, dropout=0.0, causal=causal)
    with torch.no_grad():  # random weights and BN statistics, so every path matters
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for name, b in m.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
    return m.eval()


@pytest.mark.parametrize("causal", [False, True], ids=["centred", "causal"])
@pytest.mark.parametrize("temporal", list_temporal())
def test_edge_equals_training_form(temporal, causal):
    m = _random_model(temporal, causal=causal)
    e = to_edge(m)
    x = torch.randn(3, 4, 3, 64, 64)
    with torch.no_grad():
        ref, out = m(x), e(x)
    assert out.shape == (3, 5)
    scale = ref.abs().max().item()
    assert scale > 0.1  # the comparison is meaningful
    assert (out - ref).abs().max().item() < 1e-5 * max(1.0, scale)
    # NHWC input wrapper: same numbers from the camera layout
    with torch.no_grad():
        nhwc = with_layout(e, "NHWC")(x.permute(0, 1, 3, 4, 2).contiguous())
    assert (nhwc - out).abs().max().item() < 1e-5 * max(1.0, scale)


def test_edge_has_only_2d_ops():
    e = to_edge(_random_model("action"))
    kinds = {type(mod) for mod in e.modules()}
    assert not kinds & {nn.Conv1d, nn.Conv3d}
    # no 5-D tensor anywhere after the input reshape: every activation in the graph is <= 4-D
    ep = torch.export.export(e, (torch.randn(1, 4, 3, 64, 64),))
    ranks = [len(n.meta["val"].shape) for n in ep.graph.nodes
             if n.op == "call_function" and isinstance(n.meta.get("val"), torch.Tensor)]
    assert max(ranks[1:]) <= 4


def test_edge_keeps_weights_independent():
    m = _random_model("action")
    e = to_edge(m)
    with torch.no_grad():  # editing the edge copy leaves the training model untouched
        before = m(torch.ones(1, 4, 3, 64, 64))
        for p in e.parameters():
            p.zero_()
        after = m(torch.ones(1, 4, 3, 64, 64))
    assert torch.equal(before, after)


def test_other_segment_count():
    """Temporal kernels do not depend on T: the edge form follows the model's T."""
    m = _random_model("action", t=6, seed=1)
    x = torch.randn(2, 6, 3, 64, 64)
    with torch.no_grad():
        assert (to_edge(m)(x) - m(x)).abs().max().item() < 1e-4
