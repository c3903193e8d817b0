"""``export_model``: checkpoint -> edge form -> (int8: PT2E quantization) -> artifact -> parity.

With ``streaming=True`` the frame-by-frame step of a causal checkpoint is exported instead
(its state as named inputs/outputs, :mod:`.streaming`), through the same exporters, checks
and folder handling.

Everything is written into a temporary folder next to the output and moved into place only
when parity passes (or verification was switched off, which is logged loudly), so a failed
export leaves nothing behind.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint, bundled_checkpoint, load_checkpoint, read_checkpoint
from ..errors import ActionNetError, unknown_name
from . import get_exporter
from .base import LAYOUTS, RuntimeUnavailable
from .edge import to_edge
from .metadata import build_metadata
from .parity import Thresholds, evaluate, summary
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


# ---------------------------------------------------------------------------------------
# clips for parity and calibration


def sample_clips(n: int, segments: int, size: int, mean, std, *, data_root: str | Path | None = None,
                 dataset: str | None = None, split: str = "val", seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` normalised clips (n, T, 3, S, S) and where they came from.

    The ``split`` of a dataset on disk when ``data_root`` is given, else the synthetic
    gesture generator (``actionnet_edge.data`` dataset ``synthetic``); uniform noise only if
    that generator is not part of this installation.
    """
    from ..data import build_dataset

    if data_root is not None:
        if not dataset:
            raise ActionNetError("--data-root needs --dataset (the reader of that folder)")
        ds, source = build_dataset(dataset, data_root, split, segments=segments, size=size, train=False,
                                   mean=mean, std=std, seed=seed), f"{dataset}:{split} ({data_root})"
    else:
        try:
            ds = build_dataset("synthetic", None, split, segments=segments, size=size, train=False,
                               mean=mean, std=std, seed=seed)
            source = f"synthetic:{split}"
        except ImportError as e:  # the generator module is not in this installation
            log.warning("synthetic clip generator unavailable (%s): using uniform noise clips", e)
            g = torch.Generator().manual_seed(seed)
            x = torch.rand(n, segments, 3, size, size, generator=g)
            m, s = torch.tensor(mean).view(1, 1, 3, 1, 1), torch.tensor(std).view(1, 1, 3, 1, 1)
            return (x - m) / s, "uniform noise"
    clips = []
    for i in range(len(ds)):
        item = ds[i]
        clip = getattr(item, "clip", None)
        if clip is None:  # a BadSample
            continue
        clips.append(clip.reshape(-1, segments, 3, size, size))
        if sum(c.shape[0] for c in clips) >= n:
            break
    if not clips:
        raise ActionNetError(f"no readable clips in {source}")
    x = torch.cat(clips)[:n].float()
    if x.shape[0] < n:
        log.warning("only %d clips available in %s (asked for %d)", x.shape[0], source, n)
    return x, source


# ---------------------------------------------------------------------------------------


@dataclass
class _Source:
    """What an export starts from: the float reference model, its edge form, and the QAT state if any."""

    ckpt: Checkpoint
    reference: torch.nn.Module  # float model the artifact is compared with
    edge: torch.nn.Module  # its edge form (what gets converted / quantized)
    qat_state: dict | None


