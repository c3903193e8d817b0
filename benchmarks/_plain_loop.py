"""The plain loop of ``train_curves.py plain``: MobileNetV2 models from scratch on a set in the
CSV layout, outside the toolkit's training loop (issue 28).

Frames are read once (T frames at the segment centres, the whole frame resized to SxS, ImageNet
normalisation); the loop is SGD or AdamW at a constant rate, batch 8, one thread. Each epoch
prints one JSON line: mean train loss, val top-1 (running BN statistics), val top-1 with batch
statistics, and top-1 on every fourth training clip. The commands are in docs/training.md.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from actionnet_edge.constants import IMAGENET_MEAN, IMAGENET_STD
from actionnet_edge.data.transforms import LIGHT_GAIN, LIGHT_OFFSET
from actionnet_edge.models import create_model
from actionnet_edge.models.backbones import residual_branch_norms


def load_split(root: Path, name: str, labels: list[str], t: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, 3, S, S) normalised clips and their class ids from ``root/name`` (CSV layout)."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    xs, ys = [], []
    for row in list(csv.reader(open(root / name)))[1:]:
        frames = sorted((root / row[0]).glob("*.jpg"))
        picks = [frames[int((i + 0.5) * len(frames) / t)] for i in range(t)]
        clip = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)).copy())
                for f in picks]
        xs.append((torch.stack(clip).permute(0, 3, 1, 2).float() / 255 - mean) / std)
        ys.append(labels.index(row[1]))
    return torch.stack(xs), torch.tensor(ys)


class TorchvisionTSN(nn.Module):
    """torchvision's MobileNetV2 as it ships (its own head), frames' logits averaged: no toolkit code."""

    def __init__(self, classes: int, dropout: float) -> None:
        super().__init__()
        self.net = torchvision.models.mobilenet_v2(num_classes=classes, dropout=dropout)
        self.backbone, self.fc, self.dropout = self.net.features, self.net.classifier[1], self.net.classifier[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(0, 1)).view(*x.shape[:2], -1).mean(1)


def build(args: argparse.Namespace, classes: int) -> nn.Module:
    if args.model == "torchvision":
        m = TorchvisionTSN(classes, args.dropout)
    else:
        m = create_model("mobilenet_v2", temporal=args.model, num_segments=args.segments, num_classes=classes,
                         dropout=args.dropout, width_mult=args.width)
    nn.init.normal_(m.fc.weight, 0, args.fc_std)
    if args.init == "pytorch":
        for mod in m.backbone.modules():
            if isinstance(mod, nn.Conv2d):
                mod.reset_parameters()
    if args.init == "zero-residual":  # each residual block starts as the identity, as model.zero_init_residual
        for bn in residual_branch_norms(m.backbone):
            nn.init.zeros_(bn.weight)
    return m


def augment(x: torch.Tensor) -> torch.Tensor:
    """Per clip: a colour gain and offset per channel (the ranges of ``data.augment: light``) and a
    shift of up to S/12 px (wrapping)."""
    n = x.shape[0]
    gain = 1 + 2 * LIGHT_GAIN * (torch.rand(n, 1, 3, 1, 1) - 0.5)
    x = x * gain + 2 * LIGHT_OFFSET * (torch.rand(n, 1, 3, 1, 1) - 0.5)
    r = x.shape[-1] // 12
    return torch.stack([torch.roll(c, tuple(int(v) for v in torch.randint(-r, r + 1, (2,))), (2, 3)) for c in x])


def top1(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(np.mean([(m(x[i:i + 8]).argmax(1) == y[i:i + 8]).float().mean().item() for i in range(0, len(y), 8)]))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="a set in the CSV layout (train.csv, val.csv, labels.txt)")
    p.add_argument("--model", default="action", help="a temporal module of ours (action, shift, none) or torchvision")
    p.add_argument("--init", default="official", choices=["official", "pytorch", "zero-residual"])
    p.add_argument("--opt", default="sgd", choices=["sgd", "adamw"])
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--fc-std", type=float, default=0.01)
    p.add_argument("--augment", action="store_true", help="colour and shift augmentation per clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSON file for the arguments and per-epoch figures")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    labels = [s.strip() for s in (args.root / "labels.txt").read_text().splitlines() if s.strip()]
    xtr, ytr = load_split(args.root, "train.csv", labels, args.segments, args.size)
    xva, yva = load_split(args.root, "val.csv", labels, args.segments, args.size)
    m = build(args, len(labels))
    opt = (torch.optim.SGD(m.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4) if args.opt == "sgd"
           else torch.optim.AdamW(m.parameters(), lr=args.lr, weight_decay=0.01))
    rows = []
    for epoch in range(1, args.epochs + 1):
        m.train()
        losses = []
        for b in torch.randperm(len(ytr)).split(8):
            x = augment(xtr[b]) if args.augment else xtr[b]
            loss = F.cross_entropy(m(x), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        batch_stats = copy.deepcopy(m).train()
        batch_stats.dropout.p = 0.0
        rows.append(dict(epoch=epoch, train_loss=round(float(np.mean(losses)), 4), val_top1=top1(m.eval(), xva, yva),
                         val_top1_batch_stats=top1(batch_stats, xva, yva), train_top1=top1(m, xtr[::4], ytr[::4])))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, epochs=rows), indent=1))
