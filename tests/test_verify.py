"""Test vectors beside every export and `actionnet-edge verify` on the host, under ARM64 emulation
(QEMU user mode: the aarch64 runtimes, cortex-a53 and cortex-a76) and over adb (dry run).

The bundled model is exported once per target and precision in the test run (conftest.py's
bundled_export: ExecuTorch, TFLite: fp32 and int8; ONNX: fp32); the streaming step comes from a
tiny causal model. The emulated runtimes come from the cache that .ci/run sets up (nothing
downloads here): without it these tests skip, in CI fail.
"""
from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import export_test_model, save_test_checkpoint, target_available
from actionnet_edge.errors import ActionNetError
from actionnet_edge.export import RuntimeUnavailable
from actionnet_edge.export.parity import Thresholds
from actionnet_edge.export.vectors import FORMAT, read_vectors, write_vectors

ARTIFACTS = [("executorch", "fp32"), ("executorch", "int8"), ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32")]
STREAM_TARGETS = ["executorch", "tflite", "onnx"]
CPUS = "cortex-a53,cortex-a76"
pytestmark = pytest.mark.slow  # every test here verifies real exports of the bundled or a tiny model
_done: dict = {}


def _cli(*args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionnet_edge", "-q", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verify")


def _bundled(bundled_export, target: str, precision: str) -> Path:
    """The bundled model's export folder for (target, precision), made once per test run."""
    return bundled_export(target, precision).output


def _stream(root: Path, target: str) -> Path:
    if not target_available(target):
        pytest.skip(f"{target} toolchain not installed")
    key = ("stream", target)
    if key not in _done:
        from actionnet_edge.export import export_model

        ckpt = root / "causal.pt"
        if not ckpt.exists():
            save_test_checkpoint(ckpt, export_test_model(causal=True, temporal_noise=0.3), list("abcde"))
        _done[key] = export_model(ckpt, target, root / f"{target}-stream", streaming=True, parity_clips=2).output
    return _done[key]


@pytest.fixture(scope="module")
def emulator():
    from actionnet_edge import arm64

    try:
        return arm64.locate()
    except ActionNetError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must set up the ARM64 emulation first (.ci/run): {e}")
        pytest.skip(str(e))


def _tampered(folder: Path, dest: Path) -> Path:
    """A copy of an fp32 export with one byte of the classifier's bias changed (an exponent bit of
    the first value: x 2^128, or 2.0 where it was 0), which every logit row shows."""
    from actionnet_edge.checkpoint import load_checkpoint

    shutil.copytree(folder, dest)
    meta = json.loads((dest / "metadata.json").read_text())
    bias = load_checkpoint(None).model.fc.bias.detach().numpy().astype("<f4")
    data = bytearray((dest / meta["artifact"]).read_bytes())
    at = data.find(bias[:4].tobytes())
    if at < 0:
        pytest.fail(f"the classifier's bias is not in {meta['artifact']}")
    data[at + 3] ^= 0x40
    (dest / meta["artifact"]).write_bytes(bytes(data))
    return dest


# ------------------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("target,precision", ARTIFACTS)
def test_vectors_written_and_read_back(target, precision, bundled_export):
    folder = _bundled(bundled_export, target, precision)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["vectors"]["format"] == FORMAT and meta["vectors"]["kind"] == "clips"
    vec = read_vectors(folder)
    n, k = vec.meta["count"], meta["num_classes"]
    assert vec.tensors["input"].shape == (n, *meta["input"]["shape"])
    names = {"input", "pytorch", "host_runtime"} | ({"quantized_pytorch"} if precision == "int8" else set())
    assert set(vec.tensors) == names
    for name in names - {"input"}:
        assert vec.tensors[name].shape == (n, 1, k)
    # the host runtime's outputs are the artifact's own on these inputs
    from actionnet_edge.verify.run import open_folder, run_host

    got = run_host(open_folder(folder))["logits"]
    np.testing.assert_allclose(got, vec.tensors["host_runtime"][:, 0], rtol=0, atol=1e-6)
    assert vec.meta["tolerances"]["min_sqnr_db"] == Thresholds().min_sqnr_db


@pytest.mark.parametrize("target", STREAM_TARGETS)
def test_stream_vectors_written_and_read_back(target, root):
    folder = _stream(root, target)
    vec = read_vectors(folder)
    assert vec.stream and vec.tensors["input"].shape[1:] == (1, 3, 64, 64)
    assert {"pytorch_frame_logits", "host_runtime_frame_logits"} <= set(vec.tensors)


class _NoRuntime:
    def load(self, path, layout="NCHW"):
        raise RuntimeUnavailable("no runtime here")


def test_vectors_without_a_host_runtime_and_malformed_ones(tmp_path):
    model = export_test_model().eval()
    meta = {"artifact": "m.x", "target": "coreml", "precision": "fp32", "layout": "NHWC", "runtime": {}}
    clips = torch.randn(8, 4, 3, 64, 64)
    section = write_vectors(tmp_path, _NoRuntime(), tmp_path / "m.x", meta, Thresholds(), model, None, None, clips)
    vec = read_vectors(tmp_path)
    assert section["count"] == 4 and set(vec.tensors) == {"input", "pytorch"}
    assert vec.tensors["input"].shape == (4, 1, 4, 64, 64, 3)  # stored in the artifact's layout
    (tmp_path / "vectors.bin").write_bytes((tmp_path / "vectors.bin").read_bytes()[:100])
    with pytest.raises(ActionNetError, match="too short"):
        read_vectors(tmp_path)
    (tmp_path / "vectors.json").unlink()
    with pytest.raises(ActionNetError, match="has no test vectors"):
        read_vectors(tmp_path)


# ------------------------------------------------------------------------------------- host


def test_verify_host_passes_then_fails_on_a_tampered_artifact(bundled_export, tmp_path):
    folders = [str(_bundled(bundled_export, t, p)) for t, p in ARTIFACTS]
    r = _cli("verify", *folders, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == len(ARTIFACTS) and all(row["passed"] for row in rows)
    assert all(row["vs_host_runtime"]["max_abs_err"] == 0 for row in rows)  # the same runtime, the same machine
    bad = _tampered(_bundled(bundled_export, "onnx", "fp32"), tmp_path / "bad")
    r = _cli("verify", str(bad))
    assert r.returncode == 1 and "FAILED" in r.stderr
    assert re.search(r"host runtime +[0-9.e+-]+ .* no: max abs err", r.stdout), r.stdout


# ------------------------------------------------------------------------------------- emulated


def test_verify_arm64_bundled_artifacts(bundled_export, emulator):
    folders = [str(_bundled(bundled_export, t, p)) for t, p in ARTIFACTS]
    r = _cli("verify", *folders, "--on", "arm64", "--cpu", CPUS, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted({row["cpu"] for row in rows}) == CPUS.split(",")
    assert len(rows) == 2 * len(ARTIFACTS) and all(row["passed"] for row in rows)
    for row in rows:
        print(f"{row['cpu']} {row['artifact']}: max abs err vs host runtime {row['vs_host_runtime']['max_abs_err']:.3g}"
              f", vs pytorch {row['vs_pytorch']['max_abs_err']:.3g}")


def test_verify_arm64_fails_on_a_tampered_artifact(bundled_export, emulator, tmp_path):
    bad = [str(_tampered(_bundled(bundled_export, t, "fp32"), tmp_path / t)) for t in ("executorch", "onnx")]
    r = _cli("verify", *bad, "--on", "arm64", "--cpu", "cortex-a53", "--json")
    assert r.returncode == 1, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 2 and not any(row["passed"] for row in rows)


def test_verify_arm64_streaming_step(root, emulator):
    folders = [str(_stream(root, t)) for t in STREAM_TARGETS]
    r = _cli("verify", *folders, "--on", "arm64", "--cpu", "cortex-a53", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert all(row["kind"] == "stream" and row["passed"] for row in rows) and len(rows) == len(STREAM_TARGETS)
    assert all("frame_logits_vs_pytorch" in row for row in rows)


# ------------------------------------------------------------------------------------- adb


def test_verify_adb_dry_run_prints_the_commands(bundled_export):
    folder = _bundled(bundled_export, "executorch", "int8")
    r = _cli("verify", str(folder), "--on", "adb:SERIAL1", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("adb -s SERIAL1 shell mkdir -p /data/local/tmp/actionnet_edge/")
    assert any(" push " in ln and ln.split()[4].endswith("vectors.bin") for ln in lines)
    assert "actionnet_edge_runner" in lines[-2] and lines[-1].startswith("adb -s SERIAL1 pull ")
    r = _cli("verify", str(folder), "--on", "adb:SERIAL1")
    assert r.returncode == 2 and "--runner" in r.stderr
    r = _cli("verify", str(_bundled(bundled_export, "onnx", "fp32")), "--on", "adb:SERIAL1", "--dry-run")
    assert r.returncode == 2 and "only ExecuTorch" in r.stderr
