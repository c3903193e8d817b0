"""``run_bench``: variants x runtimes x precisions x threads, each measurement in its own process.

Sources, in order: ``artifacts`` (files measured as they are), else a checkpoint (``None``:
the bundled model, or a freshly built model when that is not installed: latency does not
depend on the weights). From a checkpoint, every variant (TSN / TSM / ACTION) is rebuilt on
the same backbone and weights (the temporal modules of the missing ones freshly initialised),
saved as a checkpoint in the work folder and exported with :func:`actionnet_edge.export.export_model`
(parity checked) for each runtime and precision.

``streaming=True`` measures causal models twice per runtime: the T-frame clip export (rows with
``mode: "clip"``) and the frame-by-frame streaming export (``mode: "frame"``: one streaming
step, its state carried), and sets on each frame row the clip latency, their ratio and
whether the per-frame cost is under 1/6 of the clip's (``streaming_goal_met``).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..constants import PRECISIONS
from ..errors import ActionNetError, unknown_name
from . import adb
from .machine import describe, measure_peaks, set_floor
from .runtimes import RUNTIMES, check_artifact, file_mb, get_runtime, measure, runtime_for_artifact, summarize

log = logging.getLogger(__name__)

VARIANTS = {"tsn": "none", "tsm": "shift", "action": "action"}
TEMPORAL_TO_VARIANT = {v: k for k, v in VARIANTS.items()}
SCHEMA = "actionnet-edge.bench/1"


@dataclass
class BenchOptions:
    """What to measure. Lists are measured as a full grid."""

    runtimes: list[str] = field(default_factory=lambda: ["pytorch", "executorch", "litert", "onnxruntime", "coreml"])
    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    threads: list[int] = field(default_factory=lambda: [2])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    segments: int | None = None
    size: int | None = None
    warmup: int = 5
    runs: int = 30
    max_seconds: float | None = None  # stop timing a measurement after this long (at least 3 runs)
    rounds: int = 1  # every measurement once per round (order reversed every other round), runs pooled
    # model when there is no checkpoint
    arch: str = "mobilenet_v2"
    width_mult: float = 1.0
    num_classes: int = 27
    # export
    verify: bool = True
    parity_clips: int = 32
    # phone
    device: str | None = None
    dry_run: bool = False
    binaries: dict[str, Path] = field(default_factory=dict)
    # report
    accuracy: dict[str, float] = field(default_factory=dict)
    profile: bool | None = None  # None: profile when a goal is missed
    require_installed: bool = False  # runtimes named by the user: a missing one is an error, not a skip
    streaming: bool = False  # causal models: the streaming step per frame next to the clip

    def validate(self) -> None:
        for r in self.runtimes:
            rt = get_runtime(r)
            if self.require_installed and not self.device and not rt.macos_only and rt.missing():
                raise ActionNetError(rt.missing())
        for p in self.precisions:
            if p not in PRECISIONS:
                raise unknown_name("precision", p, PRECISIONS)
        for v in self.variants:
            if v not in VARIANTS:
                raise unknown_name("variant", v, VARIANTS)
        for k in self.accuracy:
            if k not in VARIANTS:
                raise unknown_name("variant in --accuracy", k, VARIANTS)
        if not self.threads or min(self.threads) < 1:
            raise ActionNetError("--threads must be positive integers")
        if self.warmup < 0 or self.runs < 1 or self.rounds < 1:
            raise ActionNetError("--warmup must be >= 0, --runs and --rounds >= 1")
        if self.segments is not None and self.segments < 2:
            raise ActionNetError(f"--segments must be at least 2, got {self.segments}")
        if self.size is not None and self.size < 32:
            raise ActionNetError(f"--size must be at least 32, got {self.size}")
        if self.device:
            serial = adb.parse_device(self.device)
            bad = [r for r in self.runtimes if r not in adb.BINARIES]
            if bad:
                raise ActionNetError(f"on a device only {', '.join(adb.BINARIES)} can run; remove {', '.join(bad)} "
                                     "from --runtimes")
            for r in self.runtimes:
                if r not in self.binaries:
                    flag = "--executorch-runner" if r == "executorch" else "--litert-benchmark"
                    raise ActionNetError(f"--device {self.device} with runtime {r} needs {flag} PATH "
                                         f"(the {adb.BINARIES[r]} binary built for the phone)")
            del serial
        if self.streaming and self.device:
            raise ActionNetError("--streaming is measured locally only (the phone runners feed no state)")


@dataclass
class Source:
    """One model variant to measure: its checkpoint (the pytorch artifact) and its MAC/param count."""

    variant: str
    checkpoint: Path | None
    config: dict
    macs: int | None
    params: int | None
    segments: int
    size: int
    mode: str = "clip"  # "clip": (1, T, 3, S, S) per run; "frame": one streaming step (1, 3, S, S)
    streaming: dict | None = None  # frame mode: metadata.json's streaming section ({"window": T} for pytorch)


def _frame_source(src: Source, streaming: dict | None) -> Source:
    """``src`` measured frame by frame: MACs per frame = clip MACs / T (every op runs once per frame)."""
    macs = round(src.macs / src.segments) if src.macs else None
    return replace(src, mode="frame", streaming=streaming, macs=macs)


def _profile(config: dict, size: int) -> tuple[int, int]:
    from ..models import build_from_config
    from .profile import profile_model

    p = profile_model(build_from_config(config), size)
    return p.macs, p.params


def prepare_sources(checkpoint: Path | None, opts: BenchOptions, work: Path, notes: list[str]) -> list[Source]:
    """One checkpoint per variant in ``work/checkpoints`` (same backbone and weights)."""
    import torch

    from ..checkpoint import bundled_checkpoint, default_preprocess, load_checkpoint, save_checkpoint
    from ..models import create_model

    if checkpoint is None and bundled_checkpoint().is_file() and not opts.streaming:  # the bundled one is not causal
        checkpoint = bundled_checkpoint()
    if checkpoint is not None:
        ck = load_checkpoint(checkpoint)
        if opts.streaming and not ck.model.config.get("causal", False):
            raise ActionNetError(f"{Path(checkpoint).name} is not a causal model: bench --streaming needs one trained "
                                 "with model.causal: true (or no --checkpoint: a fresh causal model)")
        base, labels, state = dict(ck.model.config), ck.labels, ck.model.state_dict()
        size = int(opts.size or ck.preprocess["size"])
        src_name = Path(checkpoint).name
    else:
        base = {"arch": opts.arch, "temporal": "action", "num_segments": opts.segments or 8,
                "num_classes": opts.num_classes, "width_mult": opts.width_mult, "causal": opts.streaming}
        labels, state, size = [f"class_{i}" for i in range(opts.num_classes)], None, int(opts.size or 224)
        src_name = None
        notes.append(f"no checkpoint: {opts.arch} (width {opts.width_mult}) with freshly initialised weights, "
                     f"{opts.num_classes} classes{', causal' if opts.streaming else ''}; latency does not depend on "
                     "the weight values")
    segments = int(opts.segments or base["num_segments"])
    sources = []
    for variant in opts.variants:
        torch.manual_seed(0)
        model = create_model(base["arch"], VARIANTS[variant], segments, base["num_classes"], base["width_mult"],
                             causal=bool(base.get("causal", False)))
        if state is not None:
            own = model.state_dict()
            shared = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(shared, strict=False)
            if variant != TEMPORAL_TO_VARIANT.get(base["temporal"]):
                notes.append(f"{variant}: backbone and classifier weights from {src_name}, temporal modules "
                             "freshly initialised (latency only)")
        path = work / "checkpoints" / f"{variant}.pt"
        preprocess = default_preprocess(model, size)
        if not _same_checkpoint(path, model, labels, preprocess):  # keep the file: its sha256 keys reused exports
            save_checkpoint(path, model.eval(), labels, preprocess, bench_source=src_name or "random")
        macs, params = _profile(model.config, size)
        sources.append(Source(variant, path, dict(model.config), macs, params, segments, size))
    return sources


def _same_checkpoint(path: Path, model, labels: list[str], preprocess: dict) -> bool:
    """True when ``path`` already holds exactly this model (torch.save output differs run to run)."""
    import torch

    if not path.is_file():
        return False
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    sd = model.state_dict()
    old = raw.get("state_dict", {})
    return (raw.get("model") == dict(model.config) and raw.get("labels") == list(labels)
            and raw.get("preprocess") == dict(preprocess) and old.keys() == sd.keys()
            and all(torch.equal(old[k], v) for k, v in sd.items()))


def _export(src: Source, runtime: str, precision: str, work: Path, opts: BenchOptions,
            streaming: bool = False) -> tuple[Path | None, tuple | None]:
    """The artifact of ``src`` for ``runtime``/``precision`` (reused when the work folder has it);
    with ``streaming``, its streaming-step export."""
    from ..checkpoint import file_sha256
    from ..export import EXPORTERS, export_model
    from ..export.metadata import code_sha256

    rt = RUNTIMES[runtime]
    if rt.target not in EXPORTERS:
        return None, ("skipped", f"export target {rt.target} is not available in this installation")
    exporter = EXPORTERS[rt.target]
    if precision not in exporter.precisions:
        return None, ("skipped", f"the {rt.target} exporter has no {precision} (it offers {', '.join(exporter.precisions)})")
    if streaming and precision != "fp32":
        return None, ("skipped", f"{precision} streaming export is not supported (fp32 only)")
    out = work / "artifacts" / f"{src.variant}-{rt.target}-{precision}-t{src.segments}-s{src.size}" \
        f"{'-streaming' if streaming else ''}"
    meta_path = out / "metadata.json"
    if meta_path.is_file():  # reused only if built from this checkpoint by this code
        source = json.loads(meta_path.read_text()).get("source") or {}
        found = [p for p in out.iterdir() if p.suffix == rt.suffix]
        if found and source.get("sha256") == file_sha256(src.checkpoint) and source.get("code_sha256") == code_sha256():
            log.info("reusing %s", found[0])
            return found[0], None
    log.info("exporting %s to %s %s%s (T=%d, %d px)...", src.variant, rt.target, precision,
             " streaming step" if streaming else "", src.segments, src.size)
    t0 = time.perf_counter()
    try:
        res = export_model(src.checkpoint, rt.target, out, precision=precision, size=src.size, verify=opts.verify,
                           parity_clips=opts.parity_clips, force=True, streaming=streaming)
    except ActionNetError as e:
        return None, ("error", f"export failed: {e}")
    except Exception as e:  # a converter crash must not lose the other measurements
        log.exception("export of %s to %s %s crashed", src.variant, rt.target, precision)
        return None, ("error", f"export crashed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    log.info("exported %s in %.0f s", res.artifact.name, time.perf_counter() - t0)
    return res.artifact, None


def _artifact_sources(artifacts: list[Path], opts: BenchOptions) -> list[tuple[Source, str, str, Path]]:
    """(source, runtime, precision, file) for each ``--artifact``; its metadata.json names the variant."""
    out = []
    explicit = set(opts.runtimes)
    for path in artifacts:
        if not path.exists():
            raise ActionNetError(f"artifact '{path}' does not exist")
        rt = runtime_for_artifact(path)
        if explicit and rt.name not in explicit:
            raise ActionNetError(f"artifact '{path.name}' does not match runtime(s) {', '.join(sorted(explicit))} "
                                 f"({path.suffix} runs on {rt.name})")
        check_artifact(path, rt.name)
        if rt.missing() and not rt.macos_only and not opts.device:
            raise ActionNetError(f"cannot measure {path.name}: {rt.missing()}")
        meta_file = path.parent / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        if rt.name == "pytorch":
            from ..checkpoint import read_checkpoint

            raw = read_checkpoint(path)
            config, precision = raw["model"], "fp32"
            segments, size = int(opts.segments or config["num_segments"]), int(opts.size or raw["preprocess"]["size"])
        else:
            config = meta.get("model_config") or meta.get("model") or {}
            precision = meta.get("precision") or (opts.precisions[0] if len(opts.precisions) == 1 else "unknown")
            segments = int(meta.get("segments") or opts.segments or config.get("num_segments") or 8)
            size = int(meta.get("size") or opts.size or 224)
        variant = TEMPORAL_TO_VARIANT.get(config.get("temporal"), config.get("temporal") or "unknown")
        macs = params = None
        if config.get("arch"):
            macs, params = _profile({**config, "num_segments": segments}, size)
        src = Source(variant, path if rt.name == "pytorch" else None, config, macs, params, segments, size)
        if meta.get("streaming"):  # a streaming artifact: measured per frame
            src = _frame_source(src, meta["streaming"])
        out.append((src, rt.name, precision, path))
    return out


def run_bench(checkpoint: str | Path | None = None, artifacts: list[Path] | None = None,
              options: BenchOptions | None = None, out: Path | None = None, work: Path | None = None,
              command: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Measure, write report.json / report.md / PNGs into ``out`` (if given) and return the report dict."""
    opts = options or BenchOptions()
    opts.validate()
    notes: list[str] = []
    work = Path(work or (out / "work" if out else Path("bench_work")))
    versions = {name: rt.version() for name, rt in RUNTIMES.items()}
    machine = describe(versions)
    if machine.load_avg and machine.load_avg[0] > 0.5 * machine.logical_cores:
        notes.append(f"the machine was busy: load average {machine.load_avg} on {machine.logical_cores} cores at "
                     "the start; latencies are noisier and slower than on a quiet machine")
    serial = adb.parse_device(opts.device) if opts.device else None

    # what to measure: (source, runtime, precision, artifact | None, (status, reason) if not measurable)
    plan: list[tuple[Source, str, str, Path | None, tuple | None]] = []
    if artifacts:
        for src, rt, prec, path in _artifact_sources([Path(a) for a in artifacts], opts):
            plan.append((src, rt, prec, path, None))
    else:
        sources = prepare_sources(Path(checkpoint) if checkpoint else None, opts, work, notes)
        for src in sources:
            for rt in opts.runtimes:
                for prec in opts.precisions:
                    for streaming in (False, True) if opts.streaming else (False,):
                        if rt == "pytorch":
                            if prec == "fp32":
                                plan.append((_frame_source(src, {"window": src.segments}) if streaming else src,
                                             rt, prec, src.checkpoint, None))
                            continue
                        missing = None if serial else RUNTIMES[rt].missing()
                        frame = _frame_source(src, None) if streaming else src
                        if missing:
                            plan.append((frame, rt, prec, None, ("skipped", missing)))
                            continue
                        artifact, reason = _export(src, rt, prec, work, opts, streaming)
                        if streaming and artifact is not None:
                            frame.streaming = json.loads((artifact.parent / "metadata.json").read_text())["streaming"]
                        plan.append((frame, rt, prec, artifact, reason))

    rows: list[dict] = []
    # what to time: (row, source, runtime, artifact, threads, the measurements of each round)
    jobs: list[tuple[dict, Source, str, Path, int, list[dict]]] = []
    for src, rt, prec, artifact, reason in plan:
        for threads in opts.threads:
            row = {"variant": src.variant, "mode": src.mode, "runtime": rt, "precision": prec, "threads": threads,
                   "device": opts.device or "local", "segments": src.segments, "size": src.size,
                   "artifact": str(artifact) if artifact else None,
                   "file_mb": file_mb(artifact), "macs": src.macs, "params": src.params,
                   "latency_ms_median": None, "latency_ms_p90": None, "latency_ms_min": None, "peak_rss_mb": None}
            rows.append(row)
            if reason or artifact is None:
                status, why = reason or ("error", "no artifact")
                row.update(status=status, reason=why)
            else:
                jobs.append((row, src, rt, artifact, threads, []))
    # The variants of one runtime, precision and thread count run back to back (the plan lists them
    # variant by variant), so the pairs the goals compare are measured seconds apart, not minutes.
    order = {(rt, prec, th): i for i, (rt, prec, th) in enumerate(dict.fromkeys(
        (j[2], j[0]["precision"], j[4]) for j in jobs))}
    jobs.sort(key=lambda j: order[(j[2], j[0]["precision"], j[4])])
    # Rounds: every measurement once per round, in its own process, the order reversed every other
    # round, so that a slow spell of a shared machine falls on all variants instead of one.
    rounds = 1 if serial else opts.rounds
    if jobs and not serial:  # the floor's peak rate: theory, or a measured GEMM if the cores run faster
        measure_peaks(machine, sorted(set(opts.threads)))
    total, done, t_start = len(jobs) * rounds, 0, time.perf_counter()
    for r in range(rounds):
        for row, src, rt, artifact, threads, got in jobs if r % 2 == 0 else jobs[::-1]:
            prec = row["precision"]
            shape = (1, 3, src.size, src.size) if src.mode == "frame" else (1, src.segments, 3, src.size, src.size)
            if serial:
                res = adb.run_on_device(serial, rt, artifact, opts.binaries[rt], threads=threads, warmup=opts.warmup,
                                        runs=opts.runs, dry_run=opts.dry_run, echo=echo)
                if res is None:  # dry run
                    continue
            else:
                res = measure(rt, artifact=artifact, config=src.config, shape=shape, threads=threads,
                              warmup=opts.warmup, runs=opts.runs, max_seconds=opts.max_seconds, streaming=src.streaming)
            done += 1
            got.append(res)
            if "error" in res or "skipped" in res:
                log.warning("[%d/%d] %s %s %s %d thr: %s", done, total, src.variant, rt, prec, threads,
                            res.get("error") or res.get("skipped"))
                continue
            elapsed = time.perf_counter() - t_start
            log.info("[%d/%d]%s %s %s%s %s %d thr: median %.2f ms, p90 %.2f ms, peak RSS %.0f MiB (ETA %.0f s)",
                     done, total, f" round {r + 1}/{rounds}:" if rounds > 1 else "", src.variant, rt,
                     " per frame" if src.mode == "frame" else "", prec, threads,
                     res.get("latency_ms_median") or float("nan"), res.get("latency_ms_p90") or float("nan"),
                     res.get("peak_rss_mb") or float("nan"), elapsed / done * (total - done))
    for row, src, rt, artifact, threads, got in jobs:
        bad = next((x for x in got if "error" in x or "skipped" in x), None)
        if bad is not None or not got:
            row.update(status="error" if bad is None or "error" in bad else "skipped",
                       reason=(bad or {}).get("error") or (bad or {}).get("skipped") or "not measured")
            continue
        row.update({k: v for k, v in got[0].items() if k != "latencies_ms"})
        pooled = [v for x in got for v in x.get("latencies_ms", [])]
        if pooled:  # the runs of all rounds together
            row.update(summarize(pooled))
        row["rounds"] = len(got)
        if len(got) > 1:
            row["latency_ms_round_medians"] = [x.get("latency_ms_median") for x in got]
        if any(x.get("peak_rss_mb") for x in got):
            row["peak_rss_mb"] = max(x.get("peak_rss_mb") or 0 for x in got)
        row["status"] = "ok"
        if not serial and src.macs:
            set_floor(row, machine, src.macs)
    if opts.dry_run:
        return {"schema": SCHEMA, "dry_run": True, "rows": []}
    unstable = round_spreads(rows)
    if unstable:
        (worst, spread), n = max(unstable, key=lambda u: u[1]), len(unstable)
        notes.append(f"the machine's speed changed during the run: the round medians of {n} measurement"
                     f"{'s' if n > 1 else ''} differ by more than {UNSTABLE_ROUNDS:.0%} (most: {worst}, {spread:+.0%}); "
                     "ratios between runtimes of this run moved with them (see 'Round medians'; the variants "
                     "timed in turns are not affected)")
    if not serial:
        measure_variants_in_turns(jobs, opts)
    if opts.streaming:
        measure_pairs(jobs, opts)
    pair_streaming(rows)

    from .report import UNITS, goals, render

    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or shlex.join(sys.argv),
        "machine": machine.to_dict(),
        "config": {"arch": next((s.config.get("arch") for s, *_ in plan), None),
                   "width_mult": next((s.config.get("width_mult") for s, *_ in plan), None),
                   "segments": plan[0][0].segments if plan else opts.segments,
                   "size": plan[0][0].size if plan else opts.size, "threads": opts.threads,
                   "warmup": opts.warmup, "runs": opts.runs, "rounds": 1 if serial else opts.rounds,
                   "device": opts.device or "local",
                   "verify": opts.verify, "streaming": opts.streaming},
        "units": UNITS,
        "rows": rows,
        "goals": [] if serial else goals(rows),
        "accuracy": opts.accuracy,
        "notes": notes,
        "profiles": {},
    }
    missed = any(g["met"] is False for g in report["goals"])
    if not serial and (opts.profile or (opts.profile is None and missed)):
        report["profiles"] = _profiles(rows, max(opts.threads))
    if out:
        render(report, Path(out))
    return report


