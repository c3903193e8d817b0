"""Golden files for the Android and iOS apps: the Python reference (demo/window.py) still
reproduces every committed file, the generator still writes them, and the preprocessing
they pin down agrees with an independent implementation (torch's bilinear resize + crop)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actionnet_edge.demo.window import SlidingWindow, read_metadata, softmax

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
MANIFEST = json.loads((GOLDEN / "cases.json").read_text())
CASES = {c["name"]: c for c in MANIFEST["cases"]}


def load(case: dict, key: str) -> np.ndarray:
    spec = case["arrays"][key]
    dtype = np.uint8 if spec["dtype"] == "uint8" else np.dtype("<f4")
    data = np.fromfile(GOLDEN / spec["file"], dtype=dtype)
    assert data.size == int(np.prod(spec["shape"])), f"{spec['file']}: size does not match its shape"
    return data.reshape(spec["shape"])


def meta_of(case: dict) -> dict:
    return json.loads((GOLDEN / case["metadata"]).read_text())


def _generator():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_manifest_covers_stride_alpha_and_orientation():
    assert MANIFEST["format"] == "actionnet-edge.golden/1"
    assert {c["stride"] for c in CASES.values()} >= {1, 2}
    assert {c["alpha"] for c in CASES.values()} >= {0.0, 0.5}
    shapes = [c["arrays"]["frames.u8"]["shape"] for c in CASES.values()]
    assert any(h > w for _, h, w, _ in shapes) and any(w > h for _, h, w, _ in shapes)
    for c in CASES.values():
        assert sum(c["ready"]) == len(c["clips"]) == c["arrays"]["scores.f32"]["shape"][0] >= 2


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_reproduces_golden(name, tmp_path):
    """Replay the committed frames and logits through SlidingWindow: the same ready flags,
    clips, preprocessed frames, smoothed scores and top-3 as committed."""
    case = CASES[name]
    (tmp_path / "metadata.json").write_text((GOLDEN / case["metadata"]).read_text())
    meta = read_metadata(tmp_path)  # the golden metadata passes the demos' validation
    frames, pre = load(case, "frames.u8"), load(case, "preprocessed.f32")
    logits, scores = load(case, "logits.f32"), load(case, "scores.f32")
    win = SlidingWindow.from_metadata(meta, stride=case["stride"], alpha=case["alpha"])
    ready, clips = [], []
    for f in frames:
        ready.append(win.push(f))
        if ready[-1]:
            clips.append(win.clip())
    assert ready == case["ready"]
    for clip, idx in zip(clips, case["clips"], strict=True):
        assert clip.shape == (1, meta["segments"], 3, meta["size"], meta["size"]) and clip.dtype == np.float32
        np.testing.assert_allclose(clip[0], pre[idx], rtol=0, atol=MANIFEST["tolerance"]["preprocessed"])
    for row, want, top in zip(logits, scores, case["top3"], strict=True):
        got = win.update(row)
        np.testing.assert_allclose(got, want, rtol=0, atol=MANIFEST["tolerance"]["scores"])
        assert [label for label, _ in win.top(3)] == [label for label, _ in top]
    assert np.allclose(scores.sum(1), 1.0, atol=1e-6)


def test_generator_writes_the_committed_files(tmp_path):
    gen = _generator()
    out = tmp_path / "golden"
    gen.write(out)
    fresh = json.loads((out / "cases.json").read_text())

    def split_top3(manifest):  # top-3 scores compared with a tolerance, everything else exactly
        m = json.loads(json.dumps(manifest))
        scores = [[p for c in m["cases"] for row in c["top3"] for _, p in row]]
        for c in m["cases"]:
            c["top3"] = [[label for label, _ in row] for row in c["top3"]]
        return m, np.array(scores)

    (a, sa), (b, sb) = split_top3(fresh), split_top3(MANIFEST)
    assert a == b, "tests/golden is stale: run python scripts/make_golden.py"
    np.testing.assert_allclose(sa, sb, atol=2e-6)
    for case in MANIFEST["cases"]:
        assert json.loads((out / case["metadata"]).read_text()) == meta_of(case)
        for spec in case["arrays"].values():
            a = np.fromfile(out / spec["file"], np.uint8)
            b = np.fromfile(GOLDEN / spec["file"], np.uint8)
            if spec["dtype"] == "uint8":
                assert np.array_equal(a, b), spec["file"]
            else:  # float bytes may differ in the last bit across libm builds
                np.testing.assert_allclose(a.view("<f4"), b.view("<f4"), rtol=1e-6, atol=1e-6, err_msg=spec["file"])


def test_crop_only_case_is_an_exact_crop():
    """resize == shorter side: no interpolation, the frame is centre-cropped and normalised."""
    case = CASES["crop_only"]
    meta, frames, pre = meta_of(case), load(case, "frames.u8"), load(case, "preprocessed.f32")
    s = meta["size"]
    h, w = frames.shape[1:3]
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = frames[:, y0:y0 + s, x0:x0 + s].astype(np.float64) / 255.0
    want = ((crop - meta["mean"]) / np.asarray(meta["std"])).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(pre, want, atol=1e-6)


@pytest.mark.parametrize("name", ["landscape", "portrait_stride2"])
def test_preprocessing_matches_torch_bilinear(name):
    """The reference's one-pass resize+crop equals torch's bilinear resize (half-pixel
    centres, no antialias) to round(side * scale) followed by a centre crop."""
    case = CASES[name]
    meta, frames, pre = meta_of(case), load(case, "frames.u8"), load(case, "preprocessed.f32")
    kept = frames[:: case["stride"]]
    s, h, w = meta["size"], frames.shape[1], frames.shape[2]
    resize = meta.get("resize") or int(np.floor(s * 256 / 224 + 0.5))
    scale = resize / min(h, w)
    rh, rw = int(np.floor(h * scale + 0.5)), int(np.floor(w * scale + 0.5))
    x = torch.from_numpy(kept).permute(0, 3, 1, 2).double()
    big = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=False)
    y0, x0 = (rh - s) // 2, (rw - s) // 2
    crop = big[:, :, y0:y0 + s, x0:x0 + s] / 255.0
    mean, std = torch.tensor(meta["mean"]).view(1, 3, 1, 1), torch.tensor(meta["std"]).view(1, 3, 1, 1)
    want = ((crop - mean.double()) / std.double()).float().numpy()
    np.testing.assert_allclose(pre, want, rtol=0, atol=1e-4 * max(1.0, 1 / min(meta["std"]) / 255))


def test_scores_are_the_ema_of_softmax():
    """Independent recomputation of the smoothing from the committed logits."""
    for case in CASES.values():
        logits, scores, a = load(case, "logits.f32"), load(case, "scores.f32"), case["alpha"]
        s = None
        for row, want in zip(logits, scores):
            p = softmax(row.astype(np.float64))
            s = p if s is None else a * s + (1 - a) * p
            np.testing.assert_allclose(want, s, atol=1e-7)


_JARS = [Path("/usr/share/java") / j for j in ("junit4.jar", "hamcrest-core.jar", "com.android.json.jar", "kotlin-stdlib.jar")]


def _streaming_metadata(path: Path) -> Path:
    """The metadata.json `export --streaming --precision int8 --target tflite` writes for a tiny
    causal model, the phone's form (no conversion: the exporter's own build_metadata +
    streaming_section + add_streaming; its state is float32 at the interface, as the fp32 step's)."""
    from actionnet_edge.checkpoint import default_preprocess
    from actionnet_edge.export.metadata import build_metadata
    from actionnet_edge.export.streaming import add_streaming, streaming_section
    from actionnet_edge.models import create_model
    from actionnet_edge.models.streaming import to_streaming

    m = create_model("mobilenet_v2", "action", 4, 5, 0.25, dropout=0.0, causal=True).eval()
    from actionnet_edge.export import EXPORTERS

    stream, size = to_streaming(m).set_state_layout(EXPORTERS["tflite"].stream_state_layout), 64  # as a .tflite's
    meta = build_metadata(target="tflite", precision="int8", artifact="model_int8_streaming.tflite", layout="NCHW",
                          labels=[f"g{i}" for i in range(5)], segments=stream.window, size=size,
                          preprocess=default_preprocess(m, size), model_config=m.config,
                          checkpoint_name="causal.pt", checkpoint_sha256="0" * 64)
    section = streaming_section(stream, size, "int8")
    assert section["state_dtype"] == "float32" and "state_quantization" in section
    path.write_text(json.dumps(add_streaming(meta, section)))
    return path


