"""MobileNetV2 state-dict layouts: tonylins' (the official ACTION-Net and TSM code) and torchvision's.

Both networks compute the same thing at width 1.0 (same convolutions, same order, ReLU6,
global mean, linear classifier); only the module names differ. tonylins' inverted residual
is one flat ``conv`` Sequential (conv, bn, relu, ...), torchvision's nests each conv+bn+relu
in a ``Conv2dNormActivation``; its classifier is ``[Dropout, Linear]``. These functions
rename keys; shapes are checked by whoever loads the result.
"""
from __future__ import annotations

import re

# flat index in tonylins' block.conv -> torchvision's nested name; expansion 1 has no pw conv
_EXPAND1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
_EXPAND6 = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_BLOCK = re.compile(r"^features\.(\d+)\.conv\.(\d+)(\..+|)$")


def is_tonylins_mbv2(keys) -> bool:
    """tonylins' layout: a flat 4-D ``features.1.conv.0.weight`` (torchvision nests it as ``conv.0.0``)."""
    return "features.1.conv.0.weight" in keys and "features.1.conv.0.0.weight" not in keys


def tonylins_expanded_blocks(keys) -> set[int]:
    """Indices of the blocks with an expansion conv (eight modules in ``conv``, so ``conv.7`` exists)."""
    return {int(m.group(1)) for k in keys if (m := _BLOCK.match(k)) and m.group(2) == "7"}


def tonylins_key_to_torchvision(key: str, expanded: set[int]) -> str | None:
    """One tonylins key (or module path) as torchvision names it; None when it has no counterpart."""
    if key.startswith("classifier."):
        return "classifier.1." + key[len("classifier."):]
    m = _BLOCK.match(key)
    if m is None:
        return key  # features.0.* and the last 1x1 conv (features.18.*) are named alike
    table = _EXPAND6 if int(m.group(1)) in expanded else _EXPAND1
    if m.group(2) not in table:
        return None
    return f"features.{m.group(1)}.conv.{table[m.group(2)]}{m.group(3)}"


def torchvision_key_to_tonylins(key: str, expanded: set[int]) -> str | None:
    """The inverse of :func:`tonylins_key_to_torchvision` (for writing the official layout)."""
    if key.startswith("classifier.1."):
        return "classifier." + key[len("classifier.1."):]
    m = re.match(r"^features\.(\d+)\.conv\.(\d+(?:\.\d+)?)(\..+|)$", key)
    if m is None:
        return key
    table = _EXPAND6 if int(m.group(1)) in expanded else _EXPAND1
    inverse = {v: k for k, v in table.items()}
    head, rest = m.group(2), m.group(3)  # the regex takes "1.0" before "1"
    if head not in inverse:
        return None
    return f"features.{m.group(1)}.conv.{inverse[head]}{rest}"


def tonylins_to_torchvision(sd: dict) -> dict:
    """A whole state dict in tonylins' layout renamed to torchvision's; other layouts unchanged.
    Keys without a counterpart are kept as they are, so the loader reports them as unexpected."""
    if not is_tonylins_mbv2(sd):
        return sd
    expanded = tonylins_expanded_blocks(sd)
    return {(tonylins_key_to_torchvision(k, expanded) or k): v for k, v in sd.items()}