#: round medians of one measurement further apart than this (max / min - 1) make a note in the report
UNSTABLE_ROUNDS = 0.30


def round_spreads(rows: list[dict], limit: float = UNSTABLE_ROUNDS) -> list[tuple[str, float]]:
    """(name, max / min - 1) of the measurements whose round medians differ by more than ``limit``:
    a slow spell of a shared machine slows a whole process, so it shows as a round apart."""
    out = []
    for r in rows:
        meds = [m for m in r.get("latency_ms_round_medians") or [] if m]
        if len(meds) > 1 and max(meds) / min(meds) - 1 > limit:
            out.append((f"{r['variant']} {r['runtime']} {r['precision']} {r['threads']} thr"
                        f"{' per frame' if r.get('mode') == 'frame' else ''}", max(meds) / min(meds) - 1))
    return out


def measure_variants_in_turns(jobs: list, opts: BenchOptions) -> None:
    """ACTION and TSM (and TSN) of each runtime, precision and thread count once more, their clip
    artifacts loaded side by side in one process and timed in turns (worker.measure_interleaved,
    ``runs x rounds`` clips each): ``over_tsm_in_turns`` on the ACTION row is the ratio of those
    medians - 1, which a slow spell of a shared machine moves far less than the ratio of two rows
    measured in separate processes. Each row of the group gets its ``latency_ms_median_in_turns``."""
    groups: dict[tuple, dict] = {}
    for job in jobs:
        row = job[0]
        if row["mode"] == "clip" and row.get("status") == "ok":
            key = (row["runtime"], row["precision"], row["threads"], row["segments"], row["size"])
            groups.setdefault(key, {})[row["variant"]] = job
    for (rt, prec, threads, segments, size), by_variant in groups.items():
        if not {"action", "tsm"} <= set(by_variant):
            continue
        src = by_variant["action"][1]
        items = {v: {"artifact": str(job[3]) if job[3] else None, "config": job[1].config} for v, job in by_variant.items()}
        res = measure(rt, artifact=None, config=src.config, shape=(1, segments, 3, size, size), threads=threads,
                      warmup=opts.warmup, runs=opts.runs * max(1, opts.rounds), interleave=items)
        if "interleaved_ms" not in res:
            by_variant["action"][0]["in_turns_error"] = res.get("error") or res.get("skipped") or "no result"
            log.warning("%s %s variants in turns: %s", rt, prec, by_variant["action"][0]["in_turns_error"])
            continue
        for v, times in res["interleaved_ms"].items():
            by_variant[v][0]["latency_ms_median_in_turns"] = statistics.median(times)
            by_variant[v][0]["runs_in_turns"] = len(times)
        action, tsm = (by_variant[v][0]["latency_ms_median_in_turns"] for v in ("action", "tsm"))
        by_variant["action"][0]["over_tsm_in_turns"] = action / tsm - 1.0
        log.info("%s %s %d thr, variants in turns: %s; ACTION over TSM %+.1f%%", rt, prec, threads,
                 ", ".join(f"{v} {job[0]['latency_ms_median_in_turns']:.2f} ms" for v, job in by_variant.items()),
                 100 * (action / tsm - 1.0))


