"""CAM: exact against the model's own frame logits, for every backbone and temporal module;
the CLI writes a frames x models PNG grid; bad input gives one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pathlib import Path

from PIL import Image

from actionnet_edge.cam import class_activation_maps, read_clip
from actionnet_edge.checkpoint import default_preprocess, save_checkpoint
from actionnet_edge.cli.main import main
from actionnet_edge.models import create_model

T, SIZE, K = 4, 64, 3
LABELS = ["left", "right", "still"]
WIDTH = int((1.6 * T + 0.8) * 100)  # px: T frame columns and the colour bar, at 100 dpi


def _write_video(path, n=20, size=80):
    """A bright square moving left to right on a dark background, mpeg4 in .mp4."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            img = np.full((size, size, 3), 30, np.uint8)
            x = 4 + i * (size - 24) // n
            img[30:50, x:x + 20] = (250, 200, 40)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return _write_video(tmp_path_factory.mktemp("cam") / "clip.mp4")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    out = {}
    for temporal in ("none", "shift", "action"):
        torch.manual_seed(0)
        m = create_model("mobilenet_v2", temporal, T, K, width_mult=0.25, dropout=0.0)
        torch.nn.init.normal_(m.fc.weight, 0, 0.5)  # a visible classifier for an untrained model
        save_checkpoint(d / f"{temporal}.pt", m, LABELS, default_preprocess(m, SIZE))
        out[temporal] = d / f"{temporal}.pt"
    return out


@pytest.mark.parametrize("arch,temporal", [
    ("mobilenet_v2", "none"), ("mobilenet_v2", "shift"), ("mobilenet_v2", "action"),
    ("mobilenet_v2", "me"), ("resnet50", "action"), ("bninception", "shift"),
])
def test_cam_is_exact_decomposition_of_frame_logits(arch, temporal):
    torch.manual_seed(0)
    width = 0.25 if arch == "mobilenet_v2" else 1.0
    m = create_model(arch, temporal, T, K, width_mult=width, dropout=0.0).eval()
    torch.nn.init.normal_(m.fc.weight, 0, 0.5)
    clip = torch.randn(1, T, 3, SIZE, SIZE)
    res = class_activation_maps(m, clip, target=1)
    assert res.cams.shape[0] == T and res.cams.shape[1] == res.cams.shape[2] == 2  # 64 px / 32
    # spatial mean of the CAM + bias == the frame's logit for the class (global average pooling)
    ref = m.frame_logits(clip)[0, :, 1].detach().numpy()
    np.testing.assert_allclose(res.cams.mean((1, 2)) + m.fc.bias[1].item(), ref, rtol=1e-4, atol=1e-5)
    assert res.cams.std() > 0
    norm = res.normalised(SIZE)
    assert norm.shape == (T, SIZE, SIZE) and norm.min() == 0.0 and abs(norm.max() - 1.0) < 1e-6


def test_default_target_is_prediction():
    torch.manual_seed(1)
    m = create_model("mobilenet_v2", "action", T, K, width_mult=0.25, dropout=0.0).eval()
    torch.nn.init.normal_(m.fc.weight, 0, 0.5)
    clip = torch.randn(1, T, 3, SIZE, SIZE)
    res = class_activation_maps(m, clip)
    assert res.target == int(m(clip).argmax())
    np.testing.assert_allclose(res.probs.sum(), 1.0, rtol=1e-5)


