"""`actionnet-edge bench`: report structure and units, each runtime's runner on a tiny model,
the adb dry run and the device-output parsers, and the user errors."""
from __future__ import annotations

import json
import platform
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from _helpers import ARCH
from actionnet_edge.bench import adb
from actionnet_edge.bench.machine import _vector_unit, describe, measure_peaks, read_clock_ghz
from actionnet_edge.bench.report import goals, markdown
from actionnet_edge.bench.options import BenchOptions
from actionnet_edge.bench.run import run_bench
from actionnet_edge.bench.runtimes import RUNTIMES, Runtime, measure, summarize
from actionnet_edge.cli.main import main
from actionnet_edge.models import create_model
from actionnet_edge.models.backbones import TEST_MOBILENET_V2_STAGES

TINY = dict(width_mult=0.25, num_classes=5, segments=4, size=64, warmup=1, runs=3, verify=False)  # conftest's tiny_checkpoint
ROW_KEYS = {"variant", "runtime", "precision", "threads", "latency_ms_median", "latency_ms_p90", "peak_rss_mb",
            "file_mb", "macs"}


def _available(runtime: str) -> bool:
    from actionnet_edge.export import EXPORTERS

    rt = RUNTIMES[runtime]
    return rt.missing() is None and (rt.target is None or rt.target in EXPORTERS)


CPU_RUNTIMES = [r for r in ("pytorch", "executorch", "litert", "onnxruntime") if _available(r)]


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_checkpoint) -> dict:
    """One tiny benchmark: ACTION on every CPU runtime with an exporter here, TSN/TSM/ACTION in PyTorch."""
    out = tmp_path_factory.mktemp("bench")
    opts = BenchOptions(runtimes=CPU_RUNTIMES + ["coreml"], precisions=["fp32"], threads=[1], variants=["action"],
                        profile=False, **TINY)
    rep = run_bench(tiny_checkpoint, None, opts, out=out, work=out / "work")
    side = run_bench(tiny_checkpoint, None, BenchOptions(runtimes=["pytorch"], precisions=["fp32"], threads=[1],
                                                         **TINY), out=out / "side", work=out / "work")
    return {"report": rep, "side": side, "out": out}


def _row(rep: dict, **key) -> dict:
    rows = [r for r in rep["rows"] if all(r[k] == v for k, v in key.items())]
    assert len(rows) == 1, (key, rep["rows"])
    return rows[0]


def test_summarize_statistics():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["latency_ms_median"], s["latency_ms_min"], s["runs"]) == (3.0, 1.0, 5)
    assert s["latency_ms_p90"] == pytest.approx(4.6)


def test_machine_floor_is_macs_over_peak_rate():
    m = describe()
    assert m.logical_cores >= 1 and m.physical_cores >= 1 and m.cpu_model
    if m.clock_ghz:
        peak = m.physical_cores * 2 * m.fp32_lanes * m.clock_ghz * 1e9
        assert m.floor_ms(10**9, threads=64) == pytest.approx(1e12 / peak)
        assert m.floor_ms(10**9, 1, "int8") == pytest.approx(m.floor_ms(10**9, 1) / m.int8_macs_per_fp32_mac)
    assert "FMA" in m.assumption and "int8" in m.assumption


def test_zen4_avx512_runs_on_256_bit_fma_units():
    zen4 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "fma avx2 avx512f avx512_vnni"}
    intel = {"vendor_id": "GenuineIntel", "cpu family": "6", "flags": "fma avx2 avx512f"}
    assert _vector_unit(zen4)[1] == 8 and "Zen 4" in _vector_unit(zen4)[0]
    assert _vector_unit(intel) == ("AVX-512", 16)
    zen5 = {"vendor_id": "AuthenticAMD", "cpu family": "26", "flags": "fma avx2 avx512f avx512_vnni"}
    assert _vector_unit(zen5)[1] == 16 and "Zen 5" in _vector_unit(zen5)[0]
    assert _vector_unit({"flags": "fma avx2"}) == ("AVX2+FMA", 8)


