"""Gradient reaching the backbone at initialisation, with the official head (N(0, 0.001)) and N(0, 0.01).

One training-mode forward and backward of MobileNetV2-ACTION from scratch on the first 8
training clips of a CSV set (evaluation sampling, ``light`` view), seed 0, one thread:

    python benchmarks/head_init_gradients.py data/hands
"""
from __future__ import annotations

import sys

import torch
from torch import nn

from actionnet_edge.data import build_dataset, collate
from actionnet_edge.models import create_model


def main(root: str) -> None:
    torch.set_num_threads(1)
    ds = build_dataset("csv", root, "train", segments=4, size=96, train=False, mean=(0.485, 0.456, 0.406),
                       std=(0.229, 0.224, 0.225), augment="light")
    batch = collate([ds[i] for i in range(8)])
    for std in (0.001, 0.01):
        torch.manual_seed(0)
        model = create_model("mobilenet_v2", "action", 4, len(ds.labels), 1.0, dropout=0.2)
        nn.init.normal_(model.fc.weight, 0, std)
        model.train()
        loss = nn.functional.cross_entropy(model(batch["clips"]), batch["labels"])
        loss.backward()
        grads = [p.grad for n, p in model.named_parameters() if n.startswith("backbone.") and p.grad is not None]
        backbone = torch.sqrt(sum((g ** 2).sum() for g in grads))
        print(f"fc N(0, {std}): loss {loss.item():.4f}, backbone gradient norm {backbone:.3g}, "
              f"classifier gradient norm {model.fc.weight.grad.norm():.3g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/hands")