def test_read_clip(video):
    pre = {"size": SIZE, "resize": 73, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    display, clip = read_clip(video, T, pre)
    assert display.shape == (T, SIZE, SIZE, 3) and display.dtype == np.uint8
    assert clip.shape == (1, T, 3, SIZE, SIZE) and clip.dtype == torch.float32
    # the display crops are the clip un-normalised
    back = clip[0].permute(0, 2, 3, 1).numpy() * np.array(pre["std"]) + np.array(pre["mean"])
    np.testing.assert_allclose(display / 255.0, back, atol=0.5 / 255 + 1e-6)
    # the square moves: later frames have their bright pixels further right
    xs = [np.nonzero(f[..., 0] > 150)[1].mean() for f in display]
    assert all(a < b for a, b in zip(xs, xs[1:]))


def test_cli_frame_folder(ckpts, tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(6):
        img = np.full((48, 64, 3), 40, np.uint8)
        img[10:30, 5 + 8 * i:25 + 8 * i] = 220
        Image.fromarray(img).save(d / f"{i + 1:05d}.png")
    out = tmp_path / "f.png"
    r = CliRunner().invoke(main, ["cam", str(d), "-c", str(ckpts["shift"]), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert np.asarray(Image.open(out)).shape[:2] == (2 * 175, WIDTH)


def test_cli_compare_writes_grid(video, ckpts, tmp_path):
    out = tmp_path / "sub" / "cam.png"
    args = ["cam", str(video), "--out", str(out), "--label", "right"]
    for t in ("none", "shift", "action"):
        args += ["--checkpoint", str(ckpts[t])]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "TSN (mobilenet_v2)" in r.output and "TSM" in r.output and "ACTION" in r.output
    assert "'right'" in r.output
    img = np.asarray(Image.open(out).convert("RGB"))
    # 4 rows (input + 3 models) x T columns of panels (1.75 x 1.6 inches at 100 dpi) and the colour bar
    assert img.shape[:2] == (4 * 175, WIDTH)
    assert img.std() > 10
    assert [p.name for p in out.parent.iterdir()] == ["cam.png"]  # no temp file left


def test_cli_json_default_target(video, ckpts, tmp_path):
    import json

    r = CliRunner().invoke(main, ["cam", str(video), "-c", str(ckpts["action"]), "-o", str(tmp_path / "a.png"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["frames"] == T and s["size"] == SIZE and len(s["rows"]) == 1
    assert s["rows"][0]["target"] == s["rows"][0]["top1"]


def test_cli_size_override(video, ckpts, tmp_path):
    """--size runs the (fully convolutional) models at another input side: finer maps."""
    import json

    out = tmp_path / "big.png"
    r = CliRunner().invoke(main, ["cam", str(video), "-c", str(ckpts["none"]), "-c", str(ckpts["action"]),
                                  "-o", str(out), "--size", "96", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["size"] == 96
    assert np.asarray(Image.open(out)).shape[:2] == (3 * 175, WIDTH)


@pytest.mark.parametrize("case,message", [
    ("garbage", "Error: cannot read video"),
    ("missing_video", "Error: video not found"),
    ("missing_ckpt", "Error: checkpoint not found"),
    ("label", "Error: unknown label of action.pt 'rigth'; valid: left, right, still. Did you mean 'right'?"),
    ("out", "Error: --out must be a .png file"),
    ("size", "Error: --size must be an integer of at least 32 px, got 16"),
])
def test_cli_bad_input(case, message, video, ckpts, tmp_path):
    vid, ck, extra, out = str(video), str(ckpts["action"]), [], tmp_path / "x.png"
    if case == "garbage":
        vid = tmp_path / "bad.mp4"
        vid.write_bytes(b"this is not a video" * 100)
    elif case == "missing_video":
        vid = tmp_path / "nope.mp4"
    elif case == "missing_ckpt":
        ck = str(tmp_path / "nope.pt")
    elif case == "label":
        extra = ["--label", "rigth"]
    elif case == "out":
        out = tmp_path / "x.jpg"
    elif case == "size":
        extra = ["--size", "16"]
    r = CliRunner().invoke(main, ["cam", str(vid), "-c", ck, "-o", str(out), *extra])
    assert r.exit_code == 2
    assert message in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error")]) == 1
    assert not out.exists()


def test_figure_names_rows_by_checkpoint_and_has_a_colour_bar(video, ckpts):
    """Each CAM row is titled with its checkpoint, model and class; one colour bar gives the scale."""
    import matplotlib.pyplot as plt

    from actionnet_edge.cam import COLORBAR_LABEL, CamRow, grid_figure

    frames, clip = read_clip(video, T, {"size": SIZE, "mean": [0.5] * 3, "std": [0.25] * 3})
    rows = []
    for name in ("none", "action"):
        torch.manual_seed(0)
        m = create_model("mobilenet_v2", name, T, K, width_mult=0.25, dropout=0.0)
        rows.append(CamRow(f"model {name}", class_activation_maps(m, clip), LABELS[0], f"{name}.pt"))
    fig = grid_figure(frames, rows)
    try:
        bars = [ax for ax in fig.axes if ax.get_ylabel() == COLORBAR_LABEL]
        assert len(bars) == 1 and bars[0].get_ylim() == (0.0, 1.0)
        assert len(fig.axes) == 3 * T + 1  # (input + 2 rows) x T panels + the colour bar
        titles = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and ax is not bars[0]]
        assert titles[0] == "input"
        assert [t.split("\n")[:2] for t in titles[1:]] == [["none.pt", "model none"], ["action.pt", "model action"]]
    finally:
        plt.close(fig)


def test_cli_rows_named_by_checkpoint_file(video, ckpts, tmp_path):
    """Two checkpoints of one name in two folders: each row says which folder."""
    import shutil

    from actionnet_edge.cam import _row_names

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = shutil.copy(ckpts["none"], tmp_path / "a" / "m.pt"), shutil.copy(ckpts["shift"], tmp_path / "b" / "m.pt")
    assert _row_names([Path(a), Path(b), Path(ckpts["action"])]) == ["a/m.pt", "b/m.pt", "action.pt"]


@pytest.mark.parametrize("where,meaning", [("/sys/cam.png", "Permission denied"), ("FILE/sub/cam.png", "Not a directory")])
def test_cli_unwritable_out_fails_before_the_work(where, meaning, video, ckpts, tmp_path):
    """--out that cannot be written: one line naming it and the errno's meaning, before any
    checkpoint is read (a missing checkpoint is not what it reports) and nothing left behind."""
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR.png").mkdir()
    out = where.replace("FILE", str(tmp_path / "FILE")).replace("DIR.png", str(tmp_path / "DIR.png"))
    for ck in (str(ckpts["action"]), str(tmp_path / "missing.pt")):
        r = CliRunner().invoke(main, ["cam", str(video), "-c", ck, "-o", out])
        assert r.exit_code == 2
        assert r.stderr.strip() == f"Error: cannot write --out {out}: {meaning}" + (
            f" ({Path(out).parent.parent})" if meaning == "Not a directory" else " (/sys)"), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR.png", "FILE"]
