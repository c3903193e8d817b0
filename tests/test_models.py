"""The model family: shapes, gradients, the paper's parameter counts, temporal behaviour."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision

from actionnet_edge import ActionNetError, create_model, list_models
from actionnet_edge.bench.macs import profile_model
from actionnet_edge.models import list_temporal, register_backbone
from actionnet_edge.models.backbones import bninception
from actionnet_edge.models.temporal import STE, Action, LearnableShift, TemporalShift

SMALL = {"mobilenet_v2": dict(width_mult=0.5), "resnet50": {}, "bninception": {}, "test_mobilenet_v2": dict(width_mult=0.5)}
PLACES = {"mobilenet_v2": 10, "resnet50": 16, "bninception": 10, "test_mobilenet_v2": 3}


@pytest.mark.parametrize("temporal", list_temporal())
@pytest.mark.parametrize("arch", list_models())
def test_forward_shapes_every_pair(arch, temporal):
    torch.manual_seed(0)
    model = create_model(arch, temporal, num_segments=3, num_classes=7, **SMALL[arch]).eval()
    assert model.num_places == PLACES[arch]
    x = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.frame_logits(x).shape == (2, 3, 7)


@pytest.mark.parametrize("arch", list_models())
def test_backward_reaches_temporal_modules(arch):
    model = create_model(arch, "action", num_segments=3, num_classes=5, **SMALL[arch])
    model(torch.randn(2, 3, 3, 64, 64)).logsumexp(1).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if ".temporal." in n}
    assert grads and all(g is not None for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if "ste.conv" in n)


def test_table5_parameter_counts():
    """83 classes, 8 frames: the paper's Table 5 (MobileNetV2 TSM 2.33M, ACTION 2.36M; ResNet-50 TSM 23.68M)."""
    def params(arch, temporal):
        return sum(p.numel() for p in create_model(arch, temporal, 8, 83).parameters())

    assert round(params("mobilenet_v2", "shift") / 1e6, 2) == 2.33
    assert round(params("mobilenet_v2", "action") / 1e6, 2) == 2.36
    assert round(params("resnet50", "shift") / 1e6, 2) == 23.68
    assert round(params("bninception", "shift") / 1e6, 2) == 10.36
    assert params("mobilenet_v2", "none") == params("mobilenet_v2", "shift") == 2_330_195
    assert params("mobilenet_v2", "action") == 2_355_455


def test_mobilenet_action_mac_overhead_under_one_percent():
    tsm = profile_model(create_model("mobilenet_v2", "shift", 8, 83), 224)
    action = profile_model(create_model("mobilenet_v2", "action", 8, 83), 224)
    assert tsm.temporal_macs == 0
    # torchvision's MobileNetV2 is 300.77M MACs per 224 px frame with its 1000-way classifier
    assert tsm.macs == 8 * (300_774_272 - 1280 * 1000 + 1280 * 83)
    overhead = (action.macs - tsm.macs) / tsm.macs
    assert 0 < overhead < 0.01
    assert action.macs - tsm.macs == action.temporal_macs
    # by hand, over the ten modules (N*T = 8): learnable shift 3 x 8 x 216,384 activations = 5,193,216;
    # STE 27 x 8 x 5,782 pixels = 1,248,912; ME 6,572,896; CE 92,248 (+0.55%, README)
    assert action.temporal_macs == 5_193_216 + 1_248_912 + 6_572_896 + 92_248


def _reverse(x):
    return x.flip(1)


@pytest.mark.parametrize("temporal,order_matters", [("none", False), ("shift", True), ("action", True),
                                                    ("ste", True), ("ce", True), ("me", True)])
