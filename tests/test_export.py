"""export_model / `actionnet-edge export`: every registered target at a tiny size, and bad input.

Each conversion runs once per session (module-scoped fixtures); parity uses few clips to stay fast.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _helpers import EXPORT_FILES, SIZE as S, T, export_test_model, save_test_checkpoint, target_available
from actionnet_edge.cli.main import main
from actionnet_edge.export import EXPORTERS, RuntimeUnavailable
from actionnet_edge.export.parity import Thresholds, evaluate

K = 5
LABELS = [f"gesture_{i}" for i in range(K)]
CLIPS = 8  # parity clips in tests (the CLI default is 32)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", export_test_model(), LABELS)


_results: dict = {}


def _export(ckpt: Path, root: Path, target: str, precision: str = "fp32"):
    """One conversion per (target, precision) per session."""
    from actionnet_edge.export import export_model

    key = (target, precision)
    if key not in _results:
        th = Thresholds(min_sqnr_db=5.0, min_top1_int8=0.5)  # PTQ of a random tiny model: loose vs float
        _results[key] = export_model(ckpt, target, root / f"{target}-{precision}", precision=precision,
                                     parity_clips=CLIPS, calib_clips=CLIPS, thresholds=th)
    return _results[key]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.mark.slow  # whole-model conversion
@pytest.mark.parametrize("target", list(EXPORTERS))
def test_export_fp32(target, ckpt, out_root):
    if not target_available(target):
        pytest.skip(f"{target} toolchain not installed")
    res = _export(ckpt, out_root, target)
    exporter = EXPORTERS[target]
    assert res.artifact.exists() and res.artifact.name.endswith(exporter.suffix)
    assert sorted(p.name for p in res.output.iterdir()) == sorted([res.artifact.name, *EXPORT_FILES])
    assert not [p for p in out_root.iterdir() if p.name.startswith(".")]  # no temp folder left
    meta = json.loads((res.output / "metadata.json").read_text())
    assert meta["labels"] == LABELS and meta["segments"] == T and meta["size"] == S
    assert meta["target"] == target and meta["precision"] == "fp32" and meta["layout"] == "NCHW"
    assert meta["artifact"] == res.artifact.name
    assert meta["input"]["shape"] == [1, T, 3, S, S] and meta["output"]["shape"] == [1, K]
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3 and meta["resize"] >= S
    assert len(meta["source"]["sha256"]) == 64 and meta["toolkit_version"] and "torch" in meta["runtime"]
    report = json.loads((res.output / "report.json").read_text())
    assert report["size_bytes"] > 10_000 and report["export_seconds"] > 0
    p = report["parity"]
    if p.get("verified"):
        assert p["passed"] and p["clips"] == CLIPS
        assert p["vs_float"]["cosine"] >= 0.99999 and p["vs_float"]["top1_agreement"] == 1.0
        # the runner itself: same numbers as the PyTorch model on fresh clips
        try:
            run = exporter.load(res.artifact)
        except RuntimeUnavailable:
            return
        x = torch.randn(2, T, 3, S, S)
        with torch.no_grad():
            ref = export_test_model()(x).numpy()
        got = run(x.numpy())
        assert got.shape == (2, K)
        np.testing.assert_allclose(got, ref, atol=1e-3 * max(1.0, np.abs(ref).max()))
    else:
        assert p["skipped"]  # e.g. CoreML on Linux: the reason is recorded


@pytest.mark.slow  # whole-model conversion
def test_executorch_fully_delegated(ckpt, out_root):
    if not target_available("executorch"):
        pytest.skip("executorch not installed")
    conv = _export(ckpt, out_root, "executorch").report["convert"]
    assert conv["delegated_subgraphs"] >= 1
    assert conv["non_delegated_compute_ops"] == {} and conv["fully_delegated"]


@pytest.mark.slow  # whole-model conversion
def test_executorch_embeds_metadata(ckpt, out_root):
    if not target_available("executorch"):
        pytest.skip("executorch not installed")
    from actionnet_edge.export.executorch import read_embedded_metadata

    res = _export(ckpt, out_root, "executorch")
    assert read_embedded_metadata(res.artifact)["labels"] == LABELS



@pytest.mark.slow  # whole-model conversion
def test_executorch_runs_with_torch_at_one_thread_and_restores_it(ckpt, out_root):
    if not target_available("executorch"):
        pytest.skip("executorch not installed")
    from actionnet_edge.export.executorch import one_torch_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with one_torch_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        run = EXPORTERS["executorch"].load(_export(ckpt, out_root, "executorch").artifact)
        assert run(np.zeros((2, T, 3, S, S), np.float32)).shape == (2, K)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

@pytest.mark.slow  # whole-model conversion
def test_onnx_embeds_metadata(ckpt, out_root):
    if not target_available("onnx"):
        pytest.skip("onnx not installed")
    import onnxruntime as ort

    res = _export(ckpt, out_root, "onnx")
    props = ort.InferenceSession(str(res.artifact)).get_modelmeta().custom_metadata_map
    assert json.loads(props["labels"]) == LABELS
    assert json.loads(props["actionnet_edge.metadata"])["segments"] == T


@pytest.mark.slow  # whole-model conversion
def test_executorch_int8_bundled_model(bundled_export):
    """PTQ of the bundled (trained) model, as `export --target executorch --precision int8` does:
    int8 .pte parity in ExecuTorch's runtime. A random tiny model has too little dynamic range for
    meaningful int8 figures, so this uses real weights, gated at the defaults (20 dB SQNR and 98%
    top-1 agreement vs float on 32 clips)."""
    res = bundled_export("executorch", "int8")
    p = res.report["parity"]
    assert p["verified"] and p["passed"]
    assert p["vs_float"]["sqnr_db"] >= 20.0
    # the .pte reproduces the converted PyTorch int8 model it was lowered from
    assert p["vs_quantized_pytorch"]["cosine"] >= 0.999
    assert res.report["quantization"]["method"] == "ptq"
    assert res.report["size_bytes"] < 3_000_000  # the int8 size goal
    assert res.report["convert"]["non_delegated_compute_ops"] == {}
    assert res.metadata["precision"] == "int8"


@pytest.mark.slow  # whole-model conversion
def test_onnx_int8_bundled_model(bundled_export):
    """PTQ of the bundled model to ONNX: the XNNPACK quantizer's int8 graph as QDQ, run in ONNX
    Runtime clip by clip (static batch of 1), against float and the converted PyTorch int8 model."""
    import onnx

    res = bundled_export("onnx", "int8")
    p = res.report["parity"]
    assert p["verified"] and p["passed"] and p["vs_float"]["sqnr_db"] >= 20.0
    assert p["vs_quantized_pytorch"]["sqnr_db"] >= 25.0  # ONNX Runtime's int8 kernels vs PyTorch's int8 reference
    assert res.report["quantization"]["backend"] == "xnnpack" and res.report["size_bytes"] < 3_000_000
    model = onnx.load(str(res.artifact))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert not [n for n in model.graph.node if n.metadata_props]  # no stack traces of this machine in the file
    assert {i.data_type for i in model.graph.initializer if i.dims and i.dims[0] >= 8} >= {onnx.TensorProto.INT8}


def test_parity_math():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, K))
    ok = evaluate("fp32", ref + 1e-7, ref, None, Thresholds())
    assert ok["passed"] and ok["vs_float"]["top1_agreement"] == 1.0
    bad = evaluate("int8", ref + rng.normal(size=ref.shape), ref, ref, Thresholds())
    assert not bad["passed"] and any("sqnr" in f for f in bad["failures"])
    assert abs(bad["vs_float"]["sqnr_db"] - 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - (ref + 1)) ** 2))) < 5


# ----------------------------------------------------------------------------- bad input (CLI)
def _cli(*args):
    return CliRunner().invoke(main, list(args))


def _nothing_left(parent: Path, name: str) -> bool:
    return not (parent / name).exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_unknown_target_suggests(ckpt, tmp_path):
    r = _cli("export", "--target", "executorh", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"))
    assert r.exit_code != 0 and "executorch" in r.output and "Did you mean" in r.output


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint at all")
    r = _cli("export", "--target", "onnx", "--checkpoint", str(bad), "--output", str(tmp_path / "o"))
    assert r.exit_code == 2 and "Error:" in r.output and "checkpoint" in r.output
    assert len(r.output.strip().splitlines()) == 1 and _nothing_left(tmp_path, "o")


def test_arch_mismatch(tmp_path):
    raw_path = save_test_checkpoint(tmp_path / "mismatch.pt", export_test_model(), LABELS)
    raw = torch.load(raw_path, weights_only=True)
    raw["model"]["temporal"] = "shift"  # weights of an ACTION model under a TSM config
    torch.save(raw, raw_path)
    r = _cli("export", "--target", "onnx", "--checkpoint", str(raw_path), "--output", str(tmp_path / "o"))
    assert r.exit_code == 2 and "do not match" in r.output and _nothing_left(tmp_path, "o")


def test_output_exists_needs_force(ckpt, tmp_path):
    (tmp_path / "o").mkdir()
    r = _cli("export", "--target", "onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"))
    assert r.exit_code == 2 and "--force" in r.output


def test_missing_backend_names_extra(ckpt, tmp_path, monkeypatch):
    if "onnx" not in EXPORTERS:
        pytest.skip("no onnx exporter")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    r = _cli("export", "--target", "onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"))
    assert r.exit_code == 2 and "actionnet-edge[onnx]" in r.output and _nothing_left(tmp_path, "o")


def test_precision_not_supported(ckpt, tmp_path):
    if "executorch" not in EXPORTERS:
        pytest.skip("no executorch exporter")
    r = _cli("export", "--target", "executorch", "--precision", "fp16", "--checkpoint", str(ckpt), "--output",
             str(tmp_path / "o"))
    assert r.exit_code == 2 and "fp16" in r.output and "int8" in r.output and _nothing_left(tmp_path, "o")


@pytest.mark.slow  # whole-model conversion
def test_parity_failure_leaves_nothing(ckpt, tmp_path):
    if not target_available("onnx"):
        pytest.skip("onnx not installed")
    r = _cli("export", "--target", "onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"),
             "--precision", "fp16", "--parity-clips", "4", "--min-cosine-fp16", "1.0")  # fp16 is never exact
    assert r.exit_code == 2 and "parity failed" in r.output and "cosine" in r.output
    assert _nothing_left(tmp_path, "o")


@pytest.mark.slow  # whole-model conversion
def test_no_verify_says_so(ckpt, tmp_path):
    if not target_available("onnx"):
        pytest.skip("onnx not installed")
    r = _cli("export", "--target", "onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "o"), "--no-verify", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["parity"]["verified"] is False and "nothing was checked" in report["parity"]["skipped"]


@pytest.mark.slow  # whole-model conversion
def test_executorch_nhwc_pte_takes_camera_layout_clips(ckpt, tmp_path):
    """--layout NHWC: the .pte's input is (1, T, S, S, 3) and its logits equal the NCHW model's."""
    if not target_available("executorch"):
        pytest.skip("executorch not installed")
    from actionnet_edge.export import export_model

    res = export_model(ckpt, "executorch", tmp_path / "pte", layout="NHWC", parity_clips=4, calib_clips=4)
    assert res.passed and res.metadata["input"]["shape"] == [1, T, S, S, 3]
    clips = np.random.default_rng(0).standard_normal((2, T, 3, S, S)).astype(np.float32)
    nhwc = EXPORTERS["executorch"].load(res.artifact, layout="NHWC")(clips)
    from actionnet_edge.checkpoint import load_checkpoint

    with torch.no_grad():
        want = load_checkpoint(ckpt).model.eval()(torch.from_numpy(clips)).numpy()
    np.testing.assert_allclose(nhwc, want, atol=1e-4)
    with pytest.raises(Exception):  # NCHW clips do not fit an NHWC program
        EXPORTERS["executorch"].load(res.artifact, layout="NCHW")(clips)
