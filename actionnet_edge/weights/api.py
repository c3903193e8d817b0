"""``import_weights``: a published checkpoint -> this project's checkpoint, exactly or refused."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..checkpoint import default_preprocess, file_sha256, save_checkpoint
from ..errors import ActionNetError
from ..models import create_model
from .assemble import assemble
from .detect import identify, read_source
from .labels import read_labels

log = logging.getLogger(__name__)

#: the official recipes' test-time input: shorter side 256, centre crop 224, 8 frames
SIZE, DEFAULT_SEGMENTS = 224, 8


def segments_from_name(name: str) -> int | None:
    """T from a published file name: TSM's ``..._segment8_...``, ACTION-Net's ``clip_len_8...``, a ``..._8f...`` tag."""
    m = (re.search(r"segment(\d+)", name) or re.search(r"clip_len_(\d+)", name)
         or re.search(r"(?<![0-9a-z])(\d+)f(?![a-z])", name.lower()))
    return int(m.group(1)) if m else None


def import_weights(src: str | Path, output: str | Path, labels: str | Path | None = None,
                   arch: str | None = None, temporal: str | None = None, segments: int | None = None) -> dict[str, Any]:
    """Recognise ``src``, load it into our model exactly, write ``output``; returns what was found."""
    src = Path(src)
    sd, meta = read_source(src)
    found = identify(sd, str(src))
    log.info("%s: %s", src.name, found.description)
    for option, given, have in (("--arch", arch, found.arch), ("--temporal", temporal, found.temporal)):
        if given is not None and given != have:
            raise ActionNetError(f"{src}: is a {found.description}; {option} {given} does not fit it ({have})")
    num_segments = segments or segments_from_name(src.name)
    if num_segments is None:
        num_segments = DEFAULT_SEGMENTS
        log.info("segment count not given and not in the file name: %d, as in the official recipes", num_segments)
    fc = found.parts.fc.get("weight")
    if fc is None or fc.dim() != 2:
        raise ActionNetError(f"{src}: no classifier weight in the source")
    model = create_model(found.arch, found.temporal, num_segments=num_segments, num_classes=int(fc.shape[0]),
                         causal=found.causal)
    assemble(model, found.parts, str(src))
    model.eval()
    names = read_labels(labels, model.config["num_classes"])
    preprocess = default_preprocess(model, SIZE)
    source = {
        "file": src.name, "sha256": file_sha256(src), "layout": found.description, "repo": found.repo,
        "segments": num_segments, "size": preprocess["size"], "resize": preprocess["resize"],
        "mean": preprocess["mean"], "std": preprocess["std"], **meta,
    }
    save_checkpoint(output, model, names, preprocess, source=source)
    log.info("wrote %s (%s/%s, T=%d, %d classes)", output, found.arch, found.temporal, num_segments, len(names))
    return {"found": found.description, "model": dict(model.config), "source": source}
