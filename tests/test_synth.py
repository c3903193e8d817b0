"""The synthetic gesture set: determinism, time-reversed twins, Jester layout, clips and mp4."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actionnet_edge.data import Sample, build_dataset
from actionnet_edge.data.synth import LABELS, PAIRS, SyntheticGestures, _rng, make_clips, render_clip, write_jester, write_mp4
from actionnet_edge.errors import ActionNetError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_labels_come_in_time_reversed_pairs():
    assert len(LABELS) == 8 and PAIRS == [(0, 1), (2, 3), (4, 5), (6, 7)]
    for a, b in PAIRS:
        fwd = render_clip(a, _rng(3, "train", 11), 12, 40, 40)
        rev = render_clip(b, _rng(3, "train", 11), 12, 40, 40)
        assert np.array_equal(fwd[::-1], rev)  # same draw, played backwards
        assert not np.array_equal(fwd, rev)


def test_render_is_deterministic_and_varied():
    a = render_clip(0, _rng(0, "train", 1), 8, 32, 48)
    assert a.shape == (8, 32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_clip(0, _rng(0, "train", 1), 8, 32, 48))
    assert not np.array_equal(a, render_clip(0, _rng(0, "train", 2), 8, 32, 48))
    assert not np.array_equal(a, render_clip(0, _rng(0, "val", 1), 8, 32, 48))
    assert a.std() > 10  # not a flat image


def test_direction_of_motion():
    """Swiping Right moves the object right: the frame difference centroid moves with it."""
    clip = render_clip(0, _rng(0, "train", 0), 16, 64, 64).astype(np.float32)
    first, last = clip[0], clip[-1]
    diff = np.abs(last - first).sum(-1)
    xs = np.arange(64)[None, :]
    gained = (np.abs(last - clip[8]).sum(-1) * xs).sum() / np.abs(last - clip[8]).sum()
    lost = (np.abs(first - clip[8]).sum(-1) * xs).sum() / np.abs(first - clip[8]).sum()
    assert diff.max() > 50 and gained > lost


def test_dataset_contract():
    ds = build_dataset("synthetic", None, "val", segments=4, size=32, train=False, mean=MEAN, std=STD, n=10)
    assert isinstance(ds, SyntheticGestures) and len(ds) == 10 and ds.labels == LABELS
    s = ds[3]
    assert isinstance(s, Sample) and s.clip.shape == (4, 3, 32, 32) and s.clip.dtype == torch.float32
    assert s.label == 3 and s.name == "synth-val-000003"
    assert torch.equal(s.clip, ds[3].clip)  # evaluation is deterministic
    assert abs(float(s.clip.mean())) < 3
    assert ds.flip_map[0] == 1 and ds.flip_map[4] == 5 and ds.flip_map[2] == 2
    frames, label = ds.raw(3)
    assert frames.shape[0] == 16 and label == 3
    tr = SyntheticGestures("train", 4, 32, MEAN, STD, train=True, n=5, crops=1)
    assert tr[0].clip.shape == (4, 3, 32, 32)
    multi = SyntheticGestures("val", 4, 32, MEAN, STD, train=False, n=2, clips=2, crops=3)
    assert multi[0].clip.shape == (6, 4, 3, 32, 32)


def test_make_clips():
    c = make_clips(3, segments=4, size=32)
    assert c["frames"].shape == (3, 4, 32, 32, 3) and c["frames"].dtype == np.uint8
    assert c["clips"].shape == (3, 4, 3, 32, 32) and c["labels"].tolist() == [0, 1, 2]
    back = torch.from_numpy(c["frames"]).permute(0, 1, 4, 2, 3).float() / 255
    norm = (back - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(norm, c["clips"], atol=0.01)


def test_write_jester_layout_reads_back(tmp_path):
    out = write_jester(tmp_path / "synth", train=8, val=4, size="24x32", frames=6, seed=1)
    assert (out / "jester-v1-labels.csv").read_text().splitlines() == LABELS
    rows = (out / "jester-v1-validation.csv").read_text().splitlines()
    assert rows[0] == "9;Swiping Right" and len(rows) == 4
    frames = sorted((out / "20bn-jester-v1" / "9").iterdir())
    assert [f.name for f in frames] == [f"{i:05d}.jpg" for i in range(1, 7)]
    ds = build_dataset("jester", out, "val", segments=4, size=24, train=False, mean=MEAN, std=STD)
    assert len(ds) == 4 and ds[1].label == 1 and ds[1].clip.shape == (4, 3, 24, 24)
    via_synth = build_dataset("synthetic", out, "train", segments=4, size=24, train=True, mean=MEAN, std=STD)
    assert len(via_synth) == 8
    with pytest.raises(ActionNetError, match="not empty"):
        write_jester(out, train=1, val=1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_write_mp4_roundtrip(tmp_path):
    import av

    clip = render_clip(6, _rng(0, "val", 0), 10, 33, 48)
    path = write_mp4(clip, tmp_path / "zoom.mp4")
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape == (32, 48, 3)
    assert np.abs(frames[5].astype(int) - clip[5, :32].astype(int)).mean() < 12
    with pytest.raises(ActionNetError, match="uint8 frames"):
        write_mp4(np.zeros((2, 8, 8)), tmp_path / "bad.mp4")


def test_cli_synth(tmp_path):
    from click.testing import CliRunner

    from actionnet_edge.cli.main import main

    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "s"), "--train", "3", "--val", "2",
                                  "--size", "16x20", "--frames", "4"])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "s" / "jester-v1-train.csv").read_text().splitlines()) == 3
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "t"), "--size", "big"])
    assert r.exit_code == 2 and "Error: size must be HxW" in r.output
    assert not (tmp_path / "t").exists()
