"""The test model of the two layout-fold tests (test_xnnpack_layout, test_tflite_layout).

One temporal module (ACTION, causal ACTION or TSM) between a depthwise and a pointwise
convolution, as in a MobileNetV2 block, on a (1, T, C, HW, HW) clip.
"""
import torch
from torch import nn

from actionnet_edge.models.edge import edge_temporal
from actionnet_edge.models.temporal import Action, TemporalShift

T, C, HW = 4, 16, 8


class Block(nn.Module):
    def __init__(self, temporal: nn.Module) -> None:
        super().__init__()
        self.a = nn.Conv2d(C, C, 3, padding=1, groups=C)
        self.t = temporal
        self.b = nn.Conv2d(C, C, 1)

    def forward(self, x):
        n, t, c, h, w = x.shape
        return self.b(self.t(self.a(x.reshape(n * t, c, h, w))))


def layout_block(kind: str) -> nn.Module:
    """kind: "action", "causal" or "tsm"; the edge form of the module, in eval mode."""
    torch.manual_seed(0)
    if kind == "tsm":
        m = TemporalShift(C, T)
    else:
        m = Action(C, T, causal=kind == "causal")
        with torch.no_grad():  # off the shift's one-hot initial taps
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return Block(edge_temporal(m.eval())).eval()
