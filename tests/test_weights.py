"""`actionnet-edge import`: published ACTION-Net / TSM layouts against the official code's logits.

The golden files (tests/golden/weights/*.json) were written by scripts/make_weights_golden.py,
which ran the official V-Sense/ACTION-Net, temporal-shift-module and tonylins MobileNetV2 code on
fixtures that scripts/official_layouts.py makes from our seeded models. The tests remake the same
fixtures (same seeds), check that they carry exactly the official models' keys and shapes, import
them, and compare with the official logits.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _helpers import target_available
from actionnet_edge.checkpoint import load_checkpoint
from actionnet_edge.errors import ActionNetError
from actionnet_edge.models import create_model
from actionnet_edge.models.streaming import to_streaming
from actionnet_edge.weights import import_weights

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "weights"
CASES = sorted(p.stem for p in GOLDEN.glob("*.json") if not p.stem.startswith("imagenet"))
REL_TOL = 3e-5  # float32: the official and our graphs sum in different orders


def _layouts():
    spec = importlib.util.spec_from_file_location("official_layouts", ROOT / "scripts" / "official_layouts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


LAYOUTS = _layouts()


def golden(case: str) -> dict:
    return json.loads((GOLDEN / f"{case}.json").read_text())


def clip(g: dict) -> torch.Tensor:
    gen = torch.Generator().manual_seed(g["input_seed"])
    return torch.randn(1, g.get("segments", 2), 3, g["size"], g["size"], generator=gen)


def fixture(g: dict, path: Path, classes: int | None = None) -> Path:
    """The fixture the golden file was recorded from, saved as the official code saves it."""
    model = LAYOUTS.seeded_model(g["layout"], g.get("arch", "mobilenet_v2"), classes or g["classes"],
                                 g.get("segments", 2), g["seed"], g["size"])
    sd = LAYOUTS.official_state_dict(model, g["layout"])
    assert {k: list(v.shape) for k, v in sd.items()} == dict(g["official_keys"])  # exactly the official layout
    torch.save(LAYOUTS.saved_form(sd, g["layout"]), path)
    return path


def assert_official(out: torch.Tensor, ref: list, scale: float) -> float:
    ref = torch.tensor(ref)
    assert out.shape == ref.shape
    err = (out - ref).abs().max().item()
    assert err <= REL_TOL * max(1.0, scale), err
    return err


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """case -> checkpoint imported from that case's fixture (one import per case per session)."""
    root, done = tmp_path_factory.mktemp("imported"), {}

    def get(case: str) -> Path:
        if case not in done:
            g = golden(case)
            src = fixture(g, root / f"{case}.pth")
            done[case] = root / f"{case}.pt"
            import_weights(src, done[case], segments=g["segments"])
        return done[case]

    return get


@pytest.mark.parametrize("case", CASES)
def test_layout_imports_with_the_official_logits(case, imported):
    g = golden(case)
    ck = load_checkpoint(imported(case))
    assert ck.config["arch"] == g["arch"] and ck.config["num_segments"] == g["segments"]
    assert ck.raw["source"]["segments"] == g["segments"]
    assert ck.raw["source"].get("epoch") == (1 if g["layout"] in ("tsm-offline", "tsn") else None)  # TSM saves it
    assert ck.preprocess["size"] == 224 and ck.preprocess["mean"] == [0.485, 0.456, 0.406]
    with torch.no_grad():
        x = clip(g)
        out = ck.model.frame_logits(x) if g["layout"] == "tsm-online" else ck.model(x)
    assert_official(out, g["logits"], g["logits_scale"])


def test_the_comparison_sees_the_temporal_module(imported):
    """The same weights without TSM's shift (a TSN) miss the official TSM logits by far."""
    g = golden("tsm_offline_mobilenet_v2")
    tsm = load_checkpoint(imported("tsm_offline_mobilenet_v2")).model
    tsn = create_model("mobilenet_v2", "none", g["segments"], g["classes"]).eval()
    tsn.load_state_dict(tsm.state_dict())
    with torch.no_grad():
        err = (tsn(clip(g)) - torch.tensor(g["logits"])).abs().max().item()
    assert err > 1000 * REL_TOL * g["logits_scale"]


def test_online_model_streams_the_official_per_frame_outputs(imported):
    g = golden("tsm_online_mobilenet_v2")
    ck = load_checkpoint(imported("tsm_online_mobilenet_v2"))
    assert ck.config["temporal"] == "shift_online" and ck.config["causal"]
    stream, x = to_streaming(ck.model), clip(g)
    state, frames = stream.init_state(1, g["size"]), []
    with torch.no_grad():
        for t in range(g["segments"]):
            out = stream(x[:, t], *state)
            frames.append(out[1])
            state = list(out[2:])
    assert_official(torch.stack(frames, 1), g["logits"], g["logits_scale"])


