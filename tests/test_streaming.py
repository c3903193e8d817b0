"""Causal ACTION and its streaming form: no peeking at the future, frame-by-frame equality."""
from __future__ import annotations

import pytest
import torch

from actionnet_edge import ActionNetError
from actionnet_edge.models import create_model, list_temporal
from actionnet_edge.models.streaming import to_streaming

T = 5


def _random_causal(temporal: str, arch: str = "mobilenet_v2", **kw) -> torch.nn.Module:
    """A causal model with non-trivial temporal weights and BN statistics."""
    torch.manual_seed(0)
    model = create_model(arch, temporal, T, 6, causal=True, **kw).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
        for name, p in model.named_parameters():
            if ".temporal." in name:
                p.add_(0.3 * torch.randn_like(p))
        torch.nn.init.normal_(model.fc.weight, 0, 0.1)
    return model


@pytest.mark.parametrize("temporal", list_temporal())
def test_causal_ops_never_read_the_future(temporal):
    model = _random_causal(temporal, width_mult=0.35)
    x = torch.randn(2, T, 3, 64, 64)
    for t in range(T - 1):
        x2 = x.clone()
        x2[:, t + 1 :] += torch.randn_like(x2[:, t + 1 :])
        with torch.no_grad():
            a, b = model.frame_logits(x), model.frame_logits(x2)
        torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=0)
        if temporal != "none":
            assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().max() > 0


def test_offline_model_does_read_the_future():
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", "action", T, 6, width_mult=0.35).eval()
    torch.nn.init.normal_(model.fc.weight, 0, 0.1)
    x = torch.randn(1, T, 3, 64, 64)
    x2 = x.clone()
    x2[:, 1] += 1
    with torch.no_grad():
        assert (model.frame_logits(x)[:, 0] - model.frame_logits(x2)[:, 0]).abs().max() > 0


@pytest.mark.parametrize("temporal", list_temporal())
def test_streaming_equals_causal_clip_model(temporal):
    model = _random_causal(temporal, width_mult=0.5)
    stream = to_streaming(model)
    x = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        ref = model.frame_logits(x)
        state = stream.init_state(2, 64)
        frames, last = [], None
        for t in range(T):
            out = stream(x[:, t], *state)
            last, state = out[0], list(out[2:])
            frames.append(out[1])
    torch.testing.assert_close(torch.stack(frames, 1), ref, rtol=1e-4, atol=1e-5)
    # after T frames the window average is the clip model's consensus
    torch.testing.assert_close(last, model(x), rtol=1e-4, atol=1e-5)


def test_streaming_resnet_and_bninception_equal_clip():
    for arch in ("resnet50", "bninception"):
        model = _random_causal("action", arch)
        stream = to_streaming(model)
        x = torch.randn(1, T, 3, 64, 64)
        with torch.no_grad():
            state = stream.init_state(1, 64)
            for t in range(T):
                logits, state = stream.step(x[:, t], state)
            torch.testing.assert_close(logits, model(x), rtol=1e-3, atol=1e-3)


def test_nhwc_state_gives_the_same_numbers():
    model = _random_causal("action", width_mult=0.5)
    a, b = to_streaming(model), to_streaming(model).set_state_layout("NHWC")
    spec_a, spec_b = a.state_spec(1, 64), b.state_spec(1, 64)
    assert [n for n, _ in spec_a] == [n for n, _ in spec_b]
    for (_, sa), (_, sb) in zip(spec_a, spec_b):  # (N, C, H, W) -> (N, H, W, C); the rest as they are
        assert sb == ((sa[0], sa[2], sa[3], sa[1]) if len(sa) == 4 else sa)
    assert any(len(s) == 4 and s[1] != s[3] for _, s in spec_a)
    x = torch.randn(1, T, 3, 64, 64)
    sa, sb = a.init_state(1, 64), b.init_state(1, 64)
    with torch.no_grad():
        for t in range(T):
            la, sa = a.step(x[:, t], sa)
            lb, sb = b.step(x[:, t], sb)
            torch.testing.assert_close(lb, la, rtol=0, atol=1e-6)
    for u, v in zip(sa, sb):
        torch.testing.assert_close(v, u.permute(0, 2, 3, 1) if u.dim() == 4 else u, rtol=0, atol=1e-6)
    with pytest.raises(ActionNetError, match="state layout must be NCHW or NHWC"):
        a.set_state_layout("CHW")


def test_state_spec_names_and_shapes():
    model = _random_causal("action", width_mult=0.5)
    stream = to_streaming(model)
    spec = stream.state_spec(1, 64)
    names = [n for n, _ in spec]
    assert len(names) == len(set(names)) == 10 * 7 + 1
    assert names[:7] == ["place00_prev1", "place00_prev2", "place00_ste_prev1", "place00_ste_prev2",
                         "place00_ce_prev1", "place00_ce_prev2", "place00_me_prev"]
    assert spec[-1] == ("consensus", (1, T - 1, 6))
    assert all(s.abs().sum() == 0 for s in stream.init_state(1, 64))


def test_bad_state_and_non_causal_model_are_clear_errors():
    model = _random_causal("action", width_mult=0.35)
    stream = to_streaming(model)
    state = stream.init_state(1, 64)
    frame = torch.randn(1, 3, 64, 64)
    bad = list(state)
    bad[0] = torch.zeros(1, 3, 5, 5)
    with pytest.raises(ActionNetError, match="place00_prev1.*expected"):
        stream.step(frame, bad)
    with pytest.raises(ActionNetError, match="state has"):
        stream.step(frame, state[:-1])
    with pytest.raises(ActionNetError, match="causal"):
        to_streaming(create_model("mobilenet_v2", "action", T, 6, width_mult=0.35))


def test_last_frame_consensus_clip_edge_and_stream_agree():
    """consensus=last: the clip logits are the last frame's, in the training, edge and streaming forms."""
    from actionnet_edge.models.edge import to_edge

    model = _random_causal("action", width_mult=0.35, consensus="last")
    x = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        frames, clip, edge = model.frame_logits(x), model(x), to_edge(model)(x)
    torch.testing.assert_close(clip, frames[:, -1], rtol=0, atol=0)
    assert (clip - frames.mean(1)).abs().max() > 1e-5  # not the average
    torch.testing.assert_close(edge, clip, rtol=1e-4, atol=1e-5)
    stream = to_streaming(model)
    assert stream.window == 1 and all(name != "consensus" for name, _ in stream.state_spec(2, 64))
    with torch.no_grad():
        state = stream.init_state(2, 64)
        for t in range(T):
            out = stream(x[:, t], *state)
            state = list(out[2:])
    torch.testing.assert_close(out[0], clip, rtol=1e-4, atol=1e-5)
    with pytest.raises(ActionNetError, match="unknown consensus 'max'"):
        create_model("mobilenet_v2", "action", T, 6, consensus="max")
