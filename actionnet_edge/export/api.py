"""``export_model``: checkpoint -> edge form -> (int8: PT2E quantization) -> artifact -> parity.

With ``streaming=True`` the frame-by-frame step of a causal checkpoint is exported instead
(its state as named inputs/outputs, :mod:`.streaming`), through the same exporters, checks
and folder handling.

Everything is written into a temporary folder next to the output and moved into place only
when parity passes (or verification was switched off, which is logged loudly), so a failed
export leaves nothing behind. The move is :func:`~actionnet_edge.fsutil.publish_dir`: with
``force`` an atomic swap with the old folder, without it a rename that refuses to replace a
folder another export published meanwhile; stale temporary folders of killed runs are swept.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint, bundled_checkpoint, load_checkpoint, read_checkpoint
from ..errors import ActionNetError
from ..fsutil import check_writable, fault_point, publish_dir, sweep_stale, temp_dir_for
from .base import RuntimeUnavailable
from ..models import check_input_size
from ..models.edge import to_edge
from ..quant import check_qat_backend, fake_quant_model, load_qat_checkpoint, quantize, quantize_step
from .metadata import build_metadata
from .clips import sample_clips
from .parity import Thresholds, evaluate, summary
from .registry import get_exporter
from .request import check_numbers, check_request
from .vectors import VECTOR_CLIPS, write_vectors
from .streaming import (DEFAULT_PARITY_CLIPS, StreamRunner, add_streaming, io_names, load_stream_source,
                        stream_parity, streaming_section)

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What an export produced: the folder, the artifact in it, and the two JSON documents."""

    output: Path
    artifact: Path
    metadata: dict[str, Any]
    report: dict[str, Any] = field(repr=False)

    @property
    def parity(self) -> dict[str, Any]:
        return self.report["parity"]

    @property
    def passed(self) -> bool | None:
        """True/False from the parity check; None when it was skipped or not run."""
        return self.report["parity"].get("passed")


@dataclass
class _Source:
    """What an export starts from: the float reference model, its edge form, and the QAT state if any."""

    ckpt: Checkpoint
    reference: torch.nn.Module  # float model the artifact is compared with
    edge: torch.nn.Module  # its edge form (what gets converted / quantized)
    qat_state: dict | None
    t: int  # frames of a clip (the streaming step: the window its logits average over)

    @property
    def mean(self):
        return self.ckpt.preprocess["mean"]

    @property
    def std(self):
        return self.ckpt.preprocess["std"]


