"""`demo run --save`: the video is written in the container its suffix names, or refused before
the work; outputs that cannot be written (--save, --json) fail before the loop, in one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from _helpers import moving_square, write_mp4
from actionnet_edge.cli.main import main

FRAMES = 10
#: suffix -> (PyAV's name of the container read back, the file's magic bytes and where they are)
FORMATS = {".avi": ("avi", 8, b"AVI "), ".mp4": ("mp4", 4, b"ftyp"), ".mkv": ("matroska", 0, b"\x1a\x45\xdf\xa3"),
           ".mov": ("mov", 4, b"ftyp")}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_mp4(moving_square(FRAMES), tmp_path_factory.mktemp("save") / "in.mp4")


@pytest.fixture(scope="module")
def run(tiny_onnx_export):
    """``run(video, *options)``: `demo run` of the tiny ONNX export on ``video``, every frame."""
    def invoke(video: Path, *extra: str):
        return CliRunner().invoke(main, ["demo", "run", "--artifact", str(tiny_onnx_export), "--video", str(video),
                                         "--stride", "1", *extra])
    return invoke


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_save_writes_the_container_its_suffix_names(suffix, video, run, tmp_path):
    import av

    out = tmp_path / f"annotated{suffix}"
    r = run(video, "--save", str(out))
    assert r.exit_code == 0, r.output
    name, at, magic = FORMATS[suffix]
    assert out.read_bytes()[at:at + len(magic)] == magic
    with av.open(str(out)) as c:
        assert name in c.format.name.split(",")
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape[1] >= 320  # annotated: enlarged for the overlay text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


@pytest.mark.parametrize("name", ["clip.gif", "clip", "clip.MP5"])
def test_save_with_an_unknown_suffix_is_refused_before_the_work(name, video, run, tmp_path):
    r = run(video, "--save", str(tmp_path / name))
    assert r.exit_code == 2
    suffix = Path(name).suffix.lower() or "(no suffix)"
    assert r.stderr.strip() == (f"Error: --save {tmp_path / name}: cannot tell the video format from '{suffix}'; "
                                "valid: .avi, .mkv, .mov, .mp4")
    assert "model:" not in r.stdout and list(tmp_path.iterdir()) == []  # refused before the model was opened


@pytest.mark.parametrize("flag,name", [("--save", "x.avi"), ("--json", "x.json")])
@pytest.mark.parametrize("where,meaning", [("/sys", "Permission denied"), ("FILE/sub", "Not a directory")])
def test_unwritable_outputs_fail_before_the_loop(flag, name, where, meaning, video, run, tmp_path):
    (tmp_path / "FILE").write_text("x")
    folder = where.replace("FILE", str(tmp_path / "FILE"))
    out = f"{folder}/{name}"
    r = run(video, flag, out)
    assert r.exit_code == 2, r.output
    probe = "/sys" if where == "/sys" else str(tmp_path / "FILE")
    assert r.stderr.strip() == f"Error: cannot write {flag} {out}: {meaning} ({probe})"
    assert "model:" not in r.stdout and sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


def test_json_written_with_the_run(video, run, tmp_path):
    """The check does not get in the way: a writable --json in a new folder is written."""
    out = tmp_path / "new" / "run.json"
    r = run(video, "--json", str(out))
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["frames"] == FRAMES