def test_frame_order(temporal, order_matters):
    torch.manual_seed(1)
    model = create_model("mobilenet_v2", temporal, 4, 6, width_mult=0.5).eval()
    torch.nn.init.normal_(model.fc.weight, 0, 0.1)
    x = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), model(_reverse(x))
    if order_matters:
        assert (a - b).abs().max() > 1e-4 * a.abs().max()
    else:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_learnable_shift_at_init_equals_tsm_exactly():
    torch.manual_seed(2)
    for channels, t in [(64, 8), (24, 4), (10, 3)]:
        x = torch.randn(2 * t, channels, 5, 6)
        torch.testing.assert_close(LearnableShift(channels, t)(x), TemporalShift(channels, t)(x), rtol=0, atol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_learnable_shift_equals_its_conv1d_over_time(causal):
    """The taps applied in forward are the official computation: the depthwise Conv1d run over T."""
    torch.manual_seed(5)
    n, t, c, h, w = 2, 5, 12, 3, 4
    mod = LearnableShift(c, t, causal=causal)
    with torch.no_grad():
        mod.conv.weight.normal_()
    x = torch.randn(n * t, c, h, w, requires_grad=True)
    y = x.view(n, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(n * h * w, c, t)
    ref = mod.conv(torch.nn.functional.pad(y, (2, 0)) if causal else y)
    ref = ref.view(n, h, w, c, t).permute(0, 4, 3, 1, 2).reshape(n * t, c, h, w)
    torch.testing.assert_close(mod(x), ref)
    g_mod = torch.autograd.grad(mod(x).square().sum(), mod.conv.weight)[0]
    g_ref = torch.autograd.grad(ref.square().sum(), mod.conv.weight)[0]
    torch.testing.assert_close(g_mod, g_ref)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("hw", [(5, 5), (7, 4)])
def test_me_pooling_before_the_difference_equals_the_official_order(causal, training, hw):
    """ME pools K*F and F before the frame difference; the official code pools the difference map."""
    torch.manual_seed(6)
    t, c, (h, w) = 4, 32, hw
    mod = Action(c, t, causal=causal, paths=("me",)).train(training)
    me = mod.paths["me"]
    with torch.no_grad():
        for p in me.parameters():
            p.normal_(0, 0.5)
        me.bn.running_mean.normal_()
        me.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2 * t, c, h, w, requires_grad=True)
    f = me.bn(me.squeeze(x)).view(2, t, -1, h, w)
    k = me.conv(f.flatten(0, 1)).view_as(f)
    zero = torch.zeros_like(f[:, :1])
    d = k - torch.cat([zero, f[:, :-1]], 1) if causal else torch.cat([k[:, 1:] - f[:, :-1], zero], 1)
    ref = torch.sigmoid(me.expand(d.flatten(0, 1).mean((2, 3), keepdim=True)))
    out = me(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # bit for bit the same without autograd (CAMs compare the two)
        torch.testing.assert_close(me(x), out.detach(), atol=0, rtol=0)
    # the same gradients
    wrt = [x, me.squeeze.weight, me.conv.weight, me.bn.weight, me.bn.bias]
    g_out = torch.autograd.grad(out.square().sum(), wrt)
    g_ref = torch.autograd.grad(ref.square().sum(), wrt)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_ste_equals_its_conv3d(causal):
    """STE's banded Conv2d over frames-as-channels is the official Conv3d, values and gradients."""
    torch.manual_seed(7)
    n, t, c, h, w = 2, 5, 6, 4, 3
    mod = STE(c, t, causal=causal)
    with torch.no_grad():
        mod.conv.weight.normal_()
    x = torch.randn(n * t, c, h, w)
    f = x.mean(1, keepdim=True).view(n, t, 1, h, w).transpose(1, 2)  # N, 1, T, H, W
    ref = mod.conv(torch.nn.functional.pad(f, (0, 0, 0, 0, 2, 0)) if causal else f)
    ref = torch.sigmoid(ref.transpose(1, 2).reshape(n * t, 1, h, w))
    torch.testing.assert_close(mod(x), ref)
    g_mod = torch.autograd.grad(mod(x).square().sum(), mod.conv.weight)[0]
    g_ref = torch.autograd.grad(ref.square().sum(), mod.conv.weight)[0]
    torch.testing.assert_close(g_mod, g_ref)


def test_tsm_shift_moves_the_right_folds():
    t, c = 4, 16
    x = torch.arange(t, dtype=torch.float).view(1, t, 1, 1, 1).expand(1, t, c, 2, 2).reshape(t, c, 2, 2)
    y = TemporalShift(c, t)(x).view(t, c, 2, 2)[:, :, 0, 0]
    assert y[:, 0].tolist() == [1, 2, 3, 0]  # fold 0: frame t reads t+1, zero after the end
    assert y[:, 2].tolist() == [0, 0, 1, 2]  # fold 1: frame t reads t-1, zero before the start
    assert y[:, 5].tolist() == [0, 1, 2, 3]  # the rest stays


def test_action_module_is_temporally_local():
    """One ACTION module sees frames t-2..t+2 (shift, then a k=3 temporal op), no further."""
    torch.manual_seed(3)
    t = 8
    mod = Action(32, t).eval()
    x = torch.randn(t, 32, 6, 6)
    x2 = x.clone()
    x2[0] += 1.0
    with torch.no_grad():
        d = (mod(x) - mod(x2)).abs().flatten(1).amax(1)
    assert (d[:3] > 0).all()
    assert (d[3:] == 0).all()


def test_me_path_zero_motion_for_last_frame():
    """With only the ME path, a static clip gives a mask from zero motion on the last frame."""
    mod = Action(32, 4, paths=("me",)).eval()
    me = mod.paths["me"]
    x = torch.randn(4, 32, 5, 5)
    f = me.bn(me.squeeze(x))
    # last frame: motion 0 -> mask = sigmoid(expand(0)) = 0.5 everywhere
    torch.testing.assert_close(me(x).view(4, 32)[-1], torch.full((32,), 0.5))
    assert f.shape == (4, 2, 5, 5)


def test_width_mult_only_for_mobilenet():
    m = create_model("mobilenet_v2", "action", 4, 5, width_mult=0.35)
    assert m.config["width_mult"] == 0.35
    with pytest.raises(ActionNetError, match="only the MobileNetV2 backbones"):
        create_model("resnet50", "action", 4, 5, width_mult=0.5)


def test_unknown_names_suggest_closest():
    with pytest.raises(ActionNetError, match="Did you mean 'mobilenet_v2'"):
        create_model("mobilenetv2")
    with pytest.raises(ActionNetError, match="Did you mean 'action'"):
        create_model("mobilenet_v2", "actoin")
    with pytest.raises(ActionNetError, match="at least 2"):
        create_model("mobilenet_v2", num_segments=1)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("mobilenet_v2", lambda w: None)


def test_pretrained_torchvision_state_dict(tmp_path):
    torch.manual_seed(4)
    ref = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5)
    path = tmp_path / "mbv2.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("mobilenet_v2", "action", 4, 9, width_mult=0.5, pretrained=path)
    assert model.pretrained_report == {"missing_keys": [], "unexpected_keys": []}
    # the wrapped first 1x1 conv of block 3 carries the pretrained weights, the classifier is new
    torch.testing.assert_close(model.backbone.features[3].conv[0][0].net.weight, ref.features[3].conv[0][0].weight)
    torch.testing.assert_close(model.backbone.features[0][0].weight, ref.features[0][0].weight)
    assert model.fc.out_features == 9


def test_pretrained_bninception_tsn_names(tmp_path):
    """TSN's flat key names load, and conv1 is flipped from BGR to RGB."""
    torch.manual_seed(5)
    ours = bninception().net.state_dict()
    flat = {}
    for k, v in ours.items():
        if k.startswith("inception_"):
            block, rest = k.split(".", 1)
            k = f"{block}_{rest}"
        flat[k] = torch.randn_like(v) if v.is_floating_point() else v
    flat["fc.weight"] = torch.randn(1000, 1024)
    path = tmp_path / "bninception.pth"
    torch.save(flat, path)
    model = create_model("bninception", "shift", 4, 5, pretrained=path)
    assert model.pretrained_report["missing_keys"] == []
    torch.testing.assert_close(model.backbone.conv1_7x7_s2.weight, flat["conv1_7x7_s2.weight"].flip(1))
    torch.testing.assert_close(model.backbone.inception_3a.net._modules["1x1"].weight, flat["inception_3a_1x1.weight"])


def test_pretrained_bad_files(tmp_path):
    with pytest.raises(ActionNetError, match="not found"):
        create_model("mobilenet_v2", pretrained=tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02this is not a checkpoint")
    with pytest.raises(ActionNetError, match="is not a valid pretrained weights file"):
        create_model("mobilenet_v2", pretrained=corrupt)
    other = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    with pytest.raises(ActionNetError, match="wrong shape|shares no weights"):
        create_model("mobilenet_v2", pretrained=other)
    notdict = tmp_path / "list.pth"
    torch.save([1, 2, 3], notdict)
    with pytest.raises(ActionNetError, match="not a state dict"):
        create_model("mobilenet_v2", pretrained=notdict)


@pytest.mark.parametrize("causal", [False, True])
def test_temporal_macs_are_those_of_the_official_computation(causal):
    """TemporalModule.macs (what the profile counts) equals hooks on the official computation's
    layers: the shift's Conv1d over T, STE's Conv3d, CE's and ME's 1x1 convs and temporal kernels."""
    from actionnet_edge.bench.macs import COUNTED

    torch.manual_seed(8)
    n, t, c, h, w = 2, 4, 32, 5, 6
    mod = Action(c, t, causal=causal).eval()
    counted = [0]

    def hook(layer, inp, out):
        per = (layer.in_features if isinstance(layer, torch.nn.Linear)
               else layer.in_channels // layer.groups * math.prod(layer.kernel_size))
        counted[0] += out.numel() * per

    for layer in mod.modules():
        if isinstance(layer, COUNTED):
            layer.register_forward_hook(hook)
    x = torch.randn(n * t, c, h, w)
    pad = torch.nn.functional.pad
    with torch.no_grad():
        s = mod.shift
        y = x.view(n, t, c, h * w).permute(0, 3, 2, 1).reshape(-1, c, t)
        s.conv(pad(y, (2, 0)) if causal else y)
        ste, ce, me = (mod.paths[p] for p in ("ste", "ce", "me"))
        f = x.mean(1, keepdim=True).view(n, t, 1, h, w).transpose(1, 2)
        ste.conv(pad(f, (0, 0, 0, 0, 2, 0)) if causal else f)
        v = ce.squeeze(x.mean((2, 3), keepdim=True)).view(n, t, -1).transpose(1, 2)
        v = ce.temporal(pad(v, (2, 0)) if causal else v).transpose(1, 2).reshape(n * t, -1, 1, 1)
        ce.expand(v)
        maps = me.squeeze(x)
        me.conv(maps)
        me.expand(maps.mean((2, 3), keepdim=True))
    assert counted[0] > 0 and mod.macs(tuple(x.shape)) == counted[0]
    assert s.macs(tuple(x.shape)) == 3 * x.numel() and ste.macs(tuple(x.shape)) == 27 * n * t * h * w
