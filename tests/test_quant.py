"""PT2E quantization: QAT a few steps on a tiny model, convert, int8 ExecuTorch export of the
QAT checkpoint, QAT with the litert quantizer and the int8 .tflite of that checkpoint, QAT
checkpoint round trip, and bad QAT checkpoints.

Each QAT run and export happens once per module (they are the slow part: export + prepare +
convert of the graph).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _helpers import ARCH
from actionnet_edge.checkpoint import default_preprocess, read_checkpoint, save_checkpoint
from actionnet_edge.data.synth import LABELS
from actionnet_edge.errors import ActionNetError
from actionnet_edge.models import create_model
from actionnet_edge.quant import (QAT_FORMAT, check_qat_state, float_edge_from_qat, load_qat_checkpoint,
                                  make_quantizer, quantize)

T, S = 4, 32
pytestmark = pytest.mark.slow


def _recipe(backend: str = "xnnpack"):
    from actionnet_edge.train.config import parse_recipe

    return parse_recipe({
        "model": {"arch": ARCH, "temporal": "action", "width_mult": 0.25, "dropout": 0.0},
        "data": {"dataset": "synthetic", "segments": T, "size": S, "num_train": 16, "num_val": 8, "workers": 0},
        "train": {"epochs": 1, "batch_size": 4, "lr": 0.01, "lr_steps": [], "log_every": 1},
        "qat": {"backend": backend, "epochs": 2, "lr": 0.001, "calib_batches": 2, "freeze_observer_epoch": 1,
                "freeze_bn_epoch": 1},
    })


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = create_model(ARCH, "action", T, len(LABELS), 0.25, dropout=0.0).eval()
    path = tmp_path_factory.mktemp("float") / "tiny.pt"
    save_checkpoint(path, m, list(LABELS), default_preprocess(m, S))
    return path


@pytest.fixture(scope="module")
def qat_run(float_ckpt, tmp_path_factory):
    from actionnet_edge.quant.qat import run_qat

    out = tmp_path_factory.mktemp("qat") / "run"
    report = run_qat(_recipe(), out, init=float_ckpt, max_steps=4, device="cpu")
    return out, report


def test_qat_runs_and_reports(qat_run):
    out, report = qat_run
    assert (out / "last.pt").is_file() and (out / "metrics.jsonl").is_file()
    saved = json.loads((out / "qat_report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert report["backend"] == "xnnpack" and report["steps"] == 4 and report["val_clips"] == 8
    for key in ("float_top1", "int8_top1", "fake_quant_top1"):
        assert 0.0 <= report[key] <= 1.0
    assert report["int8_minus_float_points"] == round(100 * (report["int8_top1"] - report["float_top1"]), 2)


def test_qat_checkpoint_round_trip(qat_run):
    out, _ = qat_run
    raw = torch.load(out / "last.pt", map_location="cpu", weights_only=True)  # plain tensors and primitives
    assert raw["qat"]["format"] == QAT_FORMAT and raw["qat"]["input_shape"] == [1, T, 3, S, S]
    qc = load_qat_checkpoint(out / "last.pt")
    assert qc.backend == "xnnpack" and qc.labels == list(LABELS) and len(qc.sha256) == 64
    edge = qc.edge_model()
    sd = qc.state["state_dict"]
    for k, v in edge.state_dict().items():
        if k in sd:
            assert torch.equal(v, sd[k]), k
    # the banded temporal convs stayed banded (gradient masks) and the STE channel mean stayed 1/C
    from actionnet_edge.models.edge import EdgeSTE

    ste = next(m for m in edge.modules() if isinstance(m, EdgeSTE))
    w = ste.conv.weight
    far = [(i, j) for i in range(T) for j in range(T) if abs(i - j) > 1]
    assert far and all(torch.all(w[i, j] == 0) for i, j in far)
    assert torch.allclose(ste.mean.weight, torch.full_like(ste.mean.weight, 1.0 / ste.mean.weight.shape[1]))


def test_qat_weights_changed(qat_run, float_ckpt):
    from actionnet_edge.checkpoint import load_checkpoint
    from actionnet_edge.models.edge import to_edge

    out, _ = qat_run
    qc = load_qat_checkpoint(out / "last.pt")
    before = to_edge(load_checkpoint(float_ckpt).model).state_dict()
    after = qc.edge_model().state_dict()
    changed = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(changed) > 10


def test_int8_export_of_qat_checkpoint(qat_run, tmp_path):
    from actionnet_edge.export import EXPORTERS, export_model
    from actionnet_edge.export.parity import Thresholds

    if "executorch" not in EXPORTERS:
        pytest.skip("executorch exporter not registered")
    out, _ = qat_run
    # 4 steps of QAT on a random tiny model: its int8-vs-float gap means nothing, so the gate
    # here is the .pte against the converted PyTorch int8 model it was lowered from (below)
    th = Thresholds(min_sqnr_db=0.0, min_top1_int8=0.5)
    res = export_model(out / "last.pt", "executorch", tmp_path / "pte", precision="int8", parity_clips=8,
                       thresholds=th)
    report = json.loads((res.output / "report.json").read_text())
    assert res.artifact.suffix == ".pte" and report["quantization"]["method"] == "qat"
    assert report["parity"]["passed"]
    assert report["parity"]["vs_quantized_pytorch"]["cosine"] >= 0.99
    # the reference of a QAT checkpoint is its fake-quantized model (what QAT trained)
    assert report["parity"]["reference"] == "fake-quant QAT model"
    assert "fake-quantized" in report["quantization"]["parity_reference"]


@pytest.fixture(scope="module")
def litert_qat_export(float_ckpt, tmp_path_factory):
    """QAT with the litert quantizer (chosen by ``backend=``, the recipe says xnnpack), then
    the int8 .tflite of that QAT checkpoint, run in LiteRT."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from actionnet_edge.export import export_model
    from actionnet_edge.export.parity import Thresholds
    from actionnet_edge.quant.qat import run_qat

    root = tmp_path_factory.mktemp("qat_litert")
    report = run_qat(_recipe("xnnpack"), root / "run", init=float_ckpt, backend="litert", max_steps=4, device="cpu")
    # 4 QAT steps on a random tiny model (tiny, nearly equal logits): int8 vs float and top-1
    # mean nothing; the gate is the .tflite's cosine against the converted PyTorch int8 model
    th = Thresholds(min_sqnr_db=0.0, min_top1_int8=0.0)
    res = export_model(root / "run" / "last.pt", "tflite", root / "tflite", precision="int8", parity_clips=8,
                       thresholds=th)
    return report, res


