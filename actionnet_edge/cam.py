"""Class activation maps (CAM, Zhou et al. 2016) over the T frames of a clip, as in Fig. 1
of the ACTION-Net paper: the last convolutional feature map of every frame weighted by the
classifier row of the target class.

With global average pooling, a linear classifier and TSN's average consensus, the CAM is
exact: the spatial mean of frame t's map plus the class bias *is* frame t's logit for
that class (``frame_logits[t, k]``), and the mean over t is the clip logit. This works for
every backbone and temporal module, because it only needs the backbone's last 4-D output
whose channel count is the classifier's input size.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ActionNetError, unknown_name
from .models import check_input_size
from .fsutil import check_writable

log = logging.getLogger(__name__)

_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d)


@dataclass
class CamResult:
    """CAMs of one model on one clip."""

    cams: np.ndarray  # (T, h, w) float32, raw class evidence (logit units before the bias)
    target: int  # class index the maps are for
    frame_logits: np.ndarray  # (T, K)
    probs: np.ndarray  # (K,) softmax of the clip logits

    def normalised(self, size: int | None = None) -> np.ndarray:
        """Maps scaled to 0..1 with ONE min/max over all frames (so frames compare), optionally
        upsampled bilinearly to ``size`` x ``size``."""
        cams = torch.from_numpy(self.cams)[:, None]
        if size is not None:
            cams = F.interpolate(cams, size=(size, size), mode="bilinear", align_corners=False)
        cams = cams[:, 0]
        lo, hi = cams.min(), cams.max()
        return ((cams - lo) / (hi - lo).clamp_min(1e-12)).numpy()


def last_feature_map(model: nn.Module, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model.frame_logits`` on ``clip`` (N, T, 3, H, W) and capture the backbone's last
    4-D activation with ``fc.in_features`` channels (not a pooling output).

    Returns ``(features (N*T, C, h, w), frame_logits (N, T, K))``.
    """
    channels = model.fc.in_features
    seen: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[1] == channels \
                and not isinstance(module, _POOLS):
            seen.append(output)

    handles = [m.register_forward_hook(hook) for m in model.backbone.modules()]
    try:
        with torch.no_grad():
            logits = model.frame_logits(clip)
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ActionNetError(f"no {channels}-channel feature map found in the {type(model.backbone).__name__} backbone")
    return seen[-1], logits


def class_activation_maps(model: nn.Module, clip: torch.Tensor, target: int | None = None) -> CamResult:
    """CAMs of ``model`` (an eval-mode :class:`~actionnet_edge.models.ActionNet`) for one
    preprocessed clip (1, T, 3, H, W) or (T, 3, H, W); ``target`` defaults to the prediction."""
    if clip.dim() == 4:
        clip = clip[None]
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (1, T, 3, H, W), got {tuple(clip.shape)}")
    model.eval()
    feats, frame_logits = last_feature_map(model, clip)
    clip_logits = model.consensus(frame_logits)[0]
    k = int(clip_logits.argmax()) if target is None else int(target)
    if not 0 <= k < clip_logits.numel():
        raise ActionNetError(f"class index {k} out of range for a {clip_logits.numel()}-class model")
    weight = model.fc.weight[k].detach()  # (C,)
    cams = torch.einsum("c,tchw->thw", weight, feats.detach())
    return CamResult(
        cams=cams.float().numpy(),
        target=k,
        frame_logits=frame_logits[0].detach().numpy(),
        probs=torch.softmax(clip_logits, 0).detach().numpy(),
    )


# ----------------------------------------------------------------------------- video


def read_clip(path: str | Path, num_segments: int, preprocess: Mapping[str, Any]) -> tuple[np.ndarray, torch.Tensor]:
    """Decode ``path`` (video file or frame folder), take TSN's T segment-centre frames and
    preprocess them exactly as the demos do (:class:`actionnet_edge.demo.window.Preprocess`).

    Returns ``(display, clip)``: uint8 (T, size, size, 3) RGB crops to draw, and the
    normalised float clip (1, T, 3, size, size) for the model.
    """
    from .data.sampling import segment_indices
    from .data.video import DecodeError, open_source
    from .demo.window import Preprocess

    path = Path(path)
    if not path.exists():
        raise ActionNetError(f"video not found: {path}")
    pre = Preprocess.from_metadata(preprocess)
    try:
        src = open_source(path)
        idx = segment_indices(len(src), num_segments, train=False)
        frames = src.read(idx).permute(0, 2, 3, 1).numpy()  # (T, H, W, 3) uint8
    except DecodeError as e:
        raise ActionNetError(f"cannot read video {path}: {e}") from None
    log.info("%s: %d frames, sampled %s", path.name, len(src), idx)
    clip = np.stack([pre(f) for f in frames])  # (T, 3, S, S)
    mean, std = np.asarray(pre.mean)[:, None, None], np.asarray(pre.std)[:, None, None]
    display = ((clip * std + mean) * 255.0).round().clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return display, torch.from_numpy(clip)[None]


# ----------------------------------------------------------------------------- figure


@dataclass
class CamRow:
    """One row of the figure: the checkpoint it comes from, its model's name and its CAMs."""

    name: str
    result: CamResult
    label: str
    checkpoint: str = ""


CMAP = "jet"
COLORBAR_LABEL = "class evidence (0 = the row's min, 1 = its max)"