def test_clock_is_the_rated_maximum_where_sysfs_has_it(tmp_path):
    (tmp_path / "cpuinfo_max_freq").write_text("3700000\n")  # kHz
    assert read_clock_ghz({"cpu MHz": "2596.1"}, str(tmp_path)) == (3.7, "cpuinfo_max_freq of sysfs cpufreq")
    assert read_clock_ghz({"cpu MHz": "2596.1"}, str(tmp_path / "none")) == pytest.approx(
        (2.5961, "cpu MHz of /proc/cpuinfo"))
    assert read_clock_ghz({}, str(tmp_path / "none")) == (None, "no clock found")
    m = replace(describe(), clock_ghz=3.7, clock_source="cpuinfo_max_freq of sysfs cpufreq")
    m.assumption = ""
    from actionnet_edge.bench.machine import _assumption

    assert "3.7 GHz (cpuinfo_max_freq of sysfs cpufreq)" in _assumption(m)


def test_floor_uses_the_faster_of_theory_and_measurement():
    m = replace(describe(), clock_ghz=1.0, physical_cores=2, fp32_lanes=8, fma_units=2, int8_macs_per_fp32_mac=4)
    assert m.peak_macs_per_s(2) == pytest.approx(32e9)
    m.measured_macs_per_s = {"fp32": {2: 40e9}, "int8": {2: 100e9}}  # faster than theory: the cores boost
    assert m.peak_macs_per_s(2) == pytest.approx(40e9)
    assert m.peak_macs_per_s(2, "int8") == pytest.approx(128e9)  # theory (4 x 32e9) still the faster
    assert m.floor_ms(40 * 10**6, 2) == pytest.approx(1.0)


def test_measure_peaks_records_gemm_rates_and_states_them():
    m = describe()
    measure_peaks(m, [1], n=256)
    assert m.measured_macs_per_s["fp32"][1] > 1e8
    assert m.peak_macs_per_s(1) >= m.measured_macs_per_s["fp32"][1]
    assert "measured square GEMMs" in m.assumption and "fp32 1 thr" in m.assumption


@pytest.mark.parametrize("budget,size", [(1e9, 512), (0.0, 256)])
def test_a_gemm_over_the_budget_is_timed_at_the_probe_size(budget, size, monkeypatch):
    """A slow kernel (torch._int_mm without VNNI: about 16 s a 2048^3 call) is timed small."""
    import actionnet_edge.bench.machine as machine

    timed = []
    monkeypatch.setattr(machine, "GEMM_BUDGET_S", budget)
    monkeypatch.setattr(machine, "_best_rate", lambda fn, macs, repeats=5: timed.append(macs) or 1e9)
    measure_peaks(describe(), [1], n=512)
    assert timed == [size ** 3, size ** 3]  # fp32 and int8


@pytest.mark.slow  # exports and bench runs
@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
def test_each_runtime_runner_measures_the_tiny_model(report, runtime):
    row = _row(report["report"], runtime=runtime, variant="action", precision="fp32", threads=1)
    assert row["status"] == "ok", row.get("reason")
    assert ROW_KEYS <= set(row)
    assert 0 < row["latency_ms_min"] <= row["latency_ms_median"] <= row["latency_ms_p90"]
    assert row["runs"] == 3 and row["output_shape"] == [1, 5] and row["output_finite"]
    assert 10 < row["peak_rss_mb"] < 16000  # MiB of the measuring process alone
    assert row["peak_rss_mb"] >= row["rss_after_load_mb"]
    assert row["file_mb"] > 0 and Path(row["artifact"]).exists()
    assert row["floor_ms"] > 0 and row["x_floor"] == pytest.approx(row["latency_ms_median"] / row["floor_ms"])


def test_coreml_is_skipped_with_the_reason_off_macos(report):
    row = _row(report["report"], runtime="coreml", variant="action", precision="fp32", threads=1)
    if platform.system() != "Darwin":
        assert row["status"] == "skipped" and "macOS" in row["reason"]
        assert row["latency_ms_median"] is None if "latency_ms_median" in row else True