def test_int8_tflite_export_of_litert_qat_checkpoint(litert_qat_export):
    report, res = litert_qat_export
    assert report["backend"] == "litert" and report["recipe"]["qat"]["backend"] == "litert"
    assert res.report["quantization"]["method"] == "qat" and res.report["quantization"]["backend"] == "litert"
    p = res.report["parity"]
    assert p["verified"] and p["passed"]
    assert p["vs_quantized_pytorch"]["cosine"] >= 0.99
    assert p["reference"] == "fake-quant QAT model"
    assert res.report["convert"]["tensor_types"].get("INT8", 0) > 100
    assert res.metadata["quantization"]["method"] == "qat"


def _corrupt(src: Path, dst: Path, **qat_changes) -> Path:
    raw = read_checkpoint(src)
    raw["qat"] = {**raw["qat"], **qat_changes}
    torch.save(raw, dst)
    return dst


def test_bad_qat_checkpoints(qat_run, float_ckpt, tmp_path):
    out, _ = qat_run
    with pytest.raises(ActionNetError, match="float checkpoint, not a QAT one"):
        load_qat_checkpoint(float_ckpt)
    bad = _corrupt(out / "last.pt", tmp_path / "b1.pt", backend="tpu", input_shape=[1, T, 3, S])
    with pytest.raises(ActionNetError, match=r"qat.backend must be one of.*input_shape"):
        load_qat_checkpoint(bad)
    bad = _corrupt(out / "last.pt", tmp_path / "b2.pt", input_shape=[1, T + 1, 3, S, S])
    with pytest.raises(ActionNetError, match="frames but the model has"):
        load_qat_checkpoint(bad)
    bad = _corrupt(out / "last.pt", tmp_path / "b3.pt", state_dict={"x": "not a tensor"})
    with pytest.raises(ActionNetError, match="qat.state_dict must map names to tensors"):
        load_qat_checkpoint(bad)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes((out / "last.pt").read_bytes()[:1000])
    with pytest.raises(ActionNetError, match="not a valid checkpoint"):
        load_qat_checkpoint(trunc)


def test_qat_state_checks_without_a_graph(qat_run):
    out, _ = qat_run
    qc = load_qat_checkpoint(out / "last.pt")
    edge = qc.edge_model()
    with pytest.raises(ActionNetError, match="trained for the xnnpack quantizer, not coreml"):
        quantize(edge, "coreml", qat_state=qc.state)
    with pytest.raises(ActionNetError, match="invalid QAT state"):
        check_qat_state({"format": "nope"})
    wrong = {**qc.state, "state_dict": {k: v for i, (k, v) in enumerate(qc.state["state_dict"].items()) if i}}
    with pytest.raises(ActionNetError, match="QAT state does not match"):
        float_edge_from_qat({**qc.config, "width_mult": 0.5}, wrong)


def test_unknown_backend():
    with pytest.raises(ActionNetError, match="unknown quantization backend 'xnnpak'.*Did you mean 'xnnpack'"):
        make_quantizer("xnnpak", qat=True)


def test_qat_cli_bad_input(float_ckpt, tmp_path):
    from click.testing import CliRunner

    from actionnet_edge.cli.main import main

    recipe = tmp_path / "r.yaml"
    import yaml

    raw = _recipe().to_dict()
    raw["data"]["segments"] = T + 2
    recipe.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(main, ["qat", str(recipe), "--init", str(float_ckpt), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "data.segments=6" in r.output and "4 frames" in r.output
    r = CliRunner().invoke(main, ["qat", str(recipe), "--init", str(tmp_path / "missing.pt")])
    assert r.exit_code == 2 and "checkpoint not found" in r.output
    r = CliRunner().invoke(main, ["qat", str(recipe), "--backend", "tpu"])
    assert r.exit_code == 2 and "tpu" in r.output
