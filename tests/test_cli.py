"""The command line: help, version, the profiler, and one-line errors on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from actionnet_edge import __version__


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionnet_edge", *args], capture_output=True, text=True, timeout=600)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0]


def test_help_lists_commands_and_version():
    proc = run("--help")
    assert proc.returncode == 0
    assert "profile" in proc.stdout
    proc = run("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_profile_json_mobilenet_action():
    proc = run("profile", "--arch", "mobilenet_v2", "--temporal", "action", "--num-classes", "83",
               "--segments", "8", "--size", "224", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data["params"], int) and isinstance(data["macs"], int)
    assert data["params"] == 2_355_455
    assert data["breakdown"] and sum(r["macs"] for r in data["breakdown"]) == data["macs"]


def test_profile_compare_table_and_json():
    proc = run("profile", "--compare", "--width-mult", "0.5", "--size", "112", "--segments", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["method"]: r for r in json.loads(proc.stdout)["rows"]}
    assert list(rows) == ["TSN", "TSM", "STE", "CE", "ME", "ACTION"]
    assert rows["TSN"]["macs"] == rows["TSM"]["macs"] and rows["TSM"]["delta_macs"] == 0
    assert rows["ACTION"]["delta_macs"] > rows["STE"]["delta_macs"] > 0
    text = run("profile", "--compare", "--width-mult", "0.5", "--size", "112", "--segments", "4")
    assert text.returncode == 0 and "ACTION" in text.stdout and "%" in text.stdout


@pytest.mark.parametrize("args,needles", [
    (("profile", "--arch", "mobilenetv2"), ("unknown arch", "Did you mean 'mobilenet_v2'")),
    (("profile", "--temporal", "tsx"), ("unknown temporal module",)),
    (("profile", "--segments", "1"), ("at least 2",)),
    (("profil",), ("unknown command", "Did you mean 'profile'")),
    (("profile", "--size", "big"), ("--size",)),
    (("profile", "--arch", "resnet50", "--width-mult", "0.5"), ("only the MobileNetV2 backbones",)),
])
def test_bad_input_is_one_line(args, needles):
    assert_one_line_error(run(*args), *needles)


def test_missing_and_corrupt_pretrained(tmp_path):
    assert_one_line_error(run("profile", "--size", "64", "--pretrained", str(tmp_path / "missing.pth")), "not found")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage" * 10)
    assert_one_line_error(run("profile", "--size", "64", "--pretrained", str(bad)), "is not a valid pretrained weights file")
    assert not list(tmp_path.glob("*.tmp"))


def test_profile_loads_pretrained(tmp_path):
    import torchvision

    path = tmp_path / "mbv2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None, width_mult=0.5).state_dict(), path)
    proc = run("profile", "--size", "64", "--segments", "2", "--width-mult", "0.5", "--pretrained", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
