"""The bench's sources: one checkpoint per variant, the artifacts exported from them (kept in
the work folder and reused while checkpoint and code are unchanged), or the user's artifacts."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..constants import BENCH_VARIANTS
from ..errors import ActionNetError
from .options import TEMPORAL_TO_VARIANT, BenchOptions, Source, frame_source
from .runtimes import RUNTIMES, check_artifact, runtime_for_artifact

log = logging.getLogger(__name__)


def _profile(config: dict, size: int) -> tuple[int, int]:
    from ..models import build_from_config
    from .macs import profile_model

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
        model = create_model(base["arch"], BENCH_VARIANTS[variant], segments, base["num_classes"], base["width_mult"],
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


def export_artifact(src: Source, runtime: str, precision: str, work: Path, opts: BenchOptions,
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
    if streaming and precision not in exporter.stream_precisions:
        return None, ("skipped", f"the {rt.target} exporter has no {precision} streaming step "
                                 f"(it offers {', '.join(exporter.stream_precisions)})")
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


def artifact_sources(artifacts: list[Path], opts: BenchOptions) -> list[tuple[Source, str, str, Path]]:
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
            src = frame_source(src, meta["streaming"])
        out.append((src, rt.name, precision, path))
    return out