def test_imagenet_tonylins_as_pretrained(tmp_path):
    g = golden("imagenet_tonylins_mobilenet_v2")
    src = fixture(g, tmp_path / "mobilenetv2_1.0.pth.tar", classes=1000)
    model = create_model("mobilenet_v2", "action", 2, 3, pretrained=src).eval()
    assert model.pretrained_report == {"missing_keys": [], "unexpected_keys": []}
    plain = create_model("mobilenet_v2", "none", 2, 3, pretrained=src).eval()
    with torch.no_grad():
        feats = plain.backbone(clip(g)[0])
    assert_official(feats, g["features"], g["features_scale"])
    with pytest.raises(ActionNetError, match="ImageNet MobileNetV2 in tonylins' layout"):
        import_weights(src, tmp_path / "x.pt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "actionnet_edge", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _edit(src: Path, dst: Path, edit) -> Path:
    obj = torch.load(src, weights_only=True)
    edit(obj["state_dict"])
    torch.save(obj, dst)
    return dst


def test_renamed_reshaped_or_missing_key_is_refused(imported, tmp_path):
    g = golden("action_net_mobilenet_v2")
    src = fixture(g, tmp_path / "action.pth")
    imported("action_net_mobilenet_v2")  # the unedited file imports (the other test checks its logits)
    key = "base_model.features.3.conv.0.action_p2_expand.weight"

    def rename(sd):
        sd[key.replace("action_p2_expand", "action_p2_expnd")] = sd.pop(key)

    def reshape(sd):
        sd[key] = sd[key][:-1]

    def drop(sd):
        del sd["base_model.features.5.conv.4.running_var"]

    bad = _edit(src, tmp_path / "renamed.pth", rename)
    _one_line_error(_cli("import", str(bad), "-o", str(tmp_path / "a.pt")), "action_p2_expnd")
    bad = _edit(src, tmp_path / "reshaped.pth", reshape)
    with pytest.raises(ActionNetError, match=r"source key 'base_model\.features\.3\.conv\.0\.action_p2_expand\.weight' "
                                             r"has shape \(23, 1, 1, 1\), this model's '.*' is \(24, 1, 1, 1\)$"):
        import_weights(bad, tmp_path / "b.pt")
    bad = _edit(src, tmp_path / "dropped.pth", drop)
    missing = r"nothing in the source for 'backbone\.features\.5\.conv\.1\.1\.running_var'"
    with pytest.raises(ActionNetError, match=missing):
        import_weights(bad, tmp_path / "c.pt")
    assert not list(tmp_path.glob("*.pt"))  # nothing written


def test_a_shift_at_other_places_is_refused(tmp_path):
    g = golden("tsm_offline_mobilenet_v2")
    src = fixture(g, tmp_path / "tsm.pth")
    w = "module.base_model.features.3.conv.0.net.weight"
    bad = _edit(src, tmp_path / "moved.pth", lambda sd: sd.__setitem__(w.replace(".net", ""), sd.pop(w)))
    with pytest.raises(ActionNetError, match="temporal modules at 9 places, this model at 10"):
        import_weights(bad, tmp_path / "x.pt")


def test_cli_labels_options_and_other_files(tmp_path):
    g = golden("tsm_online_mobilenet_v2")
    src = fixture(g, tmp_path / "mobilenetv2_jester_online.pth.tar")
    (tmp_path / "labels.csv").write_text("".join(f"gesture {i}\n" for i in range(5)))
    out = _cli("import", str(src), "-o", str(tmp_path / "a.pt"), "--labels", str(tmp_path / "labels.csv"), "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["found"].startswith("mit-han-lab/temporal-shift-module online demo MobileNetV2")
    assert load_checkpoint(tmp_path / "a.pt").labels == [f"gesture {i}" for i in range(5)]
    _one_line_error(_cli("import", str(src), "-o", str(tmp_path / "c.pt"), "--temporal", "action"),
                    "--temporal action does not fit it (shift_online)")
    ssv2 = {f"Putting [something] {i}": str(4 - i) for i in range(5)}
    (tmp_path / "labels.json").write_text(json.dumps(ssv2))
    import_weights(src, tmp_path / "b.pt", labels=tmp_path / "labels.json")
    assert load_checkpoint(tmp_path / "b.pt").labels == [f"Putting something {i}" for i in (4, 3, 2, 1, 0)]
    (tmp_path / "short.txt").write_text("a\nb\n")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    short = "2 labels but the checkpoint's classifier has 5 classes"
    for path, labels, message in [(src, tmp_path / "short.txt", short),
                                  (tmp_path / "a.pt", None, "already an actionnet-edge checkpoint"),
                                  (tmp_path / "other.pth", None, "not a layout this reads")]:
        with pytest.raises(ActionNetError, match=message):
            import_weights(path, tmp_path / "c.pt", labels=labels)
    assert not (tmp_path / "c.pt").exists()


def _round_trip(ckpt: Path, out: Path, target: str, streaming: bool):
    from actionnet_edge.export import export_model

    if not target_available(target):
        pytest.skip(f"{target} toolchain not installed")
    res = export_model(ckpt, target, out, size=64, parity_clips=2, streaming=streaming)
    if res.report["parity"].get("skipped"):
        pytest.skip(res.report["parity"]["skipped"])
    assert res.passed, res.report["parity"]


def test_import_export_onnx_streaming_parity(imported, tmp_path):
    """The TSM online model, imported, exported frame by frame: parity of the artifact's steps."""
    _round_trip(imported("tsm_online_mobilenet_v2"), tmp_path / "onnx", "onnx", streaming=True)


ROUND_TRIPS = [(t, "tsm_online_mobilenet_v2", True) for t in ("executorch", "tflite", "coreml")] + [
    (t, "action_net_mobilenet_v2", False) for t in ("onnx", "executorch", "tflite", "coreml")]


@pytest.mark.slow
@pytest.mark.parametrize("target,case,streaming", ROUND_TRIPS)
def test_import_export_parity_other_targets(target, case, streaming, imported, tmp_path):
    _round_trip(imported(case), tmp_path / target, target, streaming)
