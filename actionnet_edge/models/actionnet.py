"""ACTION-Net: a 2D backbone with temporal modules and TSN's segment consensus.

Input is a clip batch of shape (N, T, 3, H, W); frames run through the backbone as a
(N*T, 3, H, W) batch, the temporal modules mix information across T inside it, and the
per-frame logits are averaged over T (TSN's average consensus; ``consensus="last"`` takes
the last frame's logits instead). With ``causal=True`` every temporal module reads only the
current and past frames, so frame t's logits depend on frames 0..t only and the model can
run frame by frame (:mod:`.streaming`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ActionNetError, unknown_name
from ..fsutil import load_untrusted
from .backbones import BACKBONES, Backbone, residual_branch_norms
from .temporal import TEMPORAL_ALIASES, TEMPORAL_MODULES, TemporalWrapper

log = logging.getLogger(__name__)

#: how per-frame logits become clip logits: their mean over T (TSN), or the last frame's
#: (with a causal model, the frame that has seen the whole clip).
CONSENSUS = ("avg", "last")


class ActionNet(nn.Module):
    """Backbone + temporal modules + dropout + classifier + consensus over frames."""

    def __init__(
        self,
        arch: str,
        temporal: str = "action",
        num_segments: int = 8,
        num_classes: int = 27,
        width_mult: float = 1.0,
        dropout: float = 0.5,
        pretrained: str | Path | None = None,
        causal: bool = False,
        consensus: str = "avg",
    ) -> None:
        super().__init__()
        if arch not in BACKBONES:
            raise unknown_name("arch", arch, BACKBONES)
        temporal = TEMPORAL_ALIASES.get(temporal, temporal)
        if temporal not in TEMPORAL_MODULES:
            raise unknown_name("temporal module", temporal, [*TEMPORAL_MODULES, *TEMPORAL_ALIASES])
        if consensus not in CONSENSUS:
            raise unknown_name("consensus", consensus, CONSENSUS)
        if int(num_segments) < 2:
            raise ActionNetError(f"num_segments must be at least 2 for temporal modelling, got {num_segments}")
        if int(num_classes) < 1:
            raise ActionNetError(f"num_classes must be positive, got {num_classes}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ActionNetError(f"dropout must be in [0, 1), got {dropout}")
        if not 0.1 <= float(width_mult) <= 4.0:
            raise ActionNetError(f"width_mult must be in [0.1, 4], got {width_mult}")
        self.config: dict[str, Any] = dict(
            arch=arch, temporal=temporal, num_segments=int(num_segments), num_classes=int(num_classes),
            width_mult=float(width_mult), dropout=float(dropout), causal=bool(causal), consensus=consensus,
        )
        spec: Backbone = BACKBONES[arch](float(width_mult))
        self.mean, self.std = spec.mean, spec.std
        self.pretrained_report: dict[str, list[str]] | None = None
        if pretrained is not None:
            self.pretrained_report = load_pretrained(spec, pretrained)
        build = TEMPORAL_MODULES[temporal]
        self.num_places = 0
        for parent, attr, channels in spec.places(spec.net):
            layer = getattr(parent, attr)
            setattr(parent, attr, TemporalWrapper(build(channels, int(num_segments), bool(causal)), layer))
            self.num_places += 1
        self.backbone = spec.net
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(spec.feature_dim, int(num_classes))
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def zero_init_residual(self) -> int:
        """Zero the scale of the BN that ends every residual branch, so each block starts as the
        identity (Goyal et al. 2017; torchvision's ``zero_init_residual``). Not the official
        initialisation: a recipe choice for training from scratch. Returns the blocks changed."""
        norms = residual_branch_norms(self.backbone)
        if not norms:
            raise ActionNetError(f"{self.config['arch']} has no residual blocks to zero-initialise")
        for bn in norms:
            nn.init.zeros_(bn.weight)
        return len(norms)

    @property
    def num_segments(self) -> int:
        return self.config["num_segments"]

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> per-frame logits (N, T, num_classes)."""
        if x.dim() != 5 or x.shape[1] != self.num_segments or x.shape[2] != 3:
            raise ValueError(
                f"expected a clip batch (N, {self.num_segments}, 3, H, W), got {tuple(x.shape)}"
            )
        n, t = x.shape[:2]
        feats = self.backbone(x.reshape(n * t, *x.shape[2:]))
        return self.fc(self.dropout(feats)).view(n, t, -1)

    def consensus(self, frame_logits: torch.Tensor) -> torch.Tensor:
        """(N, T, K) per-frame logits -> (N, K) clip logits."""
        if self.config.get("consensus", "avg") == "last":
            return frame_logits[:, -1]
        return frame_logits.mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> clip logits (N, num_classes): the consensus of the frames' logits."""
        return self.consensus(self.frame_logits(x))


def load_pretrained(spec: Backbone, path: str | Path) -> dict[str, list[str]]:
    """Load an ImageNet state dict from a local file into the bare backbone.

    The classifier is skipped; missing and unexpected keys are logged and returned. A file
    that is not a state dict, or shares no key with the backbone, is an error.
    """
    path = Path(path)
    sd = load_untrusted(path, "pretrained weights file")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ActionNetError(f"{path} is not a state dict (a mapping of names to tensors)")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    sd = spec.adapt({k: v for k, v in sd.items() if not k.startswith(spec.classifier_prefixes)})
    own = spec.net.state_dict()
    shape_mismatch = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    if shape_mismatch:
        raise ActionNetError(
            f"{path}: {len(shape_mismatch)} tensors have the wrong shape for this backbone, e.g. "
            f"{shape_mismatch[0]} {tuple(sd[shape_mismatch[0]].shape)} vs {tuple(own[shape_mismatch[0]].shape)}"
        )
    if not any(k in own and not k.endswith("num_batches_tracked") for k in sd):
        raise ActionNetError(f"{path} shares no weights with this backbone: is it for another architecture?")
    result = spec.net.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(spec.classifier_prefixes)]
    if missing:
        log.warning("pretrained %s: %d missing keys, e.g. %s", path.name, len(missing), missing[:3])
    if result.unexpected_keys:
        log.warning("pretrained %s: %d unexpected keys, e.g. %s", path.name, len(result.unexpected_keys), result.unexpected_keys[:3])
    log.info("loaded pretrained backbone weights from %s", path)
    return {"missing_keys": missing, "unexpected_keys": list(result.unexpected_keys)}
