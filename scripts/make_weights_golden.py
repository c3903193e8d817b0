#!/usr/bin/env python
"""Record what the official ACTION-Net / TSM / MobileNetV2 code computes, for the importer's tests.

Needs the three official repositories checked out OUTSIDE this repository (they are never
committed): ``--official DIR`` holding ``V-Sense+ACTION-Net``, ``mit-han-lab+temporal-shift-module``
and ``tonylins`` (pytorch-mobilenet-v2). For every case it

1. makes a fixture with ``scripts/official_layouts.py`` (our seeded model, renamed to the layout);
2. builds the official model (random init, no download), loads the fixture strictly, runs a
   seeded input through it, and writes to ``tests/golden/weights/<case>.json``: the official
   logits (per frame for the online demo) and the official model's own key list with shapes;
3. also checks the other direction: the official model's own random weights (seeded), saved as the
   official code saves them, through our importer, must give the official logits; the max abs
   differences of both directions are printed and recorded.

Usage: ``python scripts/make_weights_golden.py --official /tmp/off [--out tests/golden/weights]``
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_layouts import calibrate_bn, official_state_dict, saved_form, seeded_model  # noqa: E402

from actionnet_edge.checkpoint import load_checkpoint  # noqa: E402
from actionnet_edge.weights import import_weights  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "weights"
SIZE, CLASSES, SEED, INPUT_SEED = 64, 5, 0, 123
#: case -> layout, arch, segments
CASES = {
    "action_net_mobilenet_v2": ("action-net", "mobilenet_v2", 8),
    "action_net_resnet50": ("action-net", "resnet50", 4),
    "tsm_offline_mobilenet_v2": ("tsm-offline", "mobilenet_v2", 8),
    "tsm_offline_resnet50": ("tsm-offline", "resnet50", 4),
    "tsn_tsm_repo_mobilenet_v2": ("tsn", "mobilenet_v2", 8),
    "tsm_online_mobilenet_v2": ("tsm-online", "mobilenet_v2", 8),
}
_TSN_BACKBONE = {"mobilenet_v2": "mobilenetv2", "resnet50": "resnet50"}


def clip_input(segments: int) -> torch.Tensor:
    return torch.randn(1, segments, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(INPUT_SEED))


def _import_repo(root: Path, purge: tuple[str, ...]):
    """Put one official repository first on the path (both have top-level ``archs``/``models``/``ops``)."""
    for name in list(sys.modules):
        if name.split(".")[0] in purge:
            del sys.modules[name]
    sys.path.insert(0, str(root))


def official_model(official: Path, layout: str, arch: str, segments: int) -> torch.nn.Module:
    quiet = contextlib.redirect_stdout(io.StringIO())
    if layout == "action-net":
        _import_repo(official / "V-Sense+ACTION-Net", ("models", "archs", "ops"))
        from models.models import TSN
        with quiet:
            m = TSN(CLASSES, segments, "RGB", base_model=_TSN_BACKBONE[arch], is_shift=True, pretrain="none")
    elif layout in ("tsm-offline", "tsn"):
        _import_repo(official / "mit-han-lab+temporal-shift-module", ("models", "archs", "ops"))
        from ops.models import TSN
        TSN.print_spec = False  # upstream reads self.print_spec for MobileNetV2 but never sets it
        with quiet:
            m = TSN(CLASSES, segments, "RGB", base_model=_TSN_BACKBONE[arch], is_shift=layout == "tsm-offline",
                    shift_div=8, shift_place="blockres", pretrain="none")
    else:
        _import_repo(official / "mit-han-lab+temporal-shift-module" / "online_demo", ("mobilenet_v2_tsm",))
        from mobilenet_v2_tsm import MobileNetV2
        m = MobileNetV2(n_class=CLASSES)
    sys.path.pop(0)
    m.eval()  # the official TSN.train() returns None, so not `return m.eval()`
    return m


def official_logits(m: torch.nn.Module, layout: str, x: torch.Tensor) -> torch.Tensor:
    """Clip logits (N, K), or for the online demo per-frame logits (N, T, K) from zero shift buffers."""
    with torch.no_grad():
        if layout != "tsm-online":
            n, t = x.shape[:2]
            return m(x.reshape(n, t * 3, SIZE, SIZE))
        buffers = [torch.zeros(shape) for shape in _buffer_shapes(m, x[:, 0])]
        frames = []
        for t in range(x.shape[1]):
            out, *buffers = m(x[:, t], *buffers)
            frames.append(out)
        return torch.stack(frames, 1)


def _buffer_shapes(m: torch.nn.Module, frame: torch.Tensor) -> list[tuple[int, ...]]:
    """The demo's shift buffer shapes for this frame size: 1/8 of each shifted block's input."""
    shapes, x = [], frame
    with torch.no_grad():
        for f in m.features:
            if type(f).__name__ == "InvertedResidualWithShift":
                shapes.append((x.shape[0], x.shape[1] // 8, *x.shape[2:]))
                x = f(x, torch.zeros(shapes[-1]))[0]
            else:
                x = f(x)
    return shapes


def randomize_official(m: torch.nn.Module, layout: str, segments: int) -> None:
    """Random BN affines, classifier and ACTION shift taps on top of the official init; BN
    statistics from one seeded clip (as ``seeded_model`` does for ours)."""
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
            elif isinstance(mod, torch.nn.Linear) or name.endswith("action_shift"):
                for p in mod.parameters():
                    p.normal_(0, 0.3)
    x = torch.randn(2, segments, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(SEED + 9))
    if layout == "tsm-online":
        calibrate_bn(m, lambda: official_logits(m, layout, x))
    elif layout == "imagenet":
        calibrate_bn(m, lambda: m(x[0]))
    else:
        calibrate_bn(m, lambda: m(x.reshape(2, segments * 3, SIZE, SIZE)))
    m.eval()


def ours(model: torch.nn.Module, layout: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.frame_logits(x) if layout == "tsm-online" else model(x)


def run_case(official: Path, case: str, out: Path) -> dict:
    layout, arch, segments = CASES[case]
    x = clip_input(segments)
    ref_model = official_model(official, layout, arch, segments)
    fixture = official_state_dict(seeded_model(layout, arch, CLASSES, segments, SEED), layout)
    ref_model.load_state_dict(fixture, strict=True)  # our renaming gives exactly the official keys and shapes
    ref = official_logits(ref_model, layout, x)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{case}.pth"
        torch.save(saved_form(fixture, layout), src)
        import_weights(src, Path(tmp) / "a.pt", segments=segments)
        diff_fixture = (ours(load_checkpoint(Path(tmp) / "a.pt").model, layout, x) - ref).abs().max().item()
        # the other direction: the official model's own random weights, saved as the official code saves them
        torch.manual_seed(SEED + 7)
        own = official_model(official, layout, arch, segments)
        randomize_official(own, layout, segments)
        own_ref = official_logits(own, layout, x)
        torch.save(saved_form(own.state_dict(), layout), src)
        import_weights(src, Path(tmp) / "b.pt", segments=segments)
        diff_own = (ours(load_checkpoint(Path(tmp) / "b.pt").model, layout, x) - own_ref).abs().max().item()
    record = {
        "case": case, "layout": layout, "arch": arch, "segments": segments, "classes": CLASSES, "size": SIZE,
        "seed": SEED, "input_seed": INPUT_SEED, "torch": torch.__version__,
        "logits": ref.tolist(), "logits_scale": ref.abs().max().item(),
        "max_abs_diff_fixture": diff_fixture, "max_abs_diff_official_init": diff_own,
        "official_keys": [[k, list(v.shape)] for k, v in ref_model.state_dict().items()],
    }
    (out / f"{case}.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"{case}: |logits| max {record['logits_scale']:.4f}; max abs diff fixture {diff_fixture:.3g}, "
          f"official init {diff_own:.3g}")
    return record


def imagenet_case(official: Path, out: Path) -> None:
    """tonylins' ImageNet MobileNetV2 -> ``pretrained=`` -> our backbone's pooled features, both ways."""
    from actionnet_edge.models import create_model
    _import_repo(official / "tonylins", ("MobileNetV2",))
    from MobileNetV2 import MobileNetV2
    sys.path.pop(0)
    x = clip_input(2)[0]
    fixture = official_state_dict(seeded_model("imagenet-tonylins", "mobilenet_v2", 1000, 2, SEED), "imagenet-tonylins")
    net = MobileNetV2(n_class=1000).eval()
    net.load_state_dict(fixture, strict=True)
    torch.manual_seed(SEED + 7)
    own = MobileNetV2(n_class=1000).eval()
    randomize_official(own, "imagenet", 2)
    diffs = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in (net, own):
            torch.save(m.state_dict(), Path(tmp) / "mbv2.pth.tar")
            model = create_model("mobilenet_v2", "none", 2, 3, pretrained=Path(tmp) / "mbv2.pth.tar").eval()
            with torch.no_grad():
                ref = m.features(x).mean(3).mean(2)
                diffs.append((model.backbone(x) - ref).abs().max().item())
            if m is net:
                feats = ref
    record = {"case": "imagenet_tonylins_mobilenet_v2", "layout": "imagenet-tonylins", "seed": SEED,
              "input_seed": INPUT_SEED, "size": SIZE, "torch": torch.__version__,
              "features": feats.tolist(), "features_scale": feats.abs().max().item(),
              "max_abs_diff_fixture": diffs[0], "max_abs_diff_official_init": diffs[1],
              "official_keys": [[k, list(v.shape)] for k, v in net.state_dict().items()]}
    (out / "imagenet_tonylins_mobilenet_v2.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"imagenet_tonylins_mobilenet_v2: |features| max {record['features_scale']:.4f}; max abs diff "
          f"fixture {diffs[0]:.3g}, official init {diffs[1]:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--case", action="append", choices=sorted(CASES) + ["imagenet"])
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for case in a.case or [*CASES, "imagenet"]:
        imagenet_case(a.official, a.out) if case == "imagenet" else run_case(a.official, case, a.out)


if __name__ == "__main__":
    main()
