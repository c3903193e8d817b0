"""Evaluation: top-1/top-5, per-class accuracy, confusion matrix, skipped samples.

:func:`evaluate` is the one evaluation loop: the ``evaluate`` command and the training
loop's validation both call it. Multi-view batches ``(N, V, T, 3, S, S)`` (the paper's
10-clip x 3-crop protocol) are scored by averaging the softmax of the V views.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import collate
from ..errors import ActionNetError
from ..fsutil import atomic_write, sweep_stale
from ..progress import bar_enabled, progress

log = logging.getLogger(__name__)

__all__ = ["evaluate", "write_report", "format_report"]


def _loader(data: Dataset | DataLoader, batch_size: int, num_workers: int) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)


def _set_train_mode(model: torch.nn.Module, training: bool) -> None:
    model.train(training)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset | DataLoader, *, labels: Sequence[str] | None = None,
             class_map: Sequence[int] | None = None, batch_size: int = 8, num_workers: int = 0,
             device: str | torch.device | None = None, log_every: float = 10.0,
             set_train_mode: Callable[[torch.nn.Module, bool], None] = _set_train_mode) -> dict[str, Any]:
    """Score ``model`` on every sample of ``data`` (a dataset or a loader using :func:`~actionnet_edge.data.collate`).

    Under ``torch.distributed`` (each rank given its shard, e.g. by a ``DistributedSampler``
    loader) the counts are summed over the ranks, so every rank returns the global figures.

    Args:
        labels: class names of the model's outputs (default: ``data.labels``).
        class_map: dataset class id -> model class id, when the two label lists differ in order.
        device: where to run (default: where the model's parameters are).
        log_every: seconds between progress lines (throughput and ETA) when no progress bar is drawn.
        set_train_mode: switches the model between train and eval mode (PT2E QAT graphs need
            their own function); the model's mode is restored afterwards.

    Returns:
        ``top1``, ``top5`` (fractions), ``mean_class_accuracy``, ``loss`` (cross-entropy of the
        view-averaged probabilities), ``num_samples``, ``views``, ``per_class`` (label,
        accuracy, support), ``confusion`` (rows = true class, columns = predicted),
        ``labels``, ``skipped`` and ``skipped_samples`` (name, reason).
    """
    base = data.dataset if isinstance(data, DataLoader) else data
    shard = len(base) if hasattr(base, "__len__") else None
    while isinstance(base, Subset):  # a shard (DDP) or a slice of a dataset
        base = base.dataset
    labels = list(labels if labels is not None else base.labels)
    tally = _Tally(len(labels), torch.as_tensor(list(class_map), dtype=torch.long) if class_map is not None else None)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    set_train_mode(model, False)
    t0 = last = time.perf_counter()
    try:
        with progress(shard, "evaluate") as bar:
            for batch in _loader(data, batch_size, num_workers):
                done = tally.add(model, batch, device)
                bar.update(done)
                now = time.perf_counter()
                if log_every and not bar_enabled() and now - last >= log_every:
                    _log_progress(tally.seen + len(tally.bad), shard, now - t0)
                    last = now
    finally:
        set_train_mode(model, was_training)
    tally.reduce_ranks()
    for name, reason in tally.bad:
        log.warning("skipped %s: %s", name, reason)
    if tally.seen == 0:
        first = f" (e.g. {tally.bad[0][0]}: {tally.bad[0][1]})" if tally.bad else ""
        raise ActionNetError(f"no usable samples to evaluate: {len(tally.bad)} read, all bad{first}")
    return tally.summary(labels, time.perf_counter() - t0)


def _log_progress(done: int, total: int | None, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if total and rate > 0 else float("nan")
    log.info("evaluate: %d/%s clips, %.1f clips/s, ETA %.0fs", done, total or "?", rate, eta)


class _Tally:
    """The counts :func:`evaluate` accumulates: confusion matrix, top-5 hits, NLL, skipped samples."""

    def __init__(self, k: int, cmap: torch.Tensor | None) -> None:
        self.k, self.cmap = k, cmap
        self.confusion = torch.zeros(k, k, dtype=torch.long)
        self.correct5, self.nll, self.seen, self.views = 0, 0.0, 0, 1
        self.bad: list[tuple[str, str]] = []

    def add(self, model: torch.nn.Module, batch: dict[str, Any], device: torch.device) -> int:
        """Score one collated batch (``(N, T, ...)`` or multi-view ``(N, V, T, ...)``); returns its samples."""
        self.bad += batch["bad"]
        clips, target = batch["clips"], batch["labels"]
        if not target.numel():
            return len(batch["bad"])
        k = self.k
        if self.cmap is not None:
            target = self.cmap[target]
        n = clips.shape[0]
        self.views = clips.shape[1] if clips.ndim == 6 else 1
        logits = model(clips.reshape(n * self.views, *clips.shape[-4:]).to(device)).float().cpu()
        if logits.shape[-1] != k:
            raise ValueError(f"model has {logits.shape[-1]} outputs but there are {k} labels")
        probs = logits.softmax(-1).view(n, self.views, k).mean(1)
        self.confusion.view(-1).index_add_(0, target * k + probs.argmax(-1), torch.ones_like(target))
        top = probs.topk(min(5, k), dim=-1).indices
        self.correct5 += int((top == target[:, None]).any(-1).sum())
        self.nll += float(-probs.gather(1, target[:, None]).clamp_min(1e-12).log().sum())
        self.seen += n
        return n + len(batch["bad"])

    def reduce_ranks(self) -> None:
        """Sum the counts over the DDP ranks (each scored its shard)."""
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return
        sums = torch.tensor([self.seen, self.correct5, self.nll], dtype=torch.float64)
        dist.all_reduce(sums)
        dist.all_reduce(self.confusion)
        everyone: list = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, self.bad)
        self.seen, self.correct5, self.nll = int(sums[0]), int(sums[1]), float(sums[2])
        self.bad = [b for rank in everyone for b in rank]

    def summary(self, labels: list[str], elapsed: float) -> dict[str, Any]:
        seen, confusion = self.seen, self.confusion
        support, hits = confusion.sum(1), confusion.diag()
        per_class = [{"label": labels[i], "accuracy": (hits[i] / support[i]).item() if support[i] else None,
                      "support": int(support[i])} for i in range(self.k)]
        present = [c["accuracy"] for c in per_class if c["accuracy"] is not None]
        return {
            "top1": hits.sum().item() / seen if seen else 0.0,
            "top5": self.correct5 / seen if seen else 0.0,
            "mean_class_accuracy": sum(present) / len(present) if present else 0.0,
            "loss": self.nll / seen if seen else math.nan,
            "num_samples": seen,
            "views": self.views,
            "seconds": round(elapsed, 3),
            "clips_per_second": round(seen / elapsed, 2) if elapsed > 0 else None,
            "labels": labels,
            "per_class": per_class,
            "confusion": confusion.tolist(),
            "skipped": len(self.bad),
            "skipped_samples": [{"name": n, "reason": r} for n, r in self.bad],
        }


def write_report(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``confusion.json`` and ``confusion.png`` into ``out_dir`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale(out)
    paths = {"metrics": out / "metrics.json", "confusion_json": out / "confusion.json", "confusion_png": out / "confusion.png"}
    metrics = {k: v for k, v in result.items() if k != "confusion"}
    atomic_write(paths["metrics"], lambda p: Path(p).write_text(json.dumps(metrics, indent=2) + "\n"))
    atomic_write(paths["confusion_json"], lambda p: Path(p).write_text(
        json.dumps({"labels": result["labels"], "rows": "true class", "columns": "predicted class",
                    "matrix": result["confusion"]}) + "\n"))

    labels, m = result["labels"], torch.tensor(result["confusion"], dtype=torch.float64)
    norm = m / m.sum(1, keepdim=True).clamp_min(1)
    k = len(labels)
    side = min(4 + 0.28 * k, 40)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 60:
        ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"top-1 {result['top1']:.1%}, top-5 {result['top5']:.1%} ({result['num_samples']} clips)")
    fig.tight_layout()
    atomic_write(paths["confusion_png"], lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)
    return paths


def format_report(result: dict[str, Any]) -> str:
    """A human-readable summary: overall figures, per-class table, skipped samples."""
    lines = [f"top-1 {result['top1']:.2%}   top-5 {result['top5']:.2%}   mean class accuracy "
             f"{result['mean_class_accuracy']:.2%}   ({result['num_samples']} clips x {result['views']} views, "
             f"{result['skipped']} skipped)"]
    width = max([len(c["label"]) for c in result["per_class"]] + [5])
    lines.append(f"{'class':<{width}}  {'acc':>7}  {'n':>5}")
    for c in result["per_class"]:
        acc = "-" if c["accuracy"] is None else f"{c['accuracy']:.1%}"
        lines.append(f"{c['label']:<{width}}  {acc:>7}  {c['support']:>5}")
    for s in result["skipped_samples"]:
        lines.append(f"skipped {s['name']}: {s['reason']}")
    return "\n".join(lines)