def _load_source(checkpoint: str | Path | None, segments: int | None) -> _Source:
    """The float model of a checkpoint (rebuilt for ``segments`` if given) and its QAT state, if any."""
    if checkpoint is None and not bundled_checkpoint().is_file():
        raise ActionNetError(f"the bundled model {bundled_checkpoint().name} is not installed; pass --checkpoint CKPT")
    raw = read_checkpoint(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if isinstance(raw.get("qat"), dict):
        qat = load_qat_checkpoint(ckpt.path)
        if segments is not None and int(segments) != ckpt.model.config["num_segments"]:
            raise ActionNetError("--segments cannot change T of a QAT checkpoint (its graph is fixed); re-run QAT")
        edge = qat.edge_model()  # the QAT-tuned float weights: reference and edge form at once
        return _Source(ckpt, edge, edge, qat.state, int(edge.config["num_segments"]))
    if segments is not None and int(segments) != ckpt.model.config["num_segments"]:
        from ..models import build_from_config

        model = build_from_config({**ckpt.model.config, "num_segments": int(segments)})
        model.load_state_dict(ckpt.model.state_dict())  # temporal kernels do not depend on T
        ckpt.model = model.eval()
    return _Source(ckpt, ckpt.model.eval(), to_edge(ckpt.model), None, int(ckpt.model.config["num_segments"]))


def _run_torch(model: torch.nn.Module, clips: torch.Tensor) -> np.ndarray:
    """Logits of a PyTorch model, clip by clip (exported graphs have a static batch of 1)."""
    with torch.no_grad():
        return torch.cat([model(c[None]).reshape(1, -1) for c in clips]).float().numpy()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def default_output(checkpoint: str | Path | None, target: str, precision: str, streaming: bool = False) -> Path:
    stem = Path(checkpoint).stem if checkpoint is not None else bundled_checkpoint().stem
    return Path("exports") / f"{stem}-{target}-{precision}{'-streaming' if streaming else ''}"


def export_model(
    checkpoint: str | Path | None,
    target: str,
    output: str | Path | None = None,
    *,
    precision: str = "fp32",
    segments: int | None = None,
    size: int | None = None,
    layout: str = "NCHW",
    data_root: str | Path | None = None,
    dataset: str | None = None,
    calib_clips: int = 32,
    parity_clips: int | None = None,
    verify: bool = True,
    force: bool = False,
    thresholds: Thresholds | None = None,
    streaming: bool = False,
    **options: Any,
) -> ExportResult:
    """Export a checkpoint (``None``: the bundled model) to ``target`` and check parity.

    Args:
        checkpoint: a float or QAT checkpoint.
        target: a name in :data:`actionnet_edge.export.EXPORTERS`.
        output: folder to create (default ``exports/<checkpoint>-<target>-<precision>``).
        precision: ``fp32``, ``fp16`` or ``int8`` (int8 from a float checkpoint = post-training
            calibration on ``calib_clips`` clips, logged as such).
        segments, size: T and S of the exported input (default: the checkpoint's).
        layout: ``NCHW`` or ``NHWC`` input.
        data_root, dataset: clips for parity (validation split) and calibration (training split);
            default: the synthetic generator.
        parity_clips: clips run through the artifact in its own runtime (default 32, at least 32
            advised; with ``streaming`` default 8, whose 8 x T frames run as one stream).
        verify: ``False`` skips parity (logged loudly, recorded in report.json).
        force: replace an existing output folder.
        thresholds: parity pass criteria.
        streaming: export the frame-by-frame step of a causal checkpoint (NCHW frames; int8 calibrated
            on streams, state float32 at the interface); ``segments``
            is then the window of frames the logits average over (default: the checkpoint's T).
        options: passed to the exporter's ``convert`` (e.g. ``converter="onnx2tf"``).
    """
    t_start = time.perf_counter()
    exporter = get_exporter(target)
    parity_clips = parity_clips if parity_clips is not None else (DEFAULT_PARITY_CLIPS if streaming else 32)
    th = thresholds or Thresholds()
    check_request(exporter, precision, layout, streaming, parity_clips, calib_clips, data_root, dataset)
    check_numbers(segments, th)
    out = Path(output) if output is not None else default_output(checkpoint, target, precision, streaming)
    if out.exists() and not force:
        raise ActionNetError(f"output {out} already exists; pass --force to replace it")
    check_writable(out, "output folder")
    sweep_stale(out.parent)
    exporter.check_available()
    src = _stream_source(checkpoint, segments, exporter) if streaming else _load_source(checkpoint, segments)
    s = _input_size(size, src, precision)
    example, io = _example(src, s, streaming)
    int8 = _int8_stream if streaming else _int8
    art = (int8(exporter, src, s, calib_clips, data_root, dataset) if precision == "int8"
           else _Artifact(src.edge, src.reference, "float"))
    meta, section = _metadata(exporter, src, precision, layout, s, art.quant_info, streaming)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_for(out)
    try:
        artifact = tmp / meta["artifact"]
        info, convert_s = _convert(exporter, src, art, example, precision, artifact, layout, meta, io, s, options)
        parity = _parity(exporter, artifact, layout, precision, art.reference,
                         art.model if precision == "int8" else None, src.t, s, src.mean, src.std, data_root, dataset,
                         parity_clips, verify, th, section, art.ref_name)
        meta["vectors"] = write_vectors(tmp, exporter if verify else None, artifact, meta, th, art.reference,
                                        art.model if precision == "int8" else None,
                                        src.reference if streaming else None,
                                        sample_clips(2 * VECTOR_CLIPS, src.t, s, src.mean, src.std, seed=3)[0])
        report = _report(meta, src, art, artifact, info, parity, th, section, convert_s, t_start, layout)
        _publish(tmp, out, meta, report, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s (%s, %.1f MB) in %.1fs", out / meta["artifact"], target, report["size_bytes"] / 1e6,
             report["export_seconds"])
    return ExportResult(out, out / meta["artifact"], meta, report)


def _stream_source(checkpoint, segments: int | None, exporter) -> _Source:
    """The streaming step of a causal checkpoint: all 4-D already, it is its own edge form."""
    ckpt, model, qat_state = load_stream_source(checkpoint, segments)
    model.set_state_layout(exporter.stream_state_layout)
    return _Source(ckpt, model, model, qat_state, model.window)


def _input_size(size: int | None, src: _Source, precision: str) -> int:
    """S of the exported input, checked against a QAT checkpoint's graph."""
    s = int(size or src.ckpt.preprocess["size"])
    check_input_size(s, "--size")
    q = src.qat_state
    if q is not None and precision == "int8" and s != q["input_shape"][-1]:
        raise ActionNetError(f"--size {s} differs from the {q['input_shape'][-1]} px this QAT checkpoint was "
                             "trained at; export at that size or re-run QAT")
    if q is not None and precision != "int8":
        log.warning("%s is a QAT checkpoint: exporting its float weights at %s", src.ckpt.path.name, precision)
    return s


def _example(src: _Source, s: int, streaming: bool) -> tuple[Any, dict[str, Any]]:
    """The example input of ``convert`` and, for the streaming step, its input/output names."""
    if not streaming:
        return torch.zeros(1, src.t, 3, s, s), {}
    model = src.reference
    names = io_names(model.state_spec(1, s))
    return (torch.zeros(1, 3, s, s), *model.init_state(1, s)), {"input_names": names[0], "output_names": names[1]}


@dataclass
class _Artifact:
    """What gets converted and what its outputs are checked against."""

    model: torch.nn.Module
    reference: torch.nn.Module
    ref_name: str
    quant_info: dict[str, Any] | None = None


def _int8(exporter, src: _Source, s: int, calib_clips: int, data_root, dataset) -> _Artifact:
    """The int8 model: PTQ calibrated on clips, or the QAT checkpoint's graph checked against its fake-quant model."""
    if exporter.quant_backend is None:
        raise ActionNetError(f"{exporter.name} has no int8 quantizer")
    backend, calib = exporter.quant_backend, None
    if src.qat_state is None:
        calib, calib_src = sample_clips(calib_clips, src.t, s, src.mean, src.std, data_root=data_root,
                                        dataset=dataset, split="train", seed=1)
        log.warning("%s is a float checkpoint: int8 by post-training calibration on %d clips (%s), not QAT",
                    src.ckpt.path.name, calib.shape[0], calib_src)
        info = {"method": "ptq", "backend": backend, "calibration_clips": int(calib.shape[0]),
                "calibration_source": calib_src}
        reference, ref_name = src.reference, "float"
    else:
        info = {"method": "qat", "backend": backend, "qat_input_shape": src.qat_state["input_shape"],
                "parity_reference": "the QAT checkpoint's fake-quantized model (what QAT trained)"}
        reference, ref_name = fake_quant_model(src.edge, backend, src.qat_state), "fake-quant QAT model"
    batches = None if calib is None else [c[None] for c in calib]
    model = quantize(src.edge, backend, calib=batches, qat_state=src.qat_state)
    return _Artifact(model, reference, ref_name, info)


def _int8_stream(exporter, src: _Source, s: int, calib_clips: int, data_root, dataset) -> _Artifact:
    """The int8 streaming step of a float or QAT checkpoint, its ranges calibrated on the frames of
    ``calib_clips`` clips as one stream; parity against the converted PyTorch int8 step."""
    backend, q = exporter.quant_backend, src.qat_state
    if backend is None:
        raise ActionNetError(f"{exporter.name} has no int8 quantizer")
    if q is not None:
        check_qat_backend(q, backend)
    calib, calib_src = sample_clips(calib_clips, src.t, s, src.mean, src.std, data_root=data_root, dataset=dataset,
                                    split="train", seed=1)
    model = quantize_step(src.edge, backend, calib, per_channel=bool(q.get("per_channel", True)) if q else True)
    info = {"method": "qat" if q else "ptq", "backend": backend, "calibration_clips": int(calib.shape[0]),
            "calibration_source": calib_src, "calibration": "the clips' frames in order as one stream",
            "parity_reference": "the converted PyTorch int8 streaming step" + (" (the QAT weights, fake-quantized "
                                                                               "with ranges calibrated on streams)" if q else "")}
    if q is not None:
        info["qat_input_shape"] = q["input_shape"]
    return _Artifact(model, model, "PyTorch int8 step", info)


def _metadata(exporter, src: _Source, precision: str, layout: str, s: int, quant_info, streaming: bool):
    """metadata.json of the artifact, and the streaming section (None for a clip model)."""
    ckpt, model = src.ckpt, src.reference
    name = f"{ckpt.path.stem}_{precision}{'_streaming' if streaming else ''}{exporter.suffix}"
    meta = build_metadata(target=exporter.name, precision=precision, artifact=name, layout=layout, labels=ckpt.labels,
                          segments=src.t, size=s, preprocess=ckpt.preprocess, model_config=model.config,
                          checkpoint_name=ckpt.path.name, checkpoint_sha256=ckpt.sha256, quantization=quant_info)
    section = streaming_section(model, s, precision) if streaming else None
    return (add_streaming(meta, section) if section is not None else meta), section


def _convert(exporter, src: _Source, art: _Artifact, example, precision: str, artifact: Path, layout: str,
             meta: dict, io: dict, s: int, options: dict) -> tuple[dict, float]:
    """The exporter's conversion into ``artifact``; returns its info and the seconds it took."""
    cfg = src.reference.config
    log.info("converting %s (%s/%s, %s %d, %d px) to %s %s %s", src.ckpt.path.name, cfg["arch"], cfg["temporal"],
             "streaming step, window" if io else "T =", src.t, s, exporter.name, precision, layout)
    t0 = time.perf_counter()
    info = exporter.convert(art.model, example, precision, artifact, layout=layout, metadata=meta, **io, **options)
    if not artifact.exists():
        raise RuntimeError(f"{exporter.name} exporter wrote no artifact at {artifact}")
    return info, time.perf_counter() - t0


def _report(meta: dict, src: _Source, art: _Artifact, artifact: Path, info: dict, parity: dict, th: Thresholds,
            section: dict | None, convert_s: float, t_start: float, layout: str) -> dict[str, Any]:
    """report.json: what was converted, how, and its parity."""
    report = {
        "target": meta["target"], "precision": meta["precision"], "layout": layout, "artifact": meta["artifact"],
        "size_bytes": _size(artifact), "convert_seconds": round(convert_s, 2),
        "export_seconds": round(time.perf_counter() - t_start, 2),
        "checkpoint": {"path": str(src.ckpt.path), "sha256": src.ckpt.sha256}, "quantization": art.quant_info,
        "convert": info, "parity": parity, "thresholds": th.to_dict(),
    }
    if section is not None:
        report["streaming"] = {"window": section["window"], "state_tensors": len(section["state"]),
                               "state_floats": section["state_floats"]}
    return report


def _publish(tmp: Path, out: Path, meta: dict, report: dict, force: bool) -> None:
    """Write the two JSON documents, fsync the folder's files and move it into place (see the module docstring)."""
    (tmp / "metadata.json").write_text(json.dumps(meta, indent=2))
    fault_point("publish.metadata")
    (tmp / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    for p in tmp.iterdir():
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
    fault_point("publish.ready")
    publish_dir(tmp, out, force)
    fault_point("publish.done")


def _parity(exporter, artifact: Path, layout: str, precision: str, model, quant_model, t: int, s: int, mean, std,
            data_root, dataset, n: int, verify: bool, th: Thresholds, section: dict | None = None,
            ref_name: str = "float") -> dict[str, Any]:
    """Parity of the artifact with ``model`` (with ``section``: the streaming step, frame by frame)."""
    if not verify:
        log.warning("*** --no-verify: parity NOT checked; %s was never run in its runtime ***", artifact.name)
        return {"verified": False, "skipped": "--no-verify: nothing was checked"}
    if n * (t if section else 1) < 32:
        log.warning("parity on %d %s (32 or more advised)", n * (t if section else 1), "frames" if section else "clips")
    try:
        if section is None:
            run = exporter.load(artifact, layout=layout)
        else:
            run = StreamRunner.load(exporter, artifact, section)
    except RuntimeUnavailable as e:
        log.warning("parity skipped: %s", e)
        return {"verified": False, "skipped": str(e)}
    except ActionNetError:
        raise
    except Exception as e:  # the runtime refuses the artifact: the export is broken, said in one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ActionNetError(f"{artifact.name} does not load in its own runtime ({type(e).__name__}: {first}); "
                             f"the runtime's messages are in the log") from e
    clips, source = sample_clips(n, t, s, mean, std, data_root=data_root, dataset=dataset, split="val", seed=0)
    if section is not None:
        return _check({**stream_parity(run, model, clips, precision, th), "reference": ref_name}, artifact, source)
    t0 = time.perf_counter()
    out = np.asarray(run(clips.numpy().astype(np.float32)), dtype=np.float32)
    run_s = time.perf_counter() - t0
    float_ref = _run_torch(model, clips)
    quant_ref = _run_torch(quant_model, clips) if quant_model is not None else None
    if out.shape != float_ref.shape:
        raise ActionNetError(f"{artifact.name}: runtime output shape {out.shape} != expected {float_ref.shape}")
    res = evaluate(precision, out, float_ref, quant_ref, th)
    res.update(runtime_seconds_per_clip=round(run_s / len(clips), 4), reference=ref_name)
    return _check(res, artifact, source)


def _check(res: dict[str, Any], artifact: Path, source: str) -> dict[str, Any]:
    """Record where the clips came from; a failed check is an error naming what missed."""
    res.update(verified=True, source=source)
    line = summary(res)
    if not res["passed"]:
        raise ActionNetError(f"parity failed for {artifact.name} ({'; '.join(res['failures'])}): {line}")
    log.info("parity passed: %s", line)
    return res


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)
