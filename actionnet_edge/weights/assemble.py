"""Put a published model's weights into this project's ActionNet, exactly or not at all.

Every source layout is first brought to one neutral form, :class:`Parts`: the bare 2D
backbone in torchvision's (or our BN-Inception's) names, the temporal module's tensors per
insertion place (named as our modules name them), and the classifier. :func:`assemble` then
places them into a freshly built model and checks that every tensor of the model is filled
once, with its shape: the first key that does not fit is named in a one-line error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ActionNetError
from ..models import ActionNet, TemporalWrapper


@dataclass
class Parts:
    """A source model in neutral names; ``origin`` maps each neutral key back to the source key."""

    backbone: dict[str, torch.Tensor] = field(default_factory=dict)
    #: insertion place (module path in the bare backbone) -> {our temporal tensor name: tensor}
    temporal: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    fc: dict[str, torch.Tensor] = field(default_factory=dict)
    #: where the source runs a temporal module (bare-backbone module paths)
    places: list[str] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, key: str, value: torch.Tensor, source_key: str, place: str = "") -> None:
        if kind == "backbone":
            self.backbone[key] = value
            self.origin[f"backbone:{key}"] = source_key
        elif kind == "fc":
            self.fc[key] = value
            self.origin[f"fc:{key}"] = source_key
        else:
            self.temporal.setdefault(place, {})[key] = value
            self.origin[f"temporal:{place}:{key}"] = source_key


def wrapper_places(model: ActionNet) -> list[str]:
    """Module paths (in the bare backbone's names) of the layers our temporal wrappers wrap."""
    return [name for name, m in model.backbone.named_modules() if isinstance(m, TemporalWrapper)]


def _target_key(parts_key: str, places: set[str]) -> str:
    """A bare-backbone key -> our key: a wrapped layer's tensors live under ``<place>.net``."""
    for place in places:
        if parts_key.startswith(place + "."):
            return f"backbone.{place}.net.{parts_key[len(place) + 1:]}"
    return f"backbone.{parts_key}"


def assemble(model: ActionNet, parts: Parts, source: str) -> None:
    """Load ``parts`` into ``model`` (strict: every tensor once, every shape equal) or raise."""
    places = wrapper_places(model)
    what = f"{model.config['arch']}/{model.config['temporal']}"
    expected = places if model.config["temporal"] != "none" else []  # TSN: nothing runs at the places
    if sorted(parts.places) != sorted(expected):
        extra = sorted(set(parts.places) - set(expected)) or ["-"]
        lacking = sorted(set(expected) - set(parts.places)) or ["-"]
        raise ActionNetError(f"{source}: cannot be mapped exactly onto {what}: the source has temporal modules at "
                             f"{len(parts.places)} places, this model at {len(expected)} (source only: {extra[0]}; "
                             f"model only: {lacking[0]})")
    mapped: dict[str, tuple[torch.Tensor, str]] = {}
    for key, value in parts.backbone.items():
        mapped[_target_key(key, set(places))] = (value, parts.origin[f"backbone:{key}"])
    for place, tensors in parts.temporal.items():
        for key, value in tensors.items():
            mapped[f"backbone.{place}.temporal.{key}"] = (value, parts.origin[f"temporal:{place}:{key}"])
    for key, value in parts.fc.items():
        mapped[f"fc.{key}"] = (value, parts.origin[f"fc:{key}"])
    own = model.state_dict()
    for key, (value, src_key) in mapped.items():
        if key not in own:
            raise ActionNetError(f"{source}: cannot be mapped exactly onto {what}: source key '{src_key}' "
                                 f"{tuple(value.shape)} has no place in this model")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ActionNetError(f"{source}: cannot be mapped exactly onto {what}: source key '{src_key}' has shape "
                                 f"{tuple(value.shape)}, this model's '{key}' is {tuple(own[key].shape)}")
    for key, value in own.items():
        if key in mapped:
            continue
        if key.endswith("num_batches_tracked"):  # older checkpoints lack the counter; it does not compute
            mapped[key] = (torch.zeros_like(value), "")
            continue
        raise ActionNetError(f"{source}: cannot be mapped exactly onto {what}: nothing in the source for "
                             f"'{key}' {tuple(value.shape)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, (v, _) in mapped.items()}, strict=True)