@pytest.mark.slow  # exports and bench runs
def test_report_structure_units_and_files(report):
    rep, out = report["report"], report["out"]
    assert rep["schema"] == "actionnet-edge.bench/1" and rep["created"].endswith("+00:00")
    assert {"cpu_model", "physical_cores", "clock_ghz", "vector", "runtimes", "assumption", "malloc"} <= set(rep["machine"])
    assert rep["machine"]["runtimes"]["pytorch"]  # versions of every runtime
    assert "milliseconds" in rep["units"]["latency_ms_*"] and "MiB" in rep["units"]["peak_rss_mb"]
    assert isinstance(rep["rows"], list) and all(ROW_KEYS <= set(r) for r in rep["rows"])
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(rep["rows"], default=str))
    md = (out / "report.md").read_text()
    assert "| variant | runtime | precision | threads | median ms |" in md and "## Goals" in md
    assert f"- memory allocator: {rep['machine']['malloc']}" in md
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert "GLIBC_TUNABLES=glibc.malloc.mmap_max=0" in rep["machine"]["malloc"]
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # exports and bench runs
@pytest.mark.skipif("executorch" not in CPU_RUNTIMES, reason="executorch not installed")
def test_etdump_profile_counts_each_kernel_kind(report):
    """The per-op profile of the tiny ACTION .pte: every kind's calls per clip and time, and the
    report's table shows them."""
    from actionnet_edge.bench.opprofile import etdump_profile

    row = _row(report["report"], variant="action", runtime="executorch", precision="fp32")
    shape = (1, TINY["segments"], 3, TINY["size"], TINY["size"])
    prof = etdump_profile(Path(row["artifact"]), shape, 1, runs=2, top=50)
    assert prof["partitions"] >= 1 and prof["outside_delegate_ms"] == pytest.approx(0.0, abs=1e-3)
    assert prof["op_calls"] == sum(prof["calls"].values()) == sum(t["calls"] for t in prof["top"])
    kinds = {t["op"]: t for t in prof["top"]}
    # a depthwise conv per inverted residual block; ACTION adds one (3, 1) temporal conv and ME's 3x3 one per module
    blocks = sum(n for _, _, n, _ in TEST_MOBILENET_V2_STAGES)
    places = create_model(ARCH, "action", TINY["segments"], 5, 0.25).num_places
    assert sum(t["calls"] for k, t in kinds.items() if "DWConv" in k) == blocks + 2 * places == 6 + 2 * 3
    assert all(t["ms"] >= 0 for t in prof["top"]) and sum(t["share"] for t in prof["top"]) == pytest.approx(1.0)
    assert f"{prof['op_calls']} op calls per clip" in prof["summary"]
    md = markdown({**report["report"], "profiles": {"action executorch fp32 (1 thr)": prof}})
    dw = next(k for k in kinds if "DWConv" in k)
    assert f"| {dw} | {kinds[dw]['calls']} | " in md


def test_variants_side_by_side_share_the_backbone(report):
    from actionnet_edge.bench.macs import profile_model

    side = report["side"]
    macs = {}
    for v, temporal in (("tsn", "none"), ("tsm", "shift"), ("action", "action")):
        row = _row(side, variant=v, runtime="pytorch")
        assert row["status"] == "ok"
        expected = profile_model(create_model(ARCH, temporal, 4, 5, 0.25), 64)
        assert (row["macs"], row["params"]) == (expected.macs, expected.params)
        macs[v] = row["macs"]
    assert macs["tsn"] == macs["tsm"] < macs["action"]
    # ACTION over TSM is judged on the variants loaded in one process and timed in turns
    goal = next(g for g in side["goals"] if g["goal"].startswith("ACTION overhead over TSM, pytorch fp32"))
    action, tsm = _row(side, variant="action", runtime="pytorch"), _row(side, variant="tsm", runtime="pytorch")
    assert action["runs_in_turns"] == tsm["runs_in_turns"] == TINY["runs"], action.get("in_turns_error")
    assert action["over_tsm_in_turns"] == pytest.approx(
        action["latency_ms_median_in_turns"] / tsm["latency_ms_median_in_turns"] - 1)
    assert goal["value"] == round(action["over_tsm_in_turns"], 3) and "timed in turns" in goal["detail"]
    md = (report["out"] / "side" / "report.md").read_text()
    assert "## Variants timed in turns" in md and f"| pytorch | fp32 | 1 | {_row(side, variant='tsn', runtime='pytorch')['latency_ms_median_in_turns']:.2f} |" in md


