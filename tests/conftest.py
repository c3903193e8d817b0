"""Fixtures shared by the test files, each made once per test process. Plain helpers (the tiny
models' constants and builders, frames, videos, which export targets are installed) are in
_helpers.py, for the module-level constants and parametrisations that fixtures cannot serve."""
from __future__ import annotations

from pathlib import Path

import pytest

from _helpers import K, SIZE, export_onnx, export_test_model, moving_square, save_test_checkpoint, tiny_model, write_mp4

CAUSAL_TINY = Path(__file__).resolve().parent / "assets" / "causal_tiny.pt"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """MobileNetV2-ACTION x0.25, T=4, K=5, 64 px, random weights with logits of order 1 (tiny.pt)."""
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
    """One tiny ONNX export folder per test process (MobileNetV2-ACTION x0.25, T=4, 64 px, K=5
    classes, random weights with spread-out BN statistics), shared by the demo test files."""
    out = tmp_path_factory.mktemp("demo") / "tiny_onnx"
    return export_onnx(tiny_model(), [f"gesture {i}" for i in range(K)], SIZE, out)