def _load_source(checkpoint: str | Path | None, segments: int | None) -> _Source:
    """The float model of a checkpoint (rebuilt for ``segments`` if given) and its QAT state, if any."""
    if checkpoint is None and not bundled_checkpoint().is_file():
        raise ActionNetError(f"the bundled model {bundled_checkpoint().name} is not installed; pass --checkpoint CKPT")
    raw = read_checkpoint(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if isinstance(raw.get("qat"), dict):
        from ..quant import load_qat_checkpoint

        qat = load_qat_checkpoint(ckpt.path)
        if segments is not None and int(segments) != ckpt.model.config["num_segments"]:
            raise ActionNetError("--segments cannot change T of a QAT checkpoint (its graph is fixed); re-run QAT")
        edge = qat.edge_model()  # the QAT-tuned float weights: reference and edge form at once
        return _Source(ckpt, edge, edge, qat.state)
    if segments is not None and int(segments) != ckpt.model.config["num_segments"]:
        from ..models import build_from_config

        model = build_from_config({**ckpt.model.config, "num_segments": int(segments)})
        model.load_state_dict(ckpt.model.state_dict())  # temporal kernels do not depend on T
        ckpt.model = model.eval()
    return _Source(ckpt, ckpt.model.eval(), to_edge(ckpt.model), None)


def _quantize(edge: torch.nn.Module, backend: str, calib: torch.Tensor | None, qat_state: dict | None):
    try:
        from ..quant import quantize
    except ImportError as e:
        raise ActionNetError(f"int8 export needs actionnet_edge.quant, which is not available ({e})") from None
    batches = None if calib is None else [c[None] for c in calib]
    return quantize(edge, backend, calib=batches, qat_state=qat_state)


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
        streaming: export the frame-by-frame step of a causal checkpoint (fp32, NCHW); ``segments``
            is then the window of frames the logits average over (default: the checkpoint's T).
        options: passed to the exporter's ``convert`` (e.g. ``converter="onnx2tf"``).
    """
    t_start = time.perf_counter()
    exporter = get_exporter(target)
    if precision not in exporter.precisions:
        raise unknown_name(f"precision for {target}", precision, exporter.precisions)
    if layout not in LAYOUTS:
        raise unknown_name("layout", layout, LAYOUTS)
    if parity_clips is None:
        parity_clips = DEFAULT_PARITY_CLIPS if streaming else 32
    if parity_clips < 1 or calib_clips < 1:
        raise ActionNetError("--parity-clips and --calib-clips must be positive")
    if streaming and precision != "fp32":
        raise ActionNetError(f"--streaming exports fp32 only; {precision} streaming is not supported")
    if streaming and layout != "NCHW":
        raise ActionNetError("--streaming takes NCHW frames (1, 3, S, S) only; drop --layout NHWC")
    out = Path(output) if output is not None else default_output(checkpoint, target, precision, streaming)
    if out.exists() and not force:
        raise ActionNetError(f"output {out} already exists; pass --force to replace it")
    if data_root is not None and not Path(data_root).exists():
        raise ActionNetError(f"data root not found: {data_root}")
    if data_root is not None and not dataset:
        raise ActionNetError("--data-root needs --dataset (the reader of that folder)")
    exporter.check_available()
    th = thresholds or Thresholds()

    if streaming:  # the step is all 4-D already: it is its own edge form
        ckpt, model = load_stream_source(checkpoint, segments)
        model.set_state_layout(exporter.stream_state_layout)
        qat_state, edge, t = None, model, model.window
    else:
        src = _load_source(checkpoint, segments)
        ckpt, qat_state, model, edge = src.ckpt, src.qat_state, src.reference, src.edge
        t = int(model.config["num_segments"])
    s = int(size or ckpt.preprocess["size"])
    if s < 32:
        raise ActionNetError(f"--size must be at least 32, got {s}")
    if qat_state is not None and precision == "int8" and s != qat_state["input_shape"][-1]:
        raise ActionNetError(f"--size {s} differs from the {qat_state['input_shape'][-1]} px this QAT checkpoint was "
                             "trained at; export at that size or re-run QAT")
    if qat_state is not None and precision != "int8":
        log.warning("%s is a QAT checkpoint: exporting its float weights at %s", ckpt.path.name, precision)
    mean, std = ckpt.preprocess["mean"], ckpt.preprocess["std"]
    example = torch.zeros(1, t, 3, s, s)
    io: dict[str, Any] = {}
    if streaming:
        example = (torch.zeros(1, 3, s, s), *model.init_state(1, s))
        io["input_names"], io["output_names"] = io_names(model.state_spec(1, s))

    quant_info = None
    export_model_, reference, ref_name = edge, model, "float"  # what the artifact's outputs are checked against
    if precision == "int8":
        if exporter.quant_backend is None:
            raise ActionNetError(f"{target} has no int8 quantizer")
        calib = None
        if qat_state is None:
            calib, calib_src = sample_clips(calib_clips, t, s, mean, std, data_root=data_root, dataset=dataset,
                                            split="train", seed=1)
            log.warning("%s is a float checkpoint: int8 by post-training calibration on %d clips (%s), not QAT",
                        ckpt.path.name, calib.shape[0], calib_src)
            quant_info = {"method": "ptq", "backend": exporter.quant_backend, "calibration_clips": int(calib.shape[0]),
                          "calibration_source": calib_src}
        else:
            from ..quant import fake_quant_model

            quant_info = {"method": "qat", "backend": exporter.quant_backend,
                          "qat_input_shape": qat_state["input_shape"],
                          "parity_reference": "the QAT checkpoint's fake-quantized model (what QAT trained)"}
            reference, ref_name = fake_quant_model(edge, exporter.quant_backend, qat_state), "fake-quant QAT model"
        export_model_ = _quantize(edge, exporter.quant_backend, calib, qat_state)

    name = f"{ckpt.path.stem}_{precision}{'_streaming' if streaming else ''}{exporter.suffix}"
    meta = build_metadata(target=target, precision=precision, artifact=name, layout=layout, labels=ckpt.labels,
                          segments=t, size=s, preprocess=ckpt.preprocess, model_config=model.config,
                          checkpoint_name=ckpt.path.name, checkpoint_sha256=ckpt.sha256, quantization=quant_info)
    section = streaming_section(model, s) if streaming else None
    if section is not None:
        meta = add_streaming(meta, section)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        artifact = tmp / name
        log.info("converting %s (%s/%s, %s %d, %d px) to %s %s %s", ckpt.path.name, model.config["arch"],
                 model.config["temporal"], "streaming step, window" if streaming else "T =", t, s, target, precision,
                 layout)
        t0 = time.perf_counter()
        info = exporter.convert(export_model_, example, precision, artifact, layout=layout, metadata=meta, **io,
                                **options)
        convert_s = time.perf_counter() - t0
        if not artifact.exists():
            raise RuntimeError(f"{target} exporter wrote no artifact at {artifact}")
        parity = _parity(exporter, artifact, layout, precision, reference,
                         export_model_ if precision == "int8" else None, t, s, mean, std, data_root, dataset,
                         parity_clips, verify, th, section, ref_name)
        from .vectors import VECTOR_CLIPS, write_vectors  # test vectors beside the artifact (actionnet-edge verify)
        meta["vectors"] = write_vectors(tmp, exporter if verify else None, artifact, meta, th, reference,
                                        export_model_ if precision == "int8" else None, model if streaming else None,
                                        sample_clips(2 * VECTOR_CLIPS, t, s, mean, std, seed=3)[0])
        report = {
            "target": target, "precision": precision, "layout": layout, "artifact": name,
            "size_bytes": _size(artifact), "convert_seconds": round(convert_s, 2),
            "export_seconds": round(time.perf_counter() - t_start, 2),
            "checkpoint": {"path": str(ckpt.path), "sha256": ckpt.sha256}, "quantization": quant_info,
            "convert": info, "parity": parity, "thresholds": th.to_dict(),
        }
        if section is not None:
            report["streaming"] = {"window": section["window"], "state_tensors": len(section["state"]),
                                   "state_floats": section["state_floats"]}
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2))
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
        if out.exists():  # --force
            shutil.rmtree(out) if out.is_dir() and not out.is_symlink() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s (%s, %.1f MB) in %.1fs", out / name, target, report["size_bytes"] / 1e6, report["export_seconds"])
    return ExportResult(out, out / name, meta, report)


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
    clips, source = sample_clips(n, t, s, mean, std, data_root=data_root, dataset=dataset, split="val", seed=0)
    if section is not None:
        return _check(stream_parity(run, model, clips, precision, th), artifact, source)
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