def test_goals_ratios_from_rows():
    base = dict(threads=2, status="ok", macs=10**9, file_mb=2.5)
    rows = [
        dict(base, variant="action", runtime="pytorch", precision="fp32", latency_ms_median=300.0),
        dict(base, variant="action", runtime="onnxruntime", precision="fp32", latency_ms_median=40.0, x_floor=1.2),
        dict(base, variant="action", runtime="executorch", precision="int8", latency_ms_median=50.0, x_floor=4.0),
        dict(base, variant="tsm", runtime="executorch", precision="int8", latency_ms_median=40.0),
    ]
    g = {x["goal"]: x for x in goals(rows)}
    assert g["executorch int8 speed-up over PyTorch eager fp32 (action, 2 thr)"]["value"] == 6.0
    assert g["executorch int8 speed-up over PyTorch eager fp32 (action, 2 thr)"]["met"] is True
    assert g["executorch int8 speed-up over ONNX Runtime fp32 (action, 2 thr)"]["met"] is False
    assert g["litert int8 speed-up over PyTorch eager fp32 (action, 2 thr)"]["met"] is None  # not measured
    assert g["ACTION overhead over TSM, executorch int8 (2 thr)"]["value"] == 0.25
    assert g["executorch int8 within 3x of the int8 floor (action, 2 thr)"]["met"] is False
    assert g["onnxruntime fp32 within 1.5x of the fp32 floor (action, 2 thr)"]["met"] is True
    assert g["executorch int8 file size (action)"]["met"] is True


