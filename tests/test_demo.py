"""The demo logic (demo/window.py) and the Python live demo (`actionnet-edge demo run`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from _helpers import K, SIZE, T, tiny_model
from actionnet_edge.cli.main import main
from actionnet_edge.demo.live import run_live
from actionnet_edge.demo.runtime import open_artifact
from actionnet_edge.demo.window import Preprocess, SlidingWindow, read_metadata, softmax
from actionnet_edge.errors import ActionNetError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _torch_reference(frame: np.ndarray, size: int, resize: int) -> np.ndarray:
    """Independent reference: torch bilinear resize (half-pixel, no antialias) + centre crop."""
    h, w = frame.shape[:2]
    rh, rw = (resize, int(np.floor(w * resize / h + 0.5))) if h <= w else (int(np.floor(h * resize / w + 0.5)), resize)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].double()
    x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)[0]
    y0, x0 = (rh - size) // 2, (rw - size) // 2
    x = x[:, y0:y0 + size, x0:x0 + size] / 255.0
    return ((x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)).float().numpy()


@pytest.mark.parametrize("hw", [(120, 160), (160, 120), (64, 64), (97, 131), (50, 40)])
def test_preprocess_equals_torch_resize_and_centre_crop(hw):
    frame = np.random.default_rng(1).integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    pre = Preprocess(size=56, resize=64, mean=MEAN, std=STD)
    out = pre(frame)
    assert out.shape == (3, 56, 56) and out.dtype == np.float32
    np.testing.assert_allclose(out, _torch_reference(frame, 56, 64), atol=1e-5, rtol=0)


def test_window_stride_ready_and_clip_order():
    meta = {"labels": list("abc"), "segments": 3, "size": 8, "resize": 8, "mean": [0, 0, 0], "std": [1, 1, 1]}
    win = SlidingWindow.from_metadata(meta, stride=2, alpha=0.0)
    frames = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(9)]
    ready = [win.push(f) for f in frames]
    # kept: frames 0, 2, 4, 6, 8; the window is full from the third kept frame (frame 4) on
    assert ready == [False, False, False, False, True, False, True, False, True]
    clip = win.clip()
    assert clip.shape == (1, 3, 3, 8, 8) and clip.dtype == np.float32
    np.testing.assert_allclose(clip[0, :, 0, 0, 0], [40 / 255, 60 / 255, 80 / 255], atol=1e-6)


def test_smoothing_is_an_exponential_moving_average_of_softmax():
    meta = {"labels": ["x", "y", "z"], "segments": 1, "size": 4, "mean": [0] * 3, "std": [1] * 3}
    win = SlidingWindow.from_metadata(meta, alpha=0.75)
    assert win.top() == []
    a, b = np.array([2.0, 0.0, -1.0]), np.array([-1.0, 3.0, 0.0])
    np.testing.assert_allclose(win.update(a), softmax(a))
    s = win.update(b[None])
    np.testing.assert_allclose(s, 0.75 * softmax(a) + 0.25 * softmax(b))
    assert [l for l, _ in win.top(3)] == ["x", "y", "z"] and abs(sum(p for _, p in win.top(3)) - 1) < 1e-9
    with pytest.raises(ActionNetError, match="3 labels"):
        win.update(np.zeros(4))
    with pytest.raises(ActionNetError, match="alpha"):
        SlidingWindow.from_metadata(meta, alpha=1.0)
    with pytest.raises(ActionNetError, match="0 of 1 frames"):
        SlidingWindow.from_metadata(meta).clip()


def test_read_metadata_errors(tmp_path):
    with pytest.raises(ActionNetError, match="not found"):
        read_metadata(tmp_path / "nope")
    with pytest.raises(ActionNetError, match="no metadata.json"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ActionNetError, match="not valid JSON"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"labels": ["a"], "size": 8}))
    with pytest.raises(ActionNetError, match="lacks segments, mean, std"):
        read_metadata(tmp_path)
    good = {"labels": ["a"], "segments": 2, "size": 8, "resize": 4, "mean": [0] * 3, "std": [1] * 3}
    (tmp_path / "metadata.json").write_text(json.dumps(good))
    with pytest.raises(ActionNetError, match="resize"):
        read_metadata(tmp_path)


# ---- the live demo on a generated video --------------------------------------------------------


def _read_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.fixture(scope="module")
def artifact(tiny_onnx_export) -> Path:
    return tiny_onnx_export


@pytest.fixture(scope="module")
def video(gesture_video) -> Path:
    return gesture_video


@pytest.mark.slow  # ONNX export of the tiny model
def test_run_live_matches_window_by_hand(artifact, video, tmp_path):
    """Every prediction equals the artifact's runtime on the window built by hand."""
    model = open_artifact(artifact)
    res = run_live(model, video=video, stride=2, alpha=0.5, save=tmp_path / "out.mp4")
    frames = _read_frames(video)
    assert res.frames == len(frames) == 20
    assert len(res.predictions) == 10 - T + 1  # 10 kept frames, a window of T
    win = SlidingWindow.from_metadata(model.meta, stride=2, alpha=0.5)
    expected = []
    for i, f in enumerate(frames):
        if win.push(f):
            win.update(model.run(win.clip())[0])
            expected.append((i, win.top(3)))
    assert [p.frame for p in res.predictions] == [i for i, _ in expected]
    for p, (_, top) in zip(res.predictions, expected):
        assert [l for l, _ in p.top] == [l for l, _ in top]
        np.testing.assert_allclose([s for _, s in p.top], [s for _, s in top], atol=1e-6)
    # the annotated video: same frames (enlarged x2 to fit the text), the overlay in the corner
    out = _read_frames(tmp_path / "out.mp4")
    assert len(out) == 20 and out[0].shape == (240, 320, 3)
    big = frames[-1].repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(out[-1][:40, :120].astype(int) - big[:40, :120]).mean() > 10
    assert np.abs(out[-1][120:, 160:].astype(int) - big[120:, 160:]).mean() < 10
    assert not list(tmp_path.glob(".out*"))


