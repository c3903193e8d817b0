"""CoreML exporter: fp16 and int8 (PT2E with CoreMLQuantizer, iOS 17) ML programs converted on
any OS; what Linux can check (reload, I/O, MIL ops, metadata); predict skipped with its reason
off macOS. One conversion per precision per module."""
from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from _helpers import ARCH, embedded_part
from actionnet_edge.export import RuntimeUnavailable
from actionnet_edge.models import create_model

pytest.importorskip("coremltools")

from actionnet_edge.export.coreml import EXPORTER, read_embedded_metadata  # noqa: E402
from actionnet_edge.models.edge import to_edge  # noqa: E402

pytestmark = pytest.mark.slow  # whole-model conversions

T, S, K = 4, 64, 5
META = {"labels": [f"g{i}" for i in range(K)], "segments": T, "size": S, "model": {"arch": ARCH}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(ARCH, "action", T, K, 0.25, dropout=0.0).eval()


@pytest.fixture(scope="module")
def fp16(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("coreml") / "m_fp16.mlpackage"
    info = EXPORTER.convert(to_edge(model), torch.zeros(1, T, 3, S, S), "fp16", path, metadata=META)
    return path, info


def test_fp16_package_checked_on_linux(fp16):
    path, info = fp16
    assert path.is_dir() and (path / "Manifest.json").is_file()
    c = info["linux_checks"]
    assert c["reloads"] and c["model_type"] == "mlProgram" and info["deployment_target"] == "iOS16"
    assert c["inputs"] == [{"name": "clips", "shape": [1, T, 3, S, S], "dtype": "float32"}]
    assert c["outputs"][0]["name"] == "logits"
    ops = c["mil_ops"]
    assert ops.get("conv", 0) > 20 and "sigmoid" in ops  # the edge form: 2-D convs only
    assert not any("conv3d" in k or "conv_3d" in k for k in ops)
    assert ops.get("cast", 0) >= 1  # fp16 compute: fp32 input cast to fp16
    assert read_embedded_metadata(path) == META
    assert {"actionnet_edge", "labels"} <= set(c["metadata_keys"])


@pytest.fixture(scope="module")
def int8_export(model, tmp_path_factory):
    """export_model: PTQ calibrated on synthetic clips -> int8 .mlpackage -> parity (macOS only)."""
    from actionnet_edge.checkpoint import default_preprocess, save_checkpoint
    from actionnet_edge.export import export_model
    from actionnet_edge.export.parity import Thresholds

    root = tmp_path_factory.mktemp("coreml_int8")
    save_checkpoint(root / "tiny.pt", model, META["labels"], default_preprocess(model, S))
    th = Thresholds(min_sqnr_db=5.0, min_top1_int8=0.5)  # macOS only: PTQ of a random tiny model, loose
    return export_model(root / "tiny.pt", "coreml", root / "out", precision="int8", calib_clips=8, parity_clips=8,
                        thresholds=th)


def test_int8_package_checked_on_linux(int8_export):
    res = int8_export
    info = res.report["convert"]
    c = info["linux_checks"]
    assert res.artifact.is_dir() and c["reloads"] and c["model_type"] == "mlProgram"
    assert info["deployment_target"] == "iOS17"  # int8 activations need iOS 17
    assert c["inputs"] == [{"name": "clips", "shape": [1, T, 3, S, S], "dtype": "float32"}]
    assert [o["name"] for o in c["outputs"]] == ["logits"]
    ops = c["mil_ops"]
    assert ops.get("quantize", 0) > 10 and ops.get("dequantize", 0) > 10  # int8 activations
    assert ops.get("constexpr_affine_dequantize", 0) > 20 or ops.get("constexpr_blockwise_shift_scale", 0) > 20
    assert ops.get("conv", 0) > 20 and not any("conv3d" in k for k in ops)
    assert read_embedded_metadata(res.artifact) == embedded_part(res.metadata)
    assert res.metadata["quantization"]["method"] == "ptq" and res.metadata["quantization"]["backend"] == "coreml"


def test_int8_predict_skipped_off_macos(int8_export):
    p, c = int8_export.report["parity"], int8_export.report["convert"]["linux_checks"]
    if platform.system() == "Darwin":
        assert p["verified"] and p["passed"] and c["predict"] == "available"
    else:
        assert p == {"verified": False, "skipped": "CoreML runtime needs macOS"}
        assert c["predict"] == "skipped: CoreML runtime needs macOS"


def test_predict_needs_macos(model, fp16):
    path, _ = fp16
    if platform.system() == "Darwin":
        run = EXPORTER.load(path)
        x = torch.randn(2, T, 3, S, S)
        with torch.no_grad():
            ref = model(x).numpy()
        np.testing.assert_allclose(run(x.numpy()), ref, atol=5e-2 * max(1.0, np.abs(ref).max()))
    else:
        with pytest.raises(RuntimeUnavailable, match="CoreML runtime needs macOS"):
            EXPORTER.load(path)
