"""Fixtures shared by the test files, each made once per test process. Plain helpers (the tiny
models' constants and builders, frames, videos, which export targets are installed) are in
_helpers.py, for the module-level constants and parametrisations that fixtures cannot serve."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest

from _helpers import K, SIZE, target_available, export_onnx, export_test_model, moving_square, save_test_checkpoint, tiny_model, write_mp4

CAUSAL_TINY = Path(__file__).resolve().parent / "assets" / "causal_tiny.pt"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """test MobileNetV2-ACTION x0.25 (_helpers.ARCH), T=4, K=5, 64 px, random weights with logits of order 1 (tiny.pt)."""
    return save_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", export_test_model())


@pytest.fixture(scope="session")
def causal_tiny() -> Path:
    """The trained causal MobileNetV2-ACTION x0.25 (T=4, 64 px, 8 synthetic gestures) that ships
    with the tests (made by tests/assets/make_causal_tiny.py)."""
    return CAUSAL_TINY


@pytest.fixture(scope="session")
def gesture_video(tmp_path_factory) -> Path:
    """A 20-frame .mp4 of a coloured square sliding right over a textured background."""
    return write_mp4(moving_square(20), tmp_path_factory.mktemp("video") / "gesture.mp4")


@pytest.fixture(scope="session")
def tiny_onnx_export(tmp_path_factory) -> Path:
    """One tiny ONNX export folder per test process (test MobileNetV2-ACTION x0.25, T=4, 64 px, K=5
    classes, random weights with spread-out BN statistics), shared by the demo test files."""
    out = tmp_path_factory.mktemp("demo") / "tiny_onnx"
    return export_onnx(tiny_model(), [f"gesture {i}" for i in range(K)], SIZE, out)


@pytest.fixture(scope="session")
def bundled_export(tmp_path_factory) -> Callable:
    """``get(target, precision)``: the bundled model exported as ``actionnet-edge export --target
    T --precision P`` does by default (32 calibration and 32 parity clips), as an ExportResult.
    Each folder is made once per test run: the test processes share them (a lock per folder; the
    first process to ask converts, the others read its folder)."""
    from filelock import FileLock

    from actionnet_edge.export import ExportResult, export_model

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bundled-exports"
    root.mkdir(exist_ok=True)

    def get(target: str, precision: str = "fp32") -> ExportResult:
        if not target_available(target):
            pytest.skip(f"{target} toolchain not installed")
        out = root / f"{target}-{precision}"
        with FileLock(f"{out}.lock"):
            if not (out / "report.json").is_file():
                export_model(None, target, out, precision=precision, force=True)
        meta = json.loads((out / "metadata.json").read_text())
        return ExportResult(out, out / meta["artifact"], meta, json.loads((out / "report.json").read_text()))

    return get