@pytest.mark.slow  # ONNX export of the tiny model
def test_cli_demo_run_on_video(artifact, video, tmp_path):
    r = CliRunner().invoke(main, ["demo", "run", "--video", str(video), "--artifact", str(artifact),
                                  "--stride", "1", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output + r.stderr
    assert "gesture" in r.stdout and "fps" in r.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["frames"] == 20 and data["windows"] == 20 - T + 1 and data["fps"] > 0
    assert len(data["final"]) == 3 and data["final"][0][0].startswith("gesture ")


def test_cli_demo_run_with_checkpoint_in_pytorch(video, tmp_path):
    from actionnet_edge.checkpoint import default_preprocess, save_checkpoint

    model = tiny_model()
    save_checkpoint(tmp_path / "c.pt", model, [f"gesture {i}" for i in range(K)], default_preprocess(model, SIZE))
    r = CliRunner().invoke(main, ["demo", "run", "--video", str(video), "--checkpoint", str(tmp_path / "c.pt"),
                                  "--stride", "1", "--max-frames", "8", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output + r.stderr
    assert "(PyTorch)" in r.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["frames"] == 8 and data["windows"] == 8 - T + 1


@pytest.mark.parametrize("args, message", [
    (["--camera", "97"], "no camera 97"),
    (["--video", "{garbage}"], "cannot read video"),
    (["--video", "{missing}"], "video not found"),
    ([], "exactly one of --video FILE or --camera N"),
    (["--video", "{video}", "--artifact", "{empty}"], "no metadata.json"),
])
@pytest.mark.slow  # ONNX export of the tiny model
def test_cli_demo_run_bad_input_is_one_line_error(args, message, tmp_path, video, artifact):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0not a video" * 100)
    (tmp_path / "empty").mkdir()
    subs = {"garbage": garbage, "missing": tmp_path / "missing.mp4", "video": video, "empty": tmp_path / "empty"}
    args = [a.format(**subs) for a in args]
    extra = ["--artifact", str(artifact)] if "--artifact" not in args else []
    r = CliRunner().invoke(main, ["demo", "run", *args, *extra, "--save", str(tmp_path / "o.mp4")])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: ") and r.stderr.strip().count("\n") == 0
    assert message in r.stderr
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".o*"))