def _json_number(v: float) -> float | str:
    """A figure for expected.json: strict JSON has no inf/NaN, so those become strings ("Infinity")."""
    v = float(v)
    return v if np.isfinite(v) else ("NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))


def _selftest_folder(dest: Path, src: Path | None = None) -> Path:
    """A folder for the apps' SelfTest tests: the vectors.json + vectors.bin of ``src`` (already in
    ``dest`` when None) and expected.json, the Python judge's figures and checks when the app's
    output is the host runtime's tensor (the PyTorch reference's when the vectors have none)."""
    from actionnet_edge.export.vectors import read_vectors
    from actionnet_edge.verify.check import judge

    dest.mkdir(parents=True, exist_ok=True)
    if src is not None:
        for name in ("vectors.json", "vectors.bin"):
            shutil.copy(src / name, dest / name)
    vec = read_vectors(dest)
    ref = "host_runtime" if "host_runtime" in vec.tensors else "pytorch"
    out = {"logits": vec.tensors[ref]}
    if vec.stream:
        out["frame_logits"] = vec.tensors[f"{ref}_frame_logits"]
    row = judge(vec, out)
    figures = {k: {f: _json_number(x) for f, x in v.items()} for k, v in row.items() if isinstance(v, dict) and k != "checks"}
    expected = {"output": ref, "frame_output": f"{ref}_frame_logits" if vec.stream else None, "figures": figures,
                "checks": [[k, bool(ok)] for k, ok in row["checks"].items()], "passed": bool(row["passed"])}
    (dest / "expected.json").write_text(json.dumps(expected, indent=1))
    return dest


def _stream_vectors(dest: Path) -> Path:
    """A streaming step's vectors as the exporter writes them (``write_vectors`` with a tiny causal
    model, 2 clips of 4 frames at 32 px; no artifact, so no host runtime tensor), marked int8, the
    phone's form, whose frame logits are judged by SQNR (a float stream's by cosine is covered by the
    JUnit test's own small vectors)."""
    from _helpers import export_test_model

    from actionnet_edge.export.parity import Thresholds
    from actionnet_edge.export.vectors import write_vectors
    from actionnet_edge.models.streaming import to_streaming

    dest.mkdir(parents=True)
    stream = to_streaming(export_test_model(causal=True, temporal_noise=0.05))
    clips = torch.randn(4, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    meta = {"artifact": "model_int8_streaming.onnx", "target": "onnx", "precision": "int8", "layout": "NCHW"}
    write_vectors(dest, None, dest / meta["artifact"], meta, Thresholds(), None, None, stream, clips)
    return _selftest_folder(dest)


@pytest.mark.skipif(shutil.which("kotlinc") is None or not all(j.exists() for j in _JARS),
                    reason="needs Debian's kotlin, junit4 and libandroid-json-java (apt-get install kotlin junit4 libandroid-json-java)")
@pytest.mark.slow  # Kotlin compile and JVM run, a tiny ONNX export
def test_android_mirror_passes_its_junit_tests_on_the_jvm(tmp_path, tiny_onnx_export):
    """Compile the Android app's GestureWindow.kt + StreamingState.kt + SelfTest.kt and their JUnit
    tests with kotlinc and run them on the JVM against tests/golden, a streaming metadata.json, and
    the test vectors of a real export (the tiny ONNX one) and of a streaming step, with the Python
    judge's figures for them (no Gradle or Android SDK needed for the pure classes)."""
    import os

    env = dict(os.environ, STREAMING_METADATA=str(_streaming_metadata(tmp_path / "metadata.json")),
               SELFTEST_VECTORS=str(_selftest_folder(tmp_path / "vectors", tiny_onnx_export)),
               SELFTEST_STREAM_VECTORS=str(_stream_vectors(tmp_path / "stream_vectors")))
    r = subprocess.run(["bash", str(ROOT / "android_demo" / "jvm_tests.sh")], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "OK (18 tests)" in r.stdout, r.stdout[-3000:]