_PAIR_KEY = ("variant", "runtime", "precision", "threads", "device", "segments", "size")


def _pair_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in _PAIR_KEY)


def measure_pairs(jobs: list, opts: BenchOptions) -> None:
    """Each measured streaming step once more, side by side with its clip in one process and timed
    in turns (worker.measure_pair): ``frame_over_clip_paired`` is the median over the blocks of
    (mean of T steps) / (the clip next to them), which a slow spell of a shared machine moves far
    less than the ratio of two medians measured in separate processes."""
    clips = {_pair_key(row): artifact for row, _, _, artifact, _, _ in jobs
             if row["mode"] == "clip" and row.get("status") == "ok"}
    for row, src, rt, artifact, threads, _ in jobs:
        if row["mode"] != "frame" or row.get("status") != "ok" or _pair_key(row) not in clips:
            continue
        pair_clip = {"shape": [1, src.segments, 3, src.size, src.size]}
        if rt != "pytorch":  # pytorch runs the one checkpoint (or config) both ways
            pair_clip["artifact"] = str(clips[_pair_key(row)])
        res = measure(rt, artifact=artifact, config=src.config, shape=(1, 3, src.size, src.size), threads=threads,
                      warmup=opts.warmup, runs=opts.runs, streaming=src.streaming, pair_clip=pair_clip)
        if "pair_clip_ms" not in res:
            row["paired_error"] = res.get("error") or res.get("skipped") or "no result"
            log.warning("%s %s step and clip in turns: %s", src.variant, rt, row["paired_error"])
            continue
        ratios = [statistics.fmean(steps) / c for c, steps in zip(res["pair_clip_ms"], res["pair_step_ms"])]
        row.update(frame_over_clip_paired=statistics.median(ratios), paired_blocks=len(ratios),
                   paired_clip_ms_median=statistics.median(res["pair_clip_ms"]),
                   paired_step_ms_median=statistics.median(v for b in res["pair_step_ms"] for v in b))
        log.info("%s %s %d thr, step and clip in turns: %d blocks, step %.2f ms, clip %.2f ms, frame / clip %.3f",
                 src.variant, rt, threads, len(ratios), row["paired_step_ms_median"], row["paired_clip_ms_median"],
                 row["frame_over_clip_paired"])


