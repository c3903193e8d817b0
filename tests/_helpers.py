"""Plain test helpers: tiny models and their checkpoints, an ONNX export of a model, synthetic
gesture frames and videos, and which export targets are installed. Fixtures are in conftest.py."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

T, SIZE, K = 4, 64, 5
#: the backbone of the tests' tiny models: MobileNetV2's first three stages, a third of the graph to convert
ARCH = "test_mobilenet_v2"
# what an export folder holds beside its artifact (the CLI adds its actionnet-edge.log)
EXPORT_FILES = ["metadata.json", "report.json", "vectors.bin", "vectors.json"]


def embedded_part(meta: dict) -> dict:
    """metadata.json as the artifact embeds it: all but the ``vectors`` section, which names the
    test-vector files written beside the artifact after the conversion."""
    return {k: v for k, v in meta.items() if k != "vectors"}


def export_test_model(causal: bool = False, temporal_noise: float = 0.0, seed: int = 0) -> torch.nn.Module:
    """test MobileNetV2-ACTION x0.25 (:data:`ARCH`), T=4, K=5, eval mode: BN variances and a classifier that give
    logits of order 1; ``temporal_noise`` moves the temporal weights off their init."""
    from actionnet_edge.models import create_model

    torch.manual_seed(seed)
    m = create_model(ARCH, "action", T, K, 0.25, dropout=0.0, causal=causal)
    with torch.no_grad():
        for name, b in m.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand_like(b) * 0.5 + 0.5)
        if temporal_noise:
            for name, p in m.named_parameters():
                if ".temporal." in name:
                    p.add_(temporal_noise * torch.randn_like(p))
        torch.nn.init.normal_(m.fc.weight, 0, 1.0)
    return m.eval()


def save_test_checkpoint(path: Path, model: torch.nn.Module, labels: list[str] | None = None) -> Path:
    """``model`` as a checkpoint for SIZE px inputs (labels default to ``gesture i``)."""
    from actionnet_edge.checkpoint import default_preprocess, save_checkpoint

    labels = labels or [f"gesture {i}" for i in range(int(model.config["num_classes"]))]
    save_checkpoint(path, model, labels, default_preprocess(model, SIZE))
    return path


def target_available(name: str) -> bool:
    """The export target is registered and its toolchain is installed."""
    from actionnet_edge.errors import ActionNetError
    from actionnet_edge.export import EXPORTERS

    try:
        EXPORTERS[name].check_available()
        return True
    except (KeyError, ActionNetError):
        return False


def export_onnx(model: torch.nn.Module, labels: list[str], size: int, out: Path) -> Path:
    """An ONNX artifact folder of ``model``: the project's exporter when it is installed,
    else torch.onnx + a metadata.json of the same shape (labels, segments, size, ...)."""
    from actionnet_edge.export import EXPORTERS

    t = int(model.config["num_segments"])
    if "onnx" in EXPORTERS:
        try:
            from actionnet_edge.checkpoint import default_preprocess, save_checkpoint
            from actionnet_edge.export import export_model

            ckpt = out.parent / f"{out.name}.pt"
            save_checkpoint(ckpt, model, labels, default_preprocess(model, size))
            export_model(ckpt, "onnx", out, parity_clips=8)
            return out
        except ImportError:
            log.warning("export_model is not available yet; exporting with torch.onnx")
    out.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, t, 3, size, size)
    torch.onnx.export(model.eval(), (x,), out / "model.onnx", input_names=["clips"], output_names=["logits"],
                      dynamo=True, external_data=False, verbose=False)
    meta = {"labels": labels, "segments": t, "size": size, "resize": round(size * 256 / 224),
            "mean": [float(v) for v in model.mean], "std": [float(v) for v in model.std],
            "layout": "NCHW", "target": "onnx", "precision": "fp32", "artifact": "model.onnx",
            "input": "clips", "output": "logits"}
    (out / "metadata.json").write_text(json.dumps(meta, indent=1))
    return out


def tiny_model(seed: int = 0) -> torch.nn.Module:
    from actionnet_edge.models import create_model

    torch.manual_seed(seed)
    m = create_model(ARCH, "action", num_segments=T, num_classes=K, width_mult=0.25, dropout=0.0)
    m.eval()
    # random BN statistics so the logits differ clearly between clips
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def moving_square(n: int = 24, h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """RGB uint8 frames (n, h, w, 3): a coloured square sliding right over a textured background."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(20, 90, size=(-(-h // 8), -(-w // 8), 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:h, :w]
    frames = np.repeat(bg[None], n, axis=0)
    for i in range(n):
        x = int(8 + i * (w - 48) / max(n - 1, 1))
        frames[i, h // 3: h // 3 + 36, x: x + 36] = (230, 70, 40)
    return frames


def write_mp4(frames: np.ndarray, path: Path, fps: int = 15) -> Path:
    """Frames (n, h, w, 3) RGB uint8 as an MPEG-4 .mp4 (PyAV)."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path
