"""``run_bench``: variants x runtimes x precisions x threads, each measurement in its own process.

Sources (:mod:`.sources`): the user's artifacts as they are, else one checkpoint per variant
exported (parity checked) for each runtime and precision. Timing (:mod:`.rounds`): rounds of
separate processes, then the variants and streaming steps timed in turns (:mod:`.in_turns`).
With ``streaming=True`` a causal model is measured as its T-frame clip and as its streaming step.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Callable

<<<<<<< HEAD
from ..constants import PRECISIONS
from ..errors import ActionNetError, unknown_name
=======
>>>>>>> house-bench
from . import adb
from .in_turns import measure_pairs, measure_variants_in_turns, pair_streaming
from .machine import Machine, describe, measure_peaks
from .opprofile import profile_rows
from .options import SCHEMA, BenchOptions, Source, frame_source
from .report import UNITS, goals, render
from .rounds import Plan, make_rows, pool_rounds, run_rounds, unstable_note
from .runtimes import RUNTIMES
from .sources import artifact_sources, export_artifact, prepare_sources

log = logging.getLogger(__name__)

<<<<<<< HEAD
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

=======
>>>>>>> house-bench

def run_bench(checkpoint: str | Path | None = None, artifacts: list[Path] | None = None,
              options: BenchOptions | None = None, out: Path | None = None, work: Path | None = None,
              command: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Measure, write report.json / report.md / PNGs into ``out`` (if given) and return the report dict."""
    opts = options or BenchOptions()
    opts.validate()
    notes: list[str] = []
    work = Path(work or (out / "work" if out else Path("bench_work")))
    machine = _machine(notes)
    serial = adb.parse_device(opts.device) if opts.device else None
    if artifacts:
        plan: Plan = [(src, rt, prec, path, None) for src, rt, prec, path in
                      artifact_sources([Path(a) for a in artifacts], opts)]
    else:
        plan = _export_plan(prepare_sources(Path(checkpoint) if checkpoint else None, opts, work, notes),
                            opts, work, serial)
    rows, jobs = make_rows(plan, opts)
    if jobs and not serial:  # the floor's peak rate: theory, or a measured GEMM if the cores run faster
        measure_peaks(machine, sorted(set(opts.threads)))
    run_rounds(jobs, opts, serial, echo)
    pool_rounds(jobs, None if serial else machine)
    if opts.dry_run:
        return {"schema": SCHEMA, "dry_run": True, "rows": []}
    note = unstable_note(rows)
    notes.extend([note] if note else [])
    if not serial:
        measure_variants_in_turns(jobs, opts)
    if opts.streaming:
        measure_pairs(jobs, opts)
    pair_streaming(rows)
    report = _report(rows, plan, machine, opts, notes, command, serial)
    if out:
        render(report, Path(out))
    return report


def _machine(notes: list[str]) -> Machine:
    """This machine and the runtime versions; a note when it was busy at the start."""
    machine = describe({name: rt.version() for name, rt in RUNTIMES.items()})
    if machine.load_avg and machine.load_avg[0] > 0.5 * machine.logical_cores:
        notes.append(f"the machine was busy: load average {machine.load_avg} on {machine.logical_cores} cores at "
                     "the start; latencies are noisier and slower than on a quiet machine")
    return machine


def _export_plan(sources: list[Source], opts: BenchOptions, work: Path, serial: str | None) -> Plan:
    """What to measure from the sources: every runtime and precision (and with ``streaming`` the
    streaming step too), each export made or reused from the work folder."""
    plan: Plan = []
    for src in sources:
        for rt in opts.runtimes:
            for prec in opts.precisions:
                for streaming in (False, True) if opts.streaming else (False,):
                    if rt == "pytorch":
                        if prec == "fp32":
                            plan.append((frame_source(src, {"window": src.segments}) if streaming else src,
                                         rt, prec, src.checkpoint, None))
                        continue
                    missing = None if serial else RUNTIMES[rt].missing()
                    frame = frame_source(src, None) if streaming else src
                    if missing:
                        plan.append((frame, rt, prec, None, ("skipped", missing)))
                        continue
                    artifact, reason = export_artifact(src, rt, prec, work, opts, streaming)
                    if streaming and artifact is not None:
                        frame.streaming = json.loads((artifact.parent / "metadata.json").read_text())["streaming"]
                    plan.append((frame, rt, prec, artifact, reason))
    return plan


def _report(rows: list[dict], plan: Plan, machine: Machine, opts: BenchOptions, notes: list[str],
            command: str | None, serial: str | None) -> dict:
    """The report dict: command, machine, configuration, rows, goals, notes and per-op profiles."""
    first = plan[0][0] if plan else None
    report = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or shlex.join(sys.argv),
        "machine": machine.to_dict(),
        "config": {"arch": next((s.config.get("arch") for s, *_ in plan), None),
                   "width_mult": next((s.config.get("width_mult") for s, *_ in plan), None),
                   "segments": first.segments if first else opts.segments,
                   "size": first.size if first else opts.size, "threads": opts.threads,
                   "warmup": opts.warmup, "runs": opts.runs, "rounds": 1 if serial else opts.rounds,
                   "device": opts.device or "local", "verify": opts.verify, "streaming": opts.streaming},
        "units": UNITS,
        "rows": rows,
        "goals": [] if serial else goals(rows),
        "accuracy": opts.accuracy,
        "notes": notes,
        "profiles": {},
    }
    missed = any(g["met"] is False for g in report["goals"])
    if not serial and (opts.profile or (opts.profile is None and missed)):
        report["profiles"] = profile_rows(rows, max(opts.threads))
    return report
