"""The XNNPACK layout fold (export/xnnpack_layout.py): fewer transposes, the same numbers.

One ACTION block between two convolutions (as in MobileNetV2) is lowered with and without the
fold; the ExecuTorch runtime runs both, ETDump counts the kernels each runs.
"""
import tempfile
from pathlib import Path

import pytest
import torch

pytest.importorskip("executorch.exir")

from actionnet_edge.bench.opprofile import read_etdump  # noqa: E402
from actionnet_edge.export.executorch import EXPORTER  # noqa: E402
from _layout_block import C, HW, T, layout_block  # noqa: E402

pytestmark = pytest.mark.slow  # whole-model conversions


def _lower(model, precision, fold, tmp: Path):
    x = torch.randn(1, T, C, HW, HW)
    if precision == "int8":
        from actionnet_edge.quant import quantize

        model = quantize(model, "xnnpack", calib=[torch.randn(2, T, C, HW, HW) for _ in range(4)], example=x)
    path = tmp / f"{precision}-{fold}.pte"
    info = EXPORTER.convert(model, x, precision, path, metadata={}, fold_layout=fold)
    from executorch.extension.pybindings import portable_lib as et

    m = et._load_for_executorch(str(path), enable_etdump=True)
    out = m.forward([x])[0]
    m.write_etdump_result_to_file(str(tmp / "r.etdp"), str(tmp / "r.debug"))
    calls = read_etdump(tmp / "r.etdp")["calls"]
    transposes = sum(v for k, v in calls.items() if k.startswith("Transpose"))
    with torch.no_grad():
        ref = model(x)
    return {"out": out, "ref": ref, "transposes": transposes, "folded": info["layout_transposes_folded"]}


@pytest.fixture(scope="module")
def lowered():
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, precision in (("action", "fp32"), ("action", "int8"), ("causal", "fp32"), ("tsm", "int8")):
            for fold in (False, True):
                runs[kind, precision, fold] = _lower(layout_block(kind), precision, fold, Path(tmp))
    return runs


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fold_removes_the_action_block_transposes(lowered, precision):
    before, after = lowered["action", precision, False], lowered["action", precision, True]
    assert before["folded"] == 0 and after["folded"] >= 7
    # left: the input and output transposes of the delegate and STE's two (frames to channels and back)
    assert after["transposes"] == 4
    assert before["transposes"] - after["transposes"] >= 9


@pytest.mark.parametrize("kind,precision", [("action", "fp32"), ("action", "int8"), ("causal", "fp32"),
                                            ("tsm", "int8")])
def test_fold_keeps_the_numbers(lowered, kind, precision):
    before, after = lowered[kind, precision, False], lowered[kind, precision, True]
    # a reshape in place of transposes moves bytes differently, computes nothing differently
    torch.testing.assert_close(after["out"], before["out"], rtol=0, atol=1e-6)
    tol = 1e-5 if precision == "fp32" else 0.05 * float(before["ref"].abs().max())
    torch.testing.assert_close(after["out"], before["ref"], rtol=0, atol=tol)


def test_fold_never_adds_transposes(lowered):
    for kind, precision in (("causal", "fp32"), ("tsm", "int8")):
        assert lowered[kind, precision, True]["transposes"] <= lowered[kind, precision, False]["transposes"]
