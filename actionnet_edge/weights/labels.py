"""Class names for an imported model: a Jester / EgoGesture / TSM category list (one name a
line), SSv2's ``labels.json`` (template -> id), or a JSON list."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.datasets import ssv2_label
from ..errors import ActionNetError


def read_labels(path: str | Path | None, num_classes: int) -> list[str]:
    """The labels in ``path`` (index = class id); without a file, ``class_0`` .. ``class_{K-1}``."""
    if path is None:
        return [f"class_{i}" for i in range(num_classes)]
    path = Path(path)
    if not path.is_file():
        raise ActionNetError(f"label file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        labels = _from_json(text, path)
    else:
        labels = [x.strip() for x in text.splitlines() if x.strip()]
    if len(labels) != num_classes:
        raise ActionNetError(f"{path}: {len(labels)} labels but the checkpoint's classifier has {num_classes} classes")
    if len(set(labels)) != len(labels):
        raise ActionNetError(f"{path}: duplicate labels")
    return labels


def _from_json(text: str, path: Path) -> list[str]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ActionNetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(obj, list) and all(isinstance(x, str) for x in obj):
        return obj
    if isinstance(obj, dict):  # SSv2: {"Putting [something] on [something]": "12", ...}
        try:
            by_id = sorted((int(v), ssv2_label(k)) for k, v in obj.items())
        except (TypeError, ValueError):
            raise ActionNetError(f"{path}: expected an object of label -> class id") from None
        if [i for i, _ in by_id] != list(range(len(by_id))):
            raise ActionNetError(f"{path}: class ids are not 0..{len(by_id) - 1}")
        return [name for _, name in by_id]
    raise ActionNetError(f"{path}: expected a list of labels or an object of label -> class id")
