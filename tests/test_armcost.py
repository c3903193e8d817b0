"""ARM64 instruction counts (`bench --arm-cost`): the plugin's output parsed, the goals judged on
counted rows, and under emulation the counter on tiny LiteRT artifacts: the same count twice, a
larger count for a larger model, and a clear error when the guest marks nothing. The emulation
tests need the QEMU with plugins built into the cache (``ensure_plugin_qemu``, several minutes, so
never at test time) and the ARM64 runtimes of ``actionnet_edge.arm64``; they are skipped,
with the reason, where either is missing."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from _helpers import ARCH
from actionnet_edge.bench.armcost import GuestEnv, count_artifact, count_regions, guest_environment, parse_regions
from actionnet_edge.arm64 import locate_plugin_qemu
from actionnet_edge.arm64.cache import debian_mirror
from actionnet_edge.arm64.guest import RUNNER_SOURCE, cache_root, locate
from actionnet_edge.bench.armcost_report import goals, markdown, write_report
from actionnet_edge.errors import ActionNetError


def test_parse_regions_counts_and_errors():
    assert parse_regions("region 0 120\nregion 1 118\nend 2 9000\n", "x") == [120, 118]
    with pytest.raises(ActionNetError, match="no marked region"):
        parse_regions("end 0 123456\n", "x")
    with pytest.raises(ActionNetError, match="x: unbalanced marker close"):
        parse_regions("error unbalanced marker close after 0 regions\nend 0 5\n", "x")
    with pytest.raises(ActionNetError, match="never closed"):
        parse_regions("region 0 10\nerror region 1 never closed\nend 1 50\n", "x")


def _row(variant, precision, mode, cpu, n, runtime="executorch", size=1000):
    return {"runtime": runtime, "variant": variant, "precision": precision, "mode": mode, "cpu": cpu,
            "instructions": n, "spread_ppm": 0.0, "size_bytes": size}


def test_goals_on_counted_rows(tmp_path):
    rows = [_row("action", "int8", "clip", "cortex-a76", 600), _row("action", "int8", "step", "cortex-a76", 90),
            _row("action", "fp32", "step", "cortex-a76", 200), _row("tsm", "int8", "clip", "cortex-a76", 580),
            _row("action", "fp32", "clip", "cortex-a76", 1000), _row("action", "int8", "clip", "cortex-a55", 700),
            _row("action", "fp32", "clip", "cortex-a55", 1300, size=10),
            {"runtime": "executorch", "variant": "action", "precision": "int8", "mode": "step", "cpu": "cortex-a55",
             "skipped": "int8 streaming export is not supported"}]
    by = {g["goal"]: g for g in goals(rows)}
    assert by["executorch: int8 ACTION step / int8 clip on cortex-a76"]["status"] == "met"  # 0.15 <= 1/6
    assert by["executorch: int8 / fp32 ACTION step on cortex-a76"]["status"] == "met"  # 0.45
    over = by["executorch: ACTION over TSM, int8 clip on cortex-a76"]
    assert over["status"] == "met" and over["value"] == pytest.approx(600 / 580 - 1, abs=1e-4)
    assert by["executorch: int8 / fp32 ACTION clip on cortex-a76"]["status"] == "missed"  # 0.6
    assert by["executorch: int8 / fp32 ACTION clip on cortex-a55"]["status"] == "missed"  # 0.54
    assert not any(g.startswith("litert") for g in by)  # a runtime not counted has no goals to list
    lone = {g["goal"]: g for g in goals(rows[:1])}
    assert lone["executorch: int8 / fp32 ACTION clip on cortex-a76"]["status"] == "not measured"
    report = write_report(rows, tmp_path / "out")
    assert json.loads((tmp_path / "out/report.json").read_text())["rows"][0]["instructions"] == 600
    md = (tmp_path / "out/report.md").read_text()
    assert md == markdown(report) and "instructions, not milliseconds" in md and "| 600 |" in md


def test_mirror_from_the_machines_apt_sources(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    with pytest.raises(ActionNetError, match="apt has no Debian source configured"):
        debian_mirror(apt)
    (apt / "sources.list.d" / "a.sources").write_text(
        "# URIs: http://old.example/debian\nTypes: deb\nURIs: http://mirror.example/debian-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n")
    assert debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list").write_text("#deb http://x.example/debian bookworm main\n"
                                      "deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert debian_mirror(apt) == "http://one.example/debian"


def test_runner_folder_follows_its_source(tmp_path):
    import hashlib

    with pytest.raises(ActionNetError, match="missing"):
        locate(tmp_path)
    digest = hashlib.sha256(RUNNER_SOURCE.read_bytes()).hexdigest()[:12]
    for d in ("qemu-aarch64", "sysroot/usr/bin/python3.11", "site", f"executorch-{digest}/runner"):
        (tmp_path / d).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / d).write_text("")
    assert locate(tmp_path).runner.parent.name == f"executorch-{digest}"
    assert cache_root(tmp_path) == tmp_path


def test_cli_refuses_other_files(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    res = subprocess.run([sys.executable, "-m", "actionnet_edge", "bench", "--arm-cost", "--artifact", str(onnx),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode != 0 and "counts .pte and .tflite files" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


# --- under emulation ---------------------------------------------------------------------------

def _emulation():
    pq = locate_plugin_qemu()
    if pq is None:
        pytest.skip("QEMU with TCG plugins is not built in the cache (ensure_plugin_qemu(): a 5-minute build, "
                    "not done at test time)")
    from actionnet_edge.arm64 import locate

    try:
        env = locate()
    except ActionNetError as e:
        pytest.skip(f"the ARM64 runtimes are not set up: {e}")
    return pq, GuestEnv(env.sysroot, env.python, env.site, env.runner)


def _tiny_tflite(path, size: int, width: float):
    from actionnet_edge.models.edge import to_edge
    from actionnet_edge.export.tflite import EXPORTER
    from actionnet_edge.models import create_model

    torch.manual_seed(0)
    model = create_model(ARCH, "action", 2, 3, width, dropout=0.0).eval()
    meta = {"labels": ["a", "b", "c"], "segments": 2, "size": size, "layout": "NCHW"}
    EXPORTER.convert(to_edge(model), torch.zeros(1, 2, 3, size, size), "fp32", path, metadata=meta)
    return path


@pytest.mark.slow
def test_counts_repeat_and_grow_with_the_model(tmp_path):
    pq, guest = _emulation()
    pytest.importorskip("litert_torch")
    small = _tiny_tflite(tmp_path / "small.tflite", 32, 0.25)
    large = _tiny_tflite(tmp_path / "large.tflite", 64, 0.25)
    first = count_artifact(pq, guest, "cortex-a76", small, runs=3)
    again = count_artifact(pq, guest, "cortex-a76", small, runs=3)
    big = count_artifact(pq, guest, "cortex-a76", large, runs=3)
    # one interpreter thread: the same inference costs the same instructions, but for a few ppm of a large model
    # and tens of instructions of Python's own path around invoke() (median of 3 regions)
    assert len(first["regions"]) == 3 and first["instructions"] > 10_000
    assert abs(first["instructions"] - again["instructions"]) <= 200 + 1e-5 * first["instructions"]
    assert big["instructions"] > 2 * first["instructions"]  # 4x the pixels
    print("instructions:", first["instructions"], again["instructions"], big["instructions"])


def test_no_markers_is_a_clear_error(tmp_path):
    pq, guest = _emulation()
    script = tmp_path / "nomark.py"
    script.write_text("print(sum(range(1000)))\n")
    with pytest.raises(ActionNetError, match="no marked region"):
        count_regions(pq, "cortex-a53", guest.sysroot, [guest.python, script], guest_environment(guest),
                      what="nomark.py")
