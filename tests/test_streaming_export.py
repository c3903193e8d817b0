"""`export --streaming`, `bench --streaming` and the live demo on a streaming artifact.

A tiny causal MobileNetV2-ACTION (width 0.25, T=4, 64 px); each target is converted once per
session (``_export``); parity runs the default 8 clips = 32 frames as one stream.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _helpers import EXPORT_FILES, SIZE as S, T, export_test_model, moving_square, save_test_checkpoint, target_available, write_mp4
from actionnet_edge.checkpoint import load_checkpoint
from actionnet_edge.cli.main import main
from actionnet_edge.errors import ActionNetError
from actionnet_edge.export import EXPORTERS, RuntimeUnavailable
from actionnet_edge.export.streaming import StreamRunner
from actionnet_edge.models.streaming import to_streaming

pytestmark = pytest.mark.slow  # whole-model conversions

K = 5
LABELS = [f"gesture {i}" for i in range(K)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "causal.pt",
                                export_test_model(causal=True, temporal_noise=0.3), LABELS)


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory) -> Path:
    return save_test_checkpoint(tmp_path_factory.mktemp("ckpt") / "offline.pt",
                                export_test_model(causal=False, temporal_noise=0.3), LABELS)


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


_results: dict = {}


def _export(ckpt: Path, root: Path, target: str):
    """One streaming conversion per target per session."""
    from actionnet_edge.export import export_model

    if target not in _results:
        _results[target] = export_model(ckpt, target, root / target, streaming=True)
    return _results[target]


def _need(target: str) -> None:
    if not target_available(target):
        pytest.skip(f"{target} toolchain not installed")


def _reference(ckpt: Path, target: str = "onnx"):
    """PyTorch's step, its state in the layout ``target``'s artifact carries."""
    return to_streaming(load_checkpoint(ckpt).model).set_state_layout(EXPORTERS[target].stream_state_layout)


@pytest.mark.parametrize("target", list(EXPORTERS))
def test_streaming_export_round_trip(target, ckpt, out_root):
    _need(target)
    res = _export(ckpt, out_root, target)
    exporter = EXPORTERS[target]
    assert res.artifact.name == f"causal_fp32_streaming{exporter.suffix}"
    assert sorted(p.name for p in res.output.iterdir()) == sorted([res.artifact.name, *EXPORT_FILES])
    assert not [p for p in out_root.iterdir() if p.name.startswith(".")]  # no temp folder left

    # metadata.json: the state described exactly as the PyTorch step's state_spec
    meta = json.loads((res.output / "metadata.json").read_text())
    st = meta["streaming"]
    spec = _reference(ckpt, target).state_spec(1, S)
    lay = "NHWC" if target == "tflite" else "NCHW"  # LiteRT's convolutions are NHWC: so is its state
    assert [s.get("layout") for s in st["state"]] == [lay if len(sh) == 4 else None for _, sh in spec]
    assert st["window"] == T == meta["segments"] and st["initial_state"] == "zeros"
    assert st["inputs"][0] == {"name": "frame", "shape": [1, 3, S, S], "dtype": "float32", "layout": "NCHW",
                               "meaning": st["inputs"][0]["meaning"]}
    assert [(i["name"], tuple(i["shape"])) for i in st["inputs"][1:]] == spec
    assert [(s["name"], tuple(s["shape"]), s["output"]) for s in st["state"]] == [(n, sh, n + "_out") for n, sh in spec]
    assert [o["name"] for o in st["outputs"]] == ["logits", "frame_logits", *(n + "_out" for n, _ in spec)]
    assert st["outputs"][0]["shape"] == st["outputs"][1]["shape"] == [1, K]
    assert all(x["dtype"] == "float32" for x in st["inputs"] + st["outputs"])
    assert st["state_floats"] == sum(int(np.prod(s)) for _, s in spec)
    assert meta["input"]["name"] == "frame" and meta["output"]["name"] == "logits" and meta["labels"] == LABELS

    report = json.loads((res.output / "report.json").read_text())
    assert report["streaming"] == {"window": T, "state_tensors": len(spec), "state_floats": st["state_floats"]}
    p = report["parity"]
    if target == "coreml" and not p.get("verified"):
        assert p["skipped"] == "CoreML runtime needs macOS"
        checked = report["convert"]["linux_checks"]  # the spec, checked on Linux: every state named
        assert [i["name"] for i in checked["inputs"]] == [i["name"] for i in st["inputs"]]
        assert [o["name"] for o in checked["outputs"]] == [o["name"] for o in st["outputs"]]
        assert [i["shape"] for i in checked["inputs"]] == [i["shape"] for i in st["inputs"]]
        assert checked["predict"] == "skipped: CoreML runtime needs macOS"
        with pytest.raises(RuntimeUnavailable, match="macOS"):
            StreamRunner.load(exporter, res.artifact, st)
        return
    assert p["verified"] and p["passed"] and p["clips"] == 8 and p["frames"] == 8 * T
    assert p["vs_float"]["cosine"] >= 0.99999 and p["frame_logits_vs_float"]["cosine"] >= 0.99999
    assert p["state_max_abs_err"] < 1e-4

    # the runner in the artifact's own runtime, fed back its own state, against PyTorch's step
    run = StreamRunner.load(exporter, res.artifact, st)
    stream = _reference(ckpt, target)
    state_a, state_t = run.init_state(), stream.init_state(1, S)
    x = torch.randn(3 * T, 1, 3, S, S)
    for f in x:
        logits, frame_logits, state_a = run.step(f.numpy(), state_a)
        with torch.no_grad():
            ref, state_t = stream.step(f, state_t)
        np.testing.assert_allclose(logits, ref.numpy(), atol=1e-4, rtol=1e-4)
    for a, b in zip(state_a, state_t):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)


def test_onnx_embeds_the_streaming_metadata(ckpt, out_root):
    _need("onnx")
    import onnxruntime as ort

    res = _export(ckpt, out_root, "onnx")
    sess = ort.InferenceSession(str(res.artifact))
    embedded = json.loads(sess.get_modelmeta().custom_metadata_map["actionnet_edge.metadata"])
    assert embedded["streaming"] == res.metadata["streaming"]
    assert [i.name for i in sess.get_inputs()] == [i["name"] for i in res.metadata["streaming"]["inputs"]]
    assert [o.name for o in sess.get_outputs()] == [o["name"] for o in res.metadata["streaming"]["outputs"]]


def test_last_frame_consensus_streams_without_a_consensus_state(tmp_path):
    """consensus=last: window 1, no consensus state; the artifact's logits after T frames are the
    clip model's (its last frame's logits)."""
    _need("onnx")
    model = export_test_model(causal=True, temporal_noise=0.3)
    model.config["consensus"] = "last"
    ck = save_test_checkpoint(tmp_path / "last.pt", model, LABELS)
    from actionnet_edge.export import export_model

    res = export_model(ck, "onnx", tmp_path / "onnx-last", streaming=True)
    st = res.metadata["streaming"]
    assert st["window"] == 1 and "consensus" not in [s["name"] for s in st["state"]]
    assert res.parity["passed"]
    run = StreamRunner.load(EXPORTERS["onnx"], res.artifact, st)
    x = torch.randn(1, T, 3, S, S)
    state = run.init_state()
    for t in range(T):
        logits, frame_logits, state = run.step(x[:, t].numpy(), state)
        np.testing.assert_array_equal(logits, frame_logits)
    with torch.no_grad():
        ref = load_checkpoint(ck).model(x)
    np.testing.assert_allclose(logits, ref.numpy(), atol=1e-4, rtol=1e-4)


def _section(n_state: int = 2) -> dict:
    state = [{"name": f"s{i}", "shape": [1, 2, 4, 4], "dtype": "float32", "output": f"s{i}_out"}
             for i in range(n_state)]
    return {"window": 3, "state": state,
            "inputs": [{"name": "frame", "shape": [1, 3, 8, 8]},
                       *({"name": s["name"], "shape": s["shape"]} for s in state)],
            "outputs": [{"name": "logits"}, {"name": "frame_logits"}, *({"name": s["output"]} for s in state)]}


def test_wrong_state_shape_is_a_clear_error(ckpt, out_root):
    calls = []
    run = StreamRunner(lambda xs: calls.append(xs) or [np.zeros((1, K))] * 2 + xs[1:], _section(), "fake.onnx")
    state = run.init_state()
    assert [s.shape for s in state] == [(1, 2, 4, 4)] * 2 and not any(s.any() for s in state)
    frame = np.zeros((1, 3, 8, 8), np.float32)
    run.step(frame, state)
    with pytest.raises(ActionNetError, match=r"state tensor 's1' has shape \(1, 2, 5, 4\), expected \(1, 2, 4, 4\) "
                                             r"\(metadata.json of fake.onnx\)"):
        run.step(frame, [state[0], np.zeros((1, 2, 5, 4), np.float32)])
    with pytest.raises(ActionNetError, match="state has 1 tensors, fake.onnx takes 2"):
        run.step(frame, state[:1])
    with pytest.raises(ActionNetError, match=r"frame has shape \(1, 3, 9, 8\)"):
        run.step(np.zeros((1, 3, 9, 8), np.float32), state)
    assert len(calls) == 1  # nothing bad reached the runtime
    with pytest.raises(ActionNetError, match="malformed 'streaming' section"):
        StreamRunner(None, {"inputs": []}, "x")
    # the same check on a real artifact, before its runtime sees the tensor
    _need("onnx")
    res = _export(ckpt, out_root, "onnx")
    real = StreamRunner.load(EXPORTERS["onnx"], res.artifact, res.metadata["streaming"])
    bad = real.init_state()
    bad[0] = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(ActionNetError, match="state tensor 'place00_prev1' has shape"):
        real.step(np.zeros((1, 3, S, S), np.float32), bad)


def _nothing_left(parent: Path, name: str) -> bool:
    return not (parent / name).exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.mark.parametrize("target", ["onnx", "executorch"])
def test_non_causal_checkpoint_is_a_one_line_error(target, plain_ckpt, tmp_path):
    _need(target)
    r = CliRunner().invoke(main, ["export", "--streaming", "--target", target, "--checkpoint", str(plain_ckpt),
                                  "--output", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: ") and r.stderr.strip().count("\n") == 0
    assert "offline.pt is not a causal model" in r.stderr and "model.causal: true" in r.stderr
    assert "Traceback" not in r.output
    assert _nothing_left(tmp_path, "o")


def test_fp16_pte_or_nhwc_streaming_is_a_one_line_error(ckpt, tmp_path):
    _need("executorch")
    r = CliRunner().invoke(main, ["export", "--streaming", "--target", "executorch", "--precision", "fp16",
                                  "--checkpoint", str(ckpt), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0
    assert "precision for executorch" in r.stderr and _nothing_left(tmp_path, "o")
    r = CliRunner().invoke(main, ["export", "--streaming", "--target", "executorch", "--layout", "NHWC",
                                  "--checkpoint", str(ckpt), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "NCHW frames" in r.stderr and _nothing_left(tmp_path, "o")


# ---- bench --streaming ---------------------------------------------------------------------------


def test_bench_streaming_rows_and_ratio(ckpt, tmp_path):
    _need("onnx")
    from actionnet_edge.bench.report import STREAM_FRAME_OVER_CLIP
    from actionnet_edge.bench.options import BenchOptions
    from actionnet_edge.bench.run import run_bench

    opts = BenchOptions(runtimes=["pytorch", "onnxruntime"], precisions=["fp32"], threads=[1], variants=["action"],
                        warmup=1, runs=3, verify=False, profile=False, streaming=True)
    rep = run_bench(ckpt, None, opts, out=tmp_path / "out", work=tmp_path / "work")
    assert rep["config"]["streaming"] is True
    for rt in ("pytorch", "onnxruntime"):
        clip = [r for r in rep["rows"] if r["runtime"] == rt and r["mode"] == "clip"]
        frame = [r for r in rep["rows"] if r["runtime"] == rt and r["mode"] == "frame"]
        assert len(clip) == len(frame) == 1
        c, f = clip[0], frame[0]
        assert c["status"] == f["status"] == "ok", (c.get("reason"), f.get("reason"))
        assert f["output_shape"] == [1, K] and f["output_finite"] and f["latency_ms_median"] > 0
        assert f["clip_latency_ms_median"] == c["latency_ms_median"]
        assert f["frame_over_clip"] == pytest.approx(f["latency_ms_median"] / c["latency_ms_median"])
        assert f["frame_over_clip_min"] == pytest.approx(f["latency_ms_min"] / c["latency_ms_min"])
        # judged on the step and the clip timed in turns in one process: runs blocks of T steps + a clip
        # (no bound on the ratio itself: at 4 x 64 px a step's fixed per-op cost can exceed a clip's)
        assert f["paired_blocks"] == 3, f.get("paired_error")
        assert f["frame_over_clip_paired"] > 0 and f["paired_step_ms_median"] > 0 and f["paired_clip_ms_median"] > 0
        assert f["streaming_goal_met"] == (f["frame_over_clip_paired"] < STREAM_FRAME_OVER_CLIP)
        assert f["macs"] == round(c["macs"] / T)
        goal = [g for g in rep["goals"] if g["goal"].startswith("streaming per-frame cost") and f" {rt} " in g["goal"]]
        assert len(goal) == 1 and goal[0]["met"] == f["streaming_goal_met"]
        assert goal[0]["value"] == round(f["frame_over_clip_paired"], 3) and "timed in turns" in goal[0]["detail"]
    frame_artifact = Path(next(r["artifact"] for r in rep["rows"]
                               if r["mode"] == "frame" and r["runtime"] == "onnxruntime"))
    assert "streaming" in json.loads((frame_artifact.parent / "metadata.json").read_text())
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r.get("frame_over_clip") for r in on_disk["rows"]] == [r.get("frame_over_clip") for r in rep["rows"]]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Streaming: per frame vs clip" in md and "| action (per frame) | onnxruntime |" in md
    assert ("per-frame median ms | clip median ms (T frames) | frame / clip | frame / clip (min) | "
            "frame / clip (in turns) | under 1/6 |") in md


@pytest.mark.parametrize("target", ["executorch"])
def test_bench_profiles_the_streaming_step(target, ckpt, out_root):
    """Where a streaming goal is missed the report profiles the step too: its own runtime's
    profiler runs the step artifact (ExecuTorch: the state fed back, as the bench times it) and the
    table is per step."""
    _need(target)
    from actionnet_edge.bench.opprofile import profile_rows as _profiles

    res = _export(ckpt, out_root, target)
    runtime = {"executorch": "executorch", "tflite": "litert"}[target]
    row = {"status": "ok", "threads": 1, "variant": "action", "runtime": runtime, "precision": "fp32",
           "mode": "frame", "artifact": str(res.artifact), "segments": T, "size": S}
    key = f"action {runtime} fp32 (1 thr), streaming step"
    prof = _profiles([row], 1)[key]
    assert prof.get("per") == "step", prof["summary"]
    assert prof["source"].startswith("ETDump" if target == "executorch" else "LiteRT profiler"), prof["summary"]
    assert prof["op_calls"] > 0 and f"{prof['op_calls']} op calls per step" in prof["summary"]
    timed = sum(t["ms"] for t in prof["top"])
    assert timed > 0
    if target == "executorch":  # the ops run inside the profiled Method::execute
        assert timed <= prof["method_execute_ms"] * 1.05


def test_bench_streaming_needs_a_causal_checkpoint(plain_ckpt):
    r = CliRunner().invoke(main, ["bench", "--streaming", "--checkpoint", str(plain_ckpt), "--runtimes", "pytorch"])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0
    assert "offline.pt is not a causal model" in r.stderr


# ---- the live demo on a streaming artifact -------------------------------------------------------


def test_demo_runs_a_streaming_artifact_frame_by_frame(ckpt, out_root, tmp_path):
    _need("onnx")
    from actionnet_edge.demo.live import run_live
    from actionnet_edge.demo.runtime import open_artifact
    from actionnet_edge.demo.window import Preprocess, softmax

    folder = _export(ckpt, out_root, "onnx").output
    video = write_mp4(moving_square(20), tmp_path / "gesture.mp4")
    model = open_artifact(folder)
    assert model.stream is not None and "streaming" in model.description
    res = run_live(model, video=video, stride=2, alpha=0.5)
    assert res.frames == 20 and len(res.predictions) == 10 - T + 1  # 10 kept frames, from the T-th on

    # by hand: PyTorch's step on every kept frame, the state carried, softmax + moving average
    import av

    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    pre, stream = Preprocess.from_metadata(model.meta), _reference(ckpt)
    state, scores, expected = stream.init_state(1, S), None, []
    for i, rgb in enumerate(frames[::2]):
        with torch.no_grad():
            logits, state = stream.step(torch.from_numpy(pre(rgb)[None]), state)
        if i + 1 >= T:
            p = softmax(logits.numpy()[0])
            scores = p if scores is None else 0.5 * scores + 0.5 * p
            expected.append((2 * i, scores))
    assert [p.frame for p in res.predictions] == [i for i, _ in expected]
    for pred, (_, s) in zip(res.predictions, expected):
        order = np.argsort(-s, kind="stable")[:3]
        np.testing.assert_allclose([v for _, v in pred.top], s[order], atol=1e-5)

    r = CliRunner().invoke(main, ["demo", "run", "--video", str(video), "--artifact", str(folder), "--stride", "1",
                                  "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "streaming: one inference per frame" in r.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["frames"] == 20 and data["windows"] == 20 - T + 1
