"""Readers of the official dataset layouts, on one base class.

=============== ===================================================================
``jester``      ``jester-v1-labels.csv`` (one label a line), ``jester-v1-train.csv`` /
                ``jester-v1-validation.csv`` (``id;label``), frames
                ``20bn-jester-v1/<id>/00001.jpg ...``
``egogesture``  frames ``images_320-240/SubjectNN/SceneN/Color/rgbN/000001.jpg ...``;
                labels ``labels-final-revised1/subjectNN/SceneN/GroupN.csv`` with rows
                ``label,start,end`` (class 1..83, 1-based inclusive frame numbers); the
                official subject split (see :data:`EGOGESTURE_SUBJECTS`)
``ssv2``        ``labels.json`` (template -> id), ``train.json`` / ``validation.json``
                (``id``, ``template`` with ``[something]`` placeholders), videos
                ``20bn-something-something-v2/<id>.webm`` (or ``<id>.webm`` in the root)
``csv``         a CSV ``path,label[,start,end]`` (0-based inclusive frames) of video files or
                frame folders, paths relative to the CSV; root is the CSV itself or a folder
                with ``train.csv`` / ``val.csv`` (and optionally ``labels.txt``)
=============== ===================================================================

A sample that cannot be read (corrupt or missing frame/video, empty folder, a label not in
the label list) comes back as :class:`~actionnet_edge.data.BadSample`; unknown labels are
also counted and logged when the index is built.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import ActionNetError
from . import BadSample, Sample
from .sampling import clip_indices, segment_indices
from .transforms import ClipTransform, make_flip_map
from .video import DecodeError, open_source

log = logging.getLogger(__name__)

__all__ = ["Item", "ClipDataset", "JesterDataset", "EgoGestureDataset", "SSv2Dataset", "CSVDataset",
           "EGOGESTURE_SUBJECTS"]

# EgoGesture's official subject split (Zhang et al., "EgoGesture: A New Dataset and Benchmark
# for Egocentric Hand Gesture Recognition", IEEE TMM 2018, Sec. 3.3: 30 / 10 / 10 subjects);
# the same lists are in the dataset's public preparation scripts (e.g. ahmetgunduz/
# Real-time-GesRec `utils/egogesture_json.py`: training_id / validating_id / testing_id).
EGOGESTURE_SUBJECTS: dict[str, tuple[int, ...]] = {
    "train": (3, 4, 5, 6, 8, 10, 15, 16, 17, 20, 21, 22, 23, 25, 26, 27, 30, 32, 36, 38, 39, 40, 42, 43, 44, 45,
              46, 48, 49, 50),
    "val": (1, 7, 12, 13, 24, 29, 33, 34, 35, 37),
    "test": (2, 9, 11, 14, 18, 19, 28, 31, 41, 47),
}


@dataclass(frozen=True)
class Item:
    """One indexed sample: a frame folder or video, its class id and optional frame range."""

    name: str
    path: Path
    label: int  # -1 = not in the label list
    start: int | None = None  # 0-based, inclusive
    end: int | None = None
    reason: str | None = None  # known bad at index time


class ClipDataset(Dataset):
    """TSN-sampled, transformed clips from a list of :class:`Item`.

    Subclasses fill ``self.labels`` and ``self.items``, then call :meth:`_finish`.
    """

    labels: list[str]
    items: list[Item]
    flip_map: dict[int, int] | None = None

    def __init__(self, *, segments: int, size: int, train: bool, mean: Sequence[float], std: Sequence[float],
                 clips: int = 1, crops: int = 1, flip: bool = False, seed: int = 0, augment: str = "multiscale") -> None:
        self.segments, self.size, self.train = int(segments), int(size), bool(train)
        self.augment = augment
        self.mean, self.std = tuple(mean), tuple(std)
        self.clips, self.crops, self.flip, self.seed = int(clips), int(crops), bool(flip), int(seed)

    def _finish(self, flip_map: dict[int, int] | None | str = "auto") -> None:
        if flip_map == "auto":
            try:
                flip_map = make_flip_map(self.labels)
            except ActionNetError:
                flip_map = None
        self.flip_map = flip_map
        self.transform = ClipTransform(self.size, self.train, self.mean, self.std, crops=self.crops,
                                       flip=self.flip and self.train, flip_map=self.flip_map, augment=self.augment)
        unknown = [it for it in self.items if it.reason]
        if unknown:
            counts = Counter(it.reason for it in unknown)
            log.warning("%s: %d of %d samples are unusable and will be skipped: %s (e.g. %s)", type(self).__name__,
                        len(unknown), len(self.items), "; ".join(f"{n} x {r}" for r, n in counts.most_common(3)),
                        ", ".join(it.name for it in unknown[:3]))
        log.debug("%s: %d samples, %d classes", type(self).__name__, len(self), len(self.labels))

    def _label(self, name: str, index: dict[str, int]) -> tuple[int, str | None]:
        if name in index:
            return index[name], None
        return -1, f"label '{name}' not in the label list"

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, i: int) -> random.Random:
        if not self.train:
            return random.Random(self.seed * 1_000_003 + i)
        return random.Random(int(torch.randint(0, 2**62, (1,)).item()) ^ self.seed)

    def __getitem__(self, i: int) -> Sample | BadSample:
        item = self.items[i]
        if item.reason:
            return BadSample(item.name, item.reason)
        try:
            src = open_source(item.path, item.start, item.end)
            return self.sample_from(src, len(src), item.label, item.name, self._rng(i))
        except DecodeError as e:
            return BadSample(item.name, str(e))
        except OSError as e:
            return BadSample(item.name, f"cannot read: {e.strerror or e}")

    def sample_from(self, src: Any, num_frames: int, label: int, name: str, rng: random.Random) -> Sample:
        """Sample, decode and transform the views of one clip (``src.read(indices)`` -> uint8 frames)."""
        if self.train:
            views = [segment_indices(num_frames, self.segments, True, rng)]
        else:
            views = clip_indices(num_frames, self.segments, self.clips)
        uniq = sorted({j for v in views for j in v})
        frames = dict(zip(uniq, src.read(uniq)))
        out = []
        for v in views:
            clip, label_out = self.transform(torch.stack([frames[j] for j in v]), label, rng)
            out.append(clip if clip.ndim == 5 else clip.unsqueeze(0))
        clip = torch.cat(out) if len(out) > 1 or out[0].shape[0] > 1 else out[0][0]
        return Sample(clip, label_out, name)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ActionNetError(f"missing {path.name} in {path.parent}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ActionNetError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


class JesterDataset(ClipDataset):
    """20BN-Jester v1 (27 classes) in its official layout (also what ``data synth`` writes)."""

    SPLIT_FILES = {"train": "jester-v1-train.csv", "val": "jester-v1-validation.csv"}

    def __init__(self, root: str | Path, split: str, *, frames_dir: str = "20bn-jester-v1", **kw: Any) -> None:
        super().__init__(**kw)
        root = Path(root)
        if split not in self.SPLIT_FILES:
            raise ActionNetError(f"jester has no '{split}' split (train, val)")
        self.labels = _read_lines(root / "jester-v1-labels.csv")
        index = {n: i for i, n in enumerate(self.labels)}
        frames = root / frames_dir
        self.items = []
        for n, line in enumerate(_read_lines(root / self.SPLIT_FILES[split]), 1):
            vid, sep, name = line.partition(";")
            if not sep:
                raise ActionNetError(f"{self.SPLIT_FILES[split]} line {n}: expected 'id;label', got '{line[:60]}'")
            label, reason = self._label(name.strip(), index)
            self.items.append(Item(vid.strip(), frames / vid.strip(), label, reason=reason))
        self._finish()


class EgoGestureDataset(ClipDataset):
    """EgoGesture (83 classes, RGB) with the official subject split; class names are "1".."83"."""

    NUM_CLASSES = 83

    def __init__(self, root: str | Path, split: str, *, subjects: Sequence[int] | None = None,
                 images_dir: str = "images_320-240", labels_dir: str = "labels-final-revised1", **kw: Any) -> None:
        super().__init__(**kw)
        root = Path(root)
        images, labels_root = root / images_dir, root / labels_dir
        for p in (images, labels_root):
            if not p.is_dir():
                raise ActionNetError(f"EgoGesture folder not found: {p}")
        self.labels = [str(i) for i in range(1, self.NUM_CLASSES + 1)]
        wanted = set(subjects if subjects is not None else EGOGESTURE_SUBJECTS[split])
        self.items = []
        for subj_dir in sorted(p for p in labels_root.iterdir() if p.is_dir()):
            m = re.fullmatch(r"subject(\d+)", subj_dir.name, flags=re.IGNORECASE)
            if not m or int(m.group(1)) not in wanted:
                continue
            subj = f"Subject{int(m.group(1)):02d}"
            for group_csv in sorted(subj_dir.glob("*/Group*.csv")):
                scene = group_csv.parent.name
                g = re.fullmatch(r"Group(\d+)\.csv", group_csv.name, flags=re.IGNORECASE)
                if not g:
                    continue
                folder = images / subj / scene / "Color" / f"rgb{int(g.group(1))}"
                with open(group_csv, newline="", encoding="utf-8") as f:
                    for row in csv.reader(f):
                        if len(row) < 3 or not row[0].strip().isdigit():
                            continue
                        cls, start, end = int(row[0]), int(row[1]), int(row[2])
                        name = f"{subj}/{scene}/rgb{int(g.group(1))}/{start}-{end}"
                        ok = 1 <= cls <= self.NUM_CLASSES
                        self.items.append(Item(name, folder, cls - 1 if ok else -1, start - 1, end - 1,
                                               None if ok else f"label '{cls}' not in the label list"))
        if not self.items:
            raise ActionNetError(f"no EgoGesture samples for the {split} subjects in {labels_root}")
        self._finish(flip_map=None)  # class names carry no direction: no safe flip


def ssv2_label(template: str) -> str:
    """SSv2's placeholder-free class name: ``"Putting [something] on [something]"`` -> ``"Putting something on something"``."""
    return template.replace("[", "").replace("]", "")


