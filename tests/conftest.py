"""Fixtures shared by the test files. Plain helpers (tiny models, checkpoints, frames, videos,
which export targets are installed) are in _helpers.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from _helpers import K, SIZE, export_onnx, tiny_model


@pytest.fixture(scope="session")
def tiny_onnx_export(tmp_path_factory) -> Path:
    """One tiny ONNX export folder per test process (MobileNetV2-ACTION x0.25, T=4, 64 px, K=5
    classes, random weights with spread-out BN statistics), shared by the demo test files."""
    out = tmp_path_factory.mktemp("demo") / "tiny_onnx"
    return export_onnx(tiny_model(), [f"gesture {i}" for i in range(K)], SIZE, out)