def pair_streaming(rows: list[dict]) -> None:
    """On each frame row: the clip row's median, frame / clip, and whether the step is under
    STREAM_FRAME_OVER_CLIP of the clip: judged on ``frame_over_clip_paired`` where it was measured
    (step and clip timed in turns), else on the two rows' medians."""
    from .report import STREAM_FRAME_OVER_CLIP

    clips = {_pair_key(r): r for r in rows if r.get("mode", "clip") == "clip" and r.get("status") == "ok"}
    for r in rows:
        if r.get("mode") != "frame":
            continue
        clip = clips.get(_pair_key(r))
        ok = clip is not None and r.get("status") == "ok"
        ratio = r["latency_ms_median"] / clip["latency_ms_median"] if ok else None
        r["clip_latency_ms_median"] = clip["latency_ms_median"] if clip else None
        r["frame_over_clip"] = ratio
        # the same ratio of the fastest runs: steadier than the medians on a shared machine
        r["frame_over_clip_min"] = r["latency_ms_min"] / clip["latency_ms_min"] if ok else None
        judged = r.get("frame_over_clip_paired", ratio) if ok else None
        r["streaming_goal_met"] = None if judged is None else judged < STREAM_FRAME_OVER_CLIP


def _profiles(rows: list[dict], threads: int) -> dict:
    """Per-op profiles of the ACTION (else first variant's) ExecuTorch and LiteRT artifacts, and of
    the TSM ones next to them (what ACTION adds, op by op); of the streaming step too (mode "frame")."""
    from .opprofile import etdump_profile, litert_profile

    prof = {}
    ok = [r for r in rows if r.get("status") == "ok" and r["threads"] == threads and r.get("artifact")]
    variant = "action" if any(r["variant"] == "action" for r in ok) else (ok[0]["variant"] if ok else None)
    for r in ok:
        beside = variant == "action" and r["variant"] == "tsm"
        if (r["variant"] != variant and not beside) or r["runtime"] not in ("executorch", "litert"):
            continue
        step = r.get("mode", "clip") == "frame"
        key = f"{r['variant']} {r['runtime']} {r['precision']} ({threads} thr){', streaming step' if step else ''}"
        log.info("per-op profile: %s", key)
        try:
            if r["runtime"] == "executorch" and step:
                section = json.loads((Path(r["artifact"]).parent / "metadata.json").read_text())["streaming"]
                prof[key] = etdump_profile(Path(r["artifact"]), (1, 3, r["size"], r["size"]), threads,
                                           streaming=section)
            elif r["runtime"] == "executorch":
                prof[key] = etdump_profile(Path(r["artifact"]), (1, r["segments"], 3, r["size"], r["size"]), threads)
            else:
                prof[key] = litert_profile(Path(r["artifact"]), threads, per="step" if step else "clip")
        except Exception as e:  # a profiler problem must not lose the measurements
            log.warning("profile of %s failed: %s", key, e)
            prof[key] = {"summary": f"profile failed: {type(e).__name__}: {e}"}
    return prof