class SSv2Dataset(ClipDataset):
    """Something-Something V2 (174 classes): ``.webm`` videos and the official JSON files."""

    SPLIT_FILES = {"train": "train.json", "val": "validation.json"}

    def __init__(self, root: str | Path, split: str, *, videos_dir: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        root = Path(root)
        if split not in self.SPLIT_FILES:
            raise ActionNetError(f"ssv2 has no '{split}' split (train, val)")
        table = self._json(root / "labels.json")
        try:
            by_id = sorted((int(v), k) for k, v in table.items())
        except (AttributeError, ValueError):
            raise ActionNetError(f"{root / 'labels.json'}: expected an object of template -> class id") from None
        self.labels = [k for _, k in by_id]
        index = {n: i for i, n in enumerate(self.labels)}
        if videos_dir is None:
            videos_dir = "20bn-something-something-v2" if (root / "20bn-something-something-v2").is_dir() else "."
        videos = root / videos_dir
        self.items = []
        for entry in self._json(root / self.SPLIT_FILES[split]):
            vid = str(entry.get("id", "")) if isinstance(entry, dict) else ""
            if not vid:
                raise ActionNetError(f"{self.SPLIT_FILES[split]}: an entry without 'id'")
            label, reason = self._label(ssv2_label(str(entry.get("template", ""))), index)
            self.items.append(Item(vid, videos / f"{vid}.webm", label, reason=reason))
        self._finish()

    @staticmethod
    def _json(path: Path) -> Any:
        if not path.is_file():
            raise ActionNetError(f"missing {path.name} in {path.parent}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ActionNetError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None


class CSVDataset(ClipDataset):
    """A user's own data: CSV rows ``path,label[,start,end]`` of videos or frame folders."""

    SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}

    def __init__(self, root: str | Path, split: str, *, labels: str | Path | Sequence[str] | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        root = Path(root)
        if root.is_file():
            csv_path, others = root, [root]
        else:
            csv_path = root / self.SPLIT_FILES[split]
            if not csv_path.is_file():
                raise ActionNetError(f"missing {csv_path.name} in {root} (csv data: train.csv / val.csv)")
            others = [root / f for f in self.SPLIT_FILES.values() if (root / f).is_file()]
            if labels is None and (root / "labels.txt").is_file():
                labels = root / "labels.txt"
        rows = self._rows(csv_path)
        if labels is None:  # every label seen in the split files, sorted: the same ids for train and val
            self.labels = sorted({r[1] for p in others for r in (rows if p == csv_path else self._rows(p))})
        elif isinstance(labels, (str, Path)):
            self.labels = _read_lines(Path(labels))
        else:
            self.labels = list(labels)
        index = {n: i for i, n in enumerate(self.labels)}
        self.items = []
        for path, name, start, end in rows:
            label, reason = self._label(name, index)
            p = Path(path)
            self.items.append(Item(path, p if p.is_absolute() else csv_path.parent / p, label, start, end, reason))
        _check_paths(csv_path, self.items)
        self._finish()

    @staticmethod
    def _rows(path: Path) -> list[tuple[str, str, int | None, int | None]]:
        out = []
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ActionNetError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
        for n, row in enumerate(csv.reader(io.StringIO(text, newline="")), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or (n == 1 and row[0].lower() == "path"):
                continue
            if len(row) not in (2, 4):
                raise ActionNetError(f"{path.name} line {n}: expected path,label[,start,end], got {len(row)} fields")
            try:
                start, end = (int(row[2]), int(row[3])) if len(row) == 4 else (None, None)
            except ValueError:
                raise ActionNetError(f"{path.name} line {n}: start and end must be frame numbers") from None
            if start is not None and not 0 <= start <= end:
                raise ActionNetError(f"{path.name} line {n}: need 0 <= start <= end, got {start},{end}")
            out.append((row[0], row[1], start, end))
        if not out:
            raise ActionNetError(f"{path} lists no samples")
        return out


def _check_paths(csv_path: Path, items: Sequence[Item]) -> None:
    """Every row's video or frame folder must exist: the missing ones, counted and named, are an error."""
    missing = [it.name for it in items if not it.path.exists()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ActionNetError(f"{csv_path}: {len(missing)} of {len(items)} rows name files that do not exist "
                             f"(paths are relative to {csv_path.parent}): {shown}")