@pytest.mark.slow  # exports and bench runs
def test_cli_json_prints_one_object_with_rows(tmp_path, tiny_checkpoint):
    r = CliRunner().invoke(main, ["bench", "--checkpoint", str(tiny_checkpoint), "--runtimes", "pytorch",
                                  "--precision", "fp32", "--variants", "action", "--threads", "1", "--segments", "2",
                                  "--size", "32", "--warmup", "0", "--runs", "2", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert isinstance(obj["rows"], list) and len(obj["rows"]) == 1
    row = obj["rows"][0]
    assert ROW_KEYS <= set(row) and row["variant"] == "action" and row["runtime"] == "pytorch"
    assert row["latency_ms_median"] > 0 and row["threads"] == 1


@pytest.mark.slow  # exports and bench runs
def test_rounds_alternate_the_order_and_pool_the_runs(tmp_path, tiny_checkpoint, monkeypatch):
    """--rounds 3: every measurement once per round, the variants of one runtime and thread count
    back to back, the order reversed every other round, the runs of all rounds pooled into one
    row (median / p90 / min over all of them)."""
    import actionnet_edge.bench.in_turns as in_turns
    import actionnet_edge.bench.rounds as rounds

    calls: list[str] = []

    def fake_measure(rt, *, artifact, config, shape, threads, warmup, runs, max_seconds=None, streaming=None,
                     interleave=None):
        if interleave:  # the variants-in-turns measurement after the rounds (tested elsewhere)
            return {"error": "not measured in this test"}
        variant = Path(artifact).stem.split("_")[0]
        calls.append(f"{variant}{threads}")
        k = len(calls)
        lat = [float(k), float(k) + 0.5]  # each call's own runs, all distinct
        return {"latencies_ms": lat, "latency_ms_median": lat[0], "latency_ms_p90": lat[1],
                "latency_ms_min": lat[0], "runs": 2, "peak_rss_mb": 100.0 + k}

    monkeypatch.setattr(rounds, "measure", fake_measure)
    monkeypatch.setattr(in_turns, "measure", fake_measure)
    opts = BenchOptions(runtimes=["pytorch"], precisions=["fp32"], threads=[1, 2], variants=["tsm", "action"],
                        rounds=3, profile=False, **{**TINY, "runs": 2})
    rep = run_bench(tiny_checkpoint, None, opts, out=tmp_path, work=tmp_path / "work")
    one = ["tsm1", "action1", "tsm2", "action2"]
    assert calls == one + one[::-1] + one
    tsm = _row(rep, variant="tsm", threads=1)
    assert tsm["runs"] == 6 and tsm["rounds"] == 3 and rep["config"]["rounds"] == 3
    assert tsm["latency_ms_min"] == 1.0 and tsm["latency_ms_median"] == 8.25  # calls 1, 8, 9: 1 1.5 8 8.5 9 9.5
    assert tsm["peak_rss_mb"] == 109.0 and "latencies_ms" not in tsm
    md = (tmp_path / "report.md").read_text()
    assert "in each of 3 rounds" in md
    # each round's median kept; rounds this far apart (1 vs 9 ms) are reported as a changing machine
    assert tsm["latency_ms_round_medians"] == [1.0, 8.0, 9.0]
    assert "## Round medians" in md and "| tsm | pytorch | fp32 | 1 | 1.00, 8.00, 9.00 | 9.00 |" in md
    assert any("speed changed during the run" in n and "differ by more than 30%" in n for n in rep["notes"])
    stable = {"variant": "tsm", "runtime": "litert", "precision": "int8", "threads": 2,
              "latency_ms_round_medians": [10.0, 12.9, 11.0]}
    assert rounds.round_spreads([stable]) == []
    assert rounds.round_spreads([{**stable, "latency_ms_round_medians": [10.0, 13.1]}])[0][0] == "tsm litert int8 2 thr"
    with pytest.raises(adb.ActionNetError, match="--rounds"):
        BenchOptions(rounds=0).validate()


@pytest.mark.slow  # exports and bench runs
def test_exports_are_reused_only_from_the_same_checkpoint_and_code(tmp_path, tiny_checkpoint, monkeypatch):
    """The work folder's artifact is reused when its metadata.json names this checkpoint's sha256
    and this code's (export.metadata.code_sha256); after a code change it is exported again."""
    if not _available("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    import actionnet_edge.bench.sources as sources
    import actionnet_edge.export as export_pkg
    import actionnet_edge.export.metadata as metadata

    exported: list[str] = []
    real = export_pkg.export_model

    def counting(*args, **kwargs):
        exported.append(str(args[1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(export_pkg, "export_model", counting)
    src = sources.Source("action", tiny_checkpoint, {}, None, None, TINY["segments"], TINY["size"])
    opts = BenchOptions(**TINY)
    first, _ = sources.export_artifact(src, "onnxruntime", "fp32", tmp_path, opts)
    again, _ = sources.export_artifact(src, "onnxruntime", "fp32", tmp_path, opts)
    assert first == again and exported == ["onnx"]
    meta = json.loads((first.parent / "metadata.json").read_text())
    assert meta["source"]["code_sha256"] == metadata.code_sha256() and len(metadata.code_sha256()) == 64
    monkeypatch.setattr(metadata, "code_sha256", lambda: "f" * 64)  # as if the export code had changed
    sources.export_artifact(src, "onnxruntime", "fp32", tmp_path, opts)
    assert exported == ["onnx", "onnx"]


# ---------------------------------------------------------------------------------------- phone


ET_SAMPLE = """\
I 00:00:00.000512 executorch:executor_runner.cpp:139] Resetting threadpool with num threads = 4
I 00:00:00.013840 executorch:executor_runner.cpp:180] Model file /data/local/tmp/actionnet_edge/a.pte is loaded.
I 00:00:00.052007 executorch:executor_runner.cpp:290] Model loaded in 38.102000 ms.
I 00:00:00.120111 executorch:executor_runner.cpp:370] Iteration 1 of 5: 61.500000 ms
I 00:00:00.150222 executorch:executor_runner.cpp:370] Iteration 2 of 5: 30.000000 ms
I 00:00:00.180333 executorch:executor_runner.cpp:370] Iteration 3 of 5: 20.000000 ms
I 00:00:00.200444 executorch:executor_runner.cpp:370] Iteration 4 of 5: 22.000000 ms
I 00:00:00.220555 executorch:executor_runner.cpp:370] Iteration 5 of 5: 21.000000 ms
I 00:00:00.220600 executorch:executor_runner.cpp:377] Model executed successfully 5 time(s) in 154.500000 ms.
I 00:00:00.220700 executorch:executor_runner.cpp:381] 1 outputs:
OutputX 0: tensor(sizes=[1, 27], [0.1, ...])
"""

TFL_SAMPLE = """\
INFO: STARTING!
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/actionnet_edge/a.tflite]
INFO: Loaded model /data/local/tmp/actionnet_edge/a.tflite
INFO: The input model file size (MB): 2.61
INFO: Initialized session in 51.2ms.
INFO: Running benchmark for at least 2 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=2 first=98000 curr=41000 min=41000 max=98000 avg=69500 std=28500
INFO: Running benchmark for at least 10 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=24 first=40210 curr=39950 min=38800 max=45100 avg=40125.5 std=1402
INFO: Inference timings in us: Init: 51200, First inference: 98000, Warmup (avg): 69500, Inference (avg): 40125.5
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=12.5 overall=31.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 58.4
"""


def test_parse_executor_runner_drops_warmup_iterations():
    row = adb.parse_executor_runner(ET_SAMPLE, warmup=2)
    assert row["runs"] == 3 and row["latency_ms_median"] == 21.0 and row["latency_ms_min"] == 20.0
    assert row["latency_ms_p90"] == pytest.approx(21.8)
    total_only = "\n".join(ln for ln in ET_SAMPLE.splitlines() if "Iteration" not in ln)
    assert adb.parse_executor_runner(total_only, warmup=2)["latency_ms_mean"] == pytest.approx(30.9)
    with pytest.raises(adb.ActionNetError, match="no timings"):
        adb.parse_executor_runner("E executor_runner.cpp] Execution failed", warmup=0)


def test_parse_benchmark_model_takes_the_timed_runs():
    row = adb.parse_benchmark_model(TFL_SAMPLE)
    assert row["runs"] == 24
    assert row["latency_ms_mean"] == pytest.approx(40.1255) and row["latency_ms_min"] == pytest.approx(38.8)
    assert row["latency_ms_median"] is None  # benchmark_model prints no median: not invented
    assert row["peak_rss_mb"] == pytest.approx(58.4) and row["file_mb"] == pytest.approx(2.61)
    with pytest.raises(adb.ActionNetError, match="no timings"):
        adb.parse_benchmark_model("ERROR: Failed to allocate tensors")


@pytest.fixture()
def fake_artifacts(tmp_path) -> dict[str, Path]:
    """Header-valid stand-ins: the dry run only pushes files, it never loads them."""
    pte = tmp_path / "action_int8.pte"
    pte.write_bytes(b"\x3c\x00\x00\x00ET12" + b"\x00" * 64)
    tfl = tmp_path / "action_int8.tflite"
    tfl.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    return {"pte": pte, "tflite": tfl}


def test_adb_dry_run_prints_the_exact_commands(fake_artifacts, tmp_path, monkeypatch):
    monkeypatch.setattr(Runtime, "missing", lambda self: None)  # on a phone, no local runtime is needed
    runner, bm = tmp_path / "executor_runner", tmp_path / "benchmark_model"
    r = CliRunner().invoke(main, ["bench", "--artifact", str(fake_artifacts["pte"]), "--artifact",
                                  str(fake_artifacts["tflite"]), "--device", "adb:R58M123ABC", "--dry-run",
                                  "--threads", "4", "--warmup", "3", "--runs", "20",
                                  "--executorch-runner", str(runner), "--litert-benchmark", str(bm)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    d = adb.REMOTE_DIR
    assert lines == [
        f"adb -s R58M123ABC shell mkdir -p {d}",
        f"adb -s R58M123ABC push {fake_artifacts['pte']} {d}/action_int8.pte",
        f"adb -s R58M123ABC push {runner} {d}/executor_runner",
        f"adb -s R58M123ABC shell chmod 755 {d}/executor_runner",
        "adb -s R58M123ABC shell " + shlex.quote(f"{d}/executor_runner --model_path={d}/action_int8.pte "
                                                 "--num_executions=23 --cpu_threads=4"),
        f"adb -s R58M123ABC shell mkdir -p {d}",
        f"adb -s R58M123ABC push {fake_artifacts['tflite']} {d}/action_int8.tflite",
        f"adb -s R58M123ABC push {bm} {d}/benchmark_model",
        f"adb -s R58M123ABC shell chmod 755 {d}/benchmark_model",
        "adb -s R58M123ABC shell " + shlex.quote(f"{d}/benchmark_model --graph={d}/action_int8.tflite --num_threads=4 "
                                                 "--warmup_runs=3 --num_runs=20 --use_xnnpack=true "
                                                 "--report_peak_memory_footprint=true"),
    ]


def test_adb_needs_the_benchmark_binary(fake_artifacts, monkeypatch):
    monkeypatch.setattr(Runtime, "missing", lambda self: None)
    r = CliRunner().invoke(main, ["bench", "--artifact", str(fake_artifacts["pte"]), "--device", "adb:X", "--dry-run"])
    assert r.exit_code == 2 and "needs --executorch-runner PATH" in r.stderr
    r = CliRunner().invoke(main, ["bench", "--artifact", str(fake_artifacts["pte"]), "--device", "usb:X", "--dry-run"])
    assert r.exit_code == 2 and "adb:SERIAL" in r.stderr


# ---------------------------------------------------------------------------------------- errors


def test_unknown_runtime_suggests_the_closest():
    r = CliRunner().invoke(main, ["bench", "--runtimes", "pytorch,litrt"])
    assert r.exit_code == 2
    assert "unknown runtime 'litrt'" in r.stderr and "Did you mean 'litert'?" in r.stderr


def test_path_variants_are_the_shift_and_one_action_path(tmp_path, tiny_checkpoint):
    """--variants ste,ce,me: the learnable shift and one excitation path each, on the same backbone
    as TSM and ACTION; each costs more MACs than TSM and less than ACTION."""
    from actionnet_edge.bench.sources import prepare_sources

    opts = BenchOptions(runtimes=["pytorch"], precisions=["fp32"], variants=["tsm", "ste", "ce", "me", "action"], **TINY)
    opts.validate()
    sources = {s.variant: s for s in prepare_sources(tiny_checkpoint, opts, tmp_path, [])}
    for v in ("ste", "ce", "me"):
        assert sources[v].config["temporal"] == v
        assert sources["tsm"].macs < sources[v].macs < sources["action"].macs, v
    r = CliRunner().invoke(main, ["bench", "--variants", "tsm,stee"])
    assert r.exit_code == 2 and "unknown variant 'stee'" in r.stderr and "Did you mean 'ste'?" in r.stderr


def test_runtime_not_installed_names_the_extra(monkeypatch):
    fake = Runtime("onnxruntime", ".onnx", "onnx", "onnx", "no_such_module_for_the_test", "onnxruntime")
    monkeypatch.setitem(RUNTIMES, "onnxruntime", fake)
    r = CliRunner().invoke(main, ["bench", "--runtimes", "onnxruntime", "--precision", "fp32"])
    assert r.exit_code == 2
    assert "onnxruntime is not installed" in r.stderr and "pip install 'actionnet-edge[onnx]'" in r.stderr
    # the library answers the same way for a runtime it was asked to time
    assert "pip install 'actionnet-edge[onnx]'" in measure("onnxruntime", artifact=None, config=None,
                                                           shape=(1, 2, 3, 32, 32), threads=1, warmup=0,
                                                           runs=1)["skipped"]


def test_artifact_that_does_not_match_the_runtime(fake_artifacts, tmp_path):
    r = CliRunner().invoke(main, ["bench", "--artifact", str(fake_artifacts["pte"]), "--runtimes", "litert"])
    assert r.exit_code == 2 and "does not match runtime" in r.stderr and "executorch" in r.stderr
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    r = CliRunner().invoke(main, ["bench", "--artifact", str(bad)])
    assert r.exit_code == 2 and "not a valid .tflite file" in r.stderr
    r = CliRunner().invoke(main, ["bench", "--artifact", str(tmp_path / "model.xyz")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    odd = tmp_path / "model.xyz"
    odd.write_text("x")
    r = CliRunner().invoke(main, ["bench", "--artifact", str(odd)])
    assert r.exit_code == 2 and "unknown format '.xyz'" in r.stderr