def grid_figure(frames: np.ndarray, rows: list[CamRow], alpha: float = 0.5):
    """The figure: the frames on the first row, one CAM overlay row per model, each row named by
    its checkpoint, model and target class, and a colour bar for the maps' scale (each row is
    scaled to 0..1 over all its frames, so a row's frames compare)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    t, size = frames.shape[0], frames.shape[1]
    fig = plt.figure(figsize=(1.6 * t + 0.8, 1.75 * (len(rows) + 1)), layout="constrained")
    grid = fig.add_gridspec(len(rows) + 1, t + 1, width_ratios=[1.0] * t + [0.08])
    axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(t)] for i in range(len(rows) + 1)])
    cmap = plt.get_cmap(CMAP)
    for j in range(t):
        axes[0, j].imshow(frames[j])
        axes[0, j].set_title(f"t={j}", fontsize=8)
    for i, row in enumerate(rows, start=1):
        cams = row.result.normalised(size)
        for j in range(t):
            heat = cmap(cams[j])[..., :3]
            axes[i, j].imshow(((1 - alpha) * frames[j] / 255.0 + alpha * heat).clip(0, 1))
        p = float(row.result.probs[row.result.target])
        head = f"{row.checkpoint}\n" if row.checkpoint else ""
        axes[i, 0].set_ylabel(f"{head}{row.name}\n{row.label} {p:.2f}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=7)
    if rows:
        bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), cax=fig.add_subplot(grid[1:, t]))
        bar.set_label(COLORBAR_LABEL, fontsize=7)
        bar.ax.tick_params(labelsize=6)
    return fig


def render_grid(frames: np.ndarray, rows: list[CamRow], out: str | Path, alpha: float = 0.5) -> Path:
    """Write :func:`grid_figure` as a PNG (paper Fig. 1 / Figs. 3-5), to a temporary file moved
    into place."""
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ActionNetError(f"--out must be a .png file, got {out}")
    fig = grid_figure(frames, rows, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out


def _row_names(paths: Sequence[Path]) -> list[str]:
    """Checkpoint names for the rows: the file names, with their folder where two names repeat."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


_METHOD = {"none": "TSN", "shift": "TSM", "shift_online": "TSM online", "action": "ACTION", "ste": "STE", "ce": "CE", "me": "ME"}


def cam_video(
    video: str | Path,
    checkpoints: Sequence[str | Path | None],
    out: str | Path,
    label: str | None = None,
    size: int | None = None,
) -> dict:
    """CAMs of one or more checkpoints on one video, written as a PNG grid.

    All checkpoints must share T and the input size (one frame row serves every model).
    ``label`` picks the target class by name (default: each model's own prediction).
    ``size`` runs the models at another input side than their checkpoints' (the networks are
    fully convolutional; the maps have about size/32 cells a side), ``resize`` scaled with it.
    Returns a JSON-able summary (per model: target class, its probability, top-1).
    """
    from .checkpoint import load_checkpoint

    if Path(out).suffix.lower() != ".png":
        raise ActionNetError(f"--out must be a .png file, got {out}")
    check_writable(out, "--out")  # before the work, not after it
    if not checkpoints:
        checkpoints = [None]
    if size is not None:
        check_input_size(size, "--size")
    ckpts = [load_checkpoint(c) for c in checkpoints]
    if size is not None:
        for c in ckpts:
            old = int(c.preprocess["size"])
            resize = int(c.preprocess.get("resize") or round(old * 256 / 224))
            c.preprocess = dict(c.preprocess, size=size, resize=max(size, int(math.floor(size * resize / old + 0.5))))
    first = ckpts[0]
    t, size = first.model.config["num_segments"], int(first.preprocess["size"])
    for c in ckpts[1:]:
        if c.model.config["num_segments"] != t or int(c.preprocess["size"]) != size:
            raise ActionNetError(
                f"{c.path}: {c.model.config['num_segments']} frames at {c.preprocess['size']} px, but "
                f"{first.path} takes {t} at {size}; compared checkpoints must share both (or pass --size)"
            )
    targets: list[int | None] = []
    for c in ckpts:
        if label is not None and label not in c.labels:
            raise unknown_name(f"label of {c.path.name}", label, c.labels)
        targets.append(None if label is None else c.labels.index(label))
    frames, first_clip = read_clip(video, t, first.preprocess)
    rows, summary = [], []
    for c, target, ckpt_name in zip(ckpts, targets, _row_names([Path(c.path) for c in ckpts])):
        _, clip = read_clip(video, t, c.preprocess) if c.preprocess != first.preprocess else (None, first_clip)
        res = class_activation_maps(c.model, clip, target)
        if res.cams.shape[1] * res.cams.shape[2] == 1:
            log.warning("%s: the last feature map is 1x1 at %d px, so its CAM has no spatial detail; a larger "
                        "--size gives spatial maps, but a model is only reliable at the size it was trained at",
                        c.path.name, size)
        cfg = c.model.config
        name = f"{_METHOD.get(cfg['temporal'], cfg['temporal'])} ({cfg['arch']})"
        rows.append(CamRow(name, res, c.labels[res.target], ckpt_name))
        top1 = int(res.probs.argmax())
        summary.append({"checkpoint": str(c.path), "method": name, "target": c.labels[res.target],
                        "target_prob": float(res.probs[res.target]), "top1": c.labels[top1],
                        "top1_prob": float(res.probs[top1])})
        log.info("%s: CAM for '%s' (p=%.3f), top-1 '%s'", name, c.labels[res.target], res.probs[res.target], c.labels[top1])
    path = render_grid(frames, rows, out)
    return {"video": str(video), "out": str(path), "frames": t, "size": size, "rows": summary}
