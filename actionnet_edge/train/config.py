"""Training recipes: YAML validated into typed dataclasses.

A recipe has the sections ``model``, ``data`` and ``train`` and an optional ``qat`` section
(read by the QAT fine-tuning). Every problem in a recipe (unknown key, wrong type, bad value)
is collected and reported at once, as one :class:`~actionnet_edge.errors.ActionNetError`,
before any work starts. ``overrides`` (``--set train.lr=0.05``) are parsed as YAML scalars,
so ``--set train.lr_steps=[0.5,0.75]`` and ``--set model.pretrained=null`` work. Schedules are
fractions of the run (:mod:`actionnet_edge.train.schedule`), so ``--set train.epochs=N`` keeps them
valid. A resumed run keeps its own recipe (:func:`resumed_recipe`).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..constants import MAX_SEGMENTS, MIN_SEGMENTS
from ..errors import ActionNetError
from .schedule import SCHEDULES

__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "QATConfig", "Recipe", "load_recipe", "parse_recipe",
           "apply_overrides", "QAT_BACKENDS"]

#: backends a ``qat`` section may name (the QAT code maps each to a PT2E quantizer).
QAT_BACKENDS = ("xnnpack", "coreml", "litert")
OPTIMIZERS = ("sgd", "adamw")
#: upper limits of recipe numbers: far above any real run, below values that only overflow or exhaust memory
LIMITS = {"train.epochs": 10_000, "train.batch_size": 4096, "train.lr": 10.0, "train.lr_gamma": 1.0,
          "train.momentum": 1.0, "train.weight_decay": 1.0, "train.clip_grad": 1e6, "train.log_every": 10**6,
          "model.width_mult": 4.0, "data.workers": 256, "data.num_train": 10**8, "data.num_val": 10**8,
          "qat.epochs": 10_000, "qat.lr": 10.0, "qat.batch_size": 4096, "qat.calib_batches": 10**5, "train.seed": 2**32 - 1}


@dataclass
class ModelConfig:
    """``model``: which network to build."""

    arch: str = "mobilenet_v2"
    temporal: str = "action"
    width_mult: float = 1.0
    dropout: float = 0.5
    pretrained: str | None = None  # local ImageNet state dict of the backbone
    causal: bool = False  # temporal modules read only current and past frames (streaming)
    consensus: str = "avg"  # avg (TSN) or last (the last frame's logits)
    zero_init_residual: bool = False  # start each residual block as the identity (from scratch only)


@dataclass
class DataConfig:
    """``data``: which clips to read and how."""

    dataset: str = "synthetic"
    root: str | None = None
    segments: int = 8
    size: int = 224
    flip: bool = False
    num_train: int | None = None  # synthetic: clips generated; others: first N samples
    num_val: int | None = None
    seed: int = 0  # synthetic data seed
    workers: int = 4
    augment: str = "multiscale"  # multiscale (the paper's corner crops) or light (whole frame; small sets)


@dataclass
class TrainConfig:
    """``train``: the optimisation (SGD with momentum and a step schedule, as the paper)."""

    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd (the paper) or adamw (training from scratch)
    lr: float = 0.01
    lr_schedule: str = "step"  # step (the paper) or cosine
    lr_steps: list[float] = field(default_factory=lambda: [0.3333, 0.6667, 0.8333])  # fractions of the run
    lr_gamma: float = 0.1
    warmup: float = 0.0  # fraction of the run's optimizer steps with a linear warm-up
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_grad: float | None = 20.0
    seed: int = 0
    amp: bool = True  # on GPU only
    log_every: int = 20  # steps between progress lines


@dataclass
class QATConfig:
    """``qat``: quantization-aware fine-tuning of a trained checkpoint (PT2E)."""

    backend: str = "xnnpack"
    epochs: int = 3
    lr: float = 0.001
    lr_steps: list[float] = field(default_factory=list)  # fractions of qat.epochs
    batch_size: int | None = None  # default: train.batch_size
    per_channel: bool = True
    calib_batches: int = 8
    freeze_observer_epoch: int | None = None
    freeze_bn_epoch: int | None = None


@dataclass
class Recipe:
    """A validated recipe; :meth:`to_dict` gives plain types (stored in checkpoints)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    qat: QATConfig | None = None
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = {s: dataclasses.asdict(getattr(self, s)) for s in ("model", "data", "train")}
        if self.qat is not None:
            d["qat"] = dataclasses.asdict(self.qat)
        return d


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "qat": QATConfig}


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, tp: Any, where: str, errors: list[str]) -> Any:
    """Check ``value`` against a field type; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where, errors)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {value!r}")
            return value
        return [_coerce(v, item, f"{where}[{i}]", errors) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{where}: expected a number, got {value!r}")
            return value
        if not math.isfinite(value):
            errors.append(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            errors.append(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _check_values(r: Recipe, errors: list[str]) -> None:
    from ..data import list_datasets
    from ..data.transforms import AUGMENTS
    from ..models import check_input_size, list_models, list_temporal
    from ..models.actionnet import CONSENSUS

    def name(where: str, value: str, valid: list[str]) -> None:
        if isinstance(value, str) and value not in valid:
            errors.append(f"{where}: unknown '{value}', valid: {', '.join(valid)}{_suggest(value, valid)}")

    def positive(where: str, value: Any, allow_zero: bool = False) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            top = LIMITS.get(where)
            top = f"{top:g}" if isinstance(top, float) else top
            if value < 0 or (value == 0 and not allow_zero):
                errors.append(f"{where}: must be {'>= 0' if allow_zero else '> 0'}"
                              f"{f' and <= {top}' if top is not None else ''}, got {value}")
            elif top is not None and value > LIMITS[where]:
                errors.append(f"{where}: must be <= {top}, got {value}")

    name("model.arch", r.model.arch, list_models())
    name("model.temporal", r.model.temporal, list_temporal(aliases=True))
    name("model.consensus", r.model.consensus, list(CONSENSUS))
    name("data.dataset", r.data.dataset, list_datasets())
    name("data.augment", r.data.augment, list(AUGMENTS))
    if isinstance(r.model.dropout, float) and not 0 <= r.model.dropout < 1:
        errors.append(f"model.dropout: must be in [0, 1), got {r.model.dropout}")
    positive("model.width_mult", r.model.width_mult)
    if r.model.pretrained is not None and isinstance(r.model.pretrained, str) and not Path(r.model.pretrained).expanduser().is_file():
        errors.append(f"model.pretrained: file not found: {r.model.pretrained}")
    if r.model.zero_init_residual is True and r.model.pretrained is not None:
        errors.append("model.zero_init_residual: only for training from scratch (it would reset ImageNet weights "
                      "of model.pretrained); set one of them off")
    if r.model.zero_init_residual is True and r.model.arch == "bninception":
        errors.append("model.zero_init_residual: bninception has no residual blocks")
    if isinstance(r.data.segments, int) and not MIN_SEGMENTS <= r.data.segments <= MAX_SEGMENTS:
        errors.append(f"data.segments: must be >= {MIN_SEGMENTS} and <= {MAX_SEGMENTS}, got {r.data.segments}")
    try:
        check_input_size(r.data.size, "data.size")
    except ActionNetError as e:
        errors.append(str(e))
    for key in ("num_train", "num_val"):
        v = getattr(r.data, key)
        if v is not None:
            positive(f"data.{key}", v)
    positive("data.workers", r.data.workers, allow_zero=True)
    t = r.train
    name("train.optimizer", t.optimizer, list(OPTIMIZERS))
    name("train.lr_schedule", t.lr_schedule, list(SCHEDULES))
    if t.lr_schedule == "cosine" and t.lr_steps:
        errors.append("train.lr_steps: only for lr_schedule: step (cosine decays over the whole run); "
                      "set train.lr_steps=[]")
    if isinstance(t.warmup, float) and not 0 <= t.warmup < 1:
        errors.append(f"train.warmup: a fraction of the run in [0, 1), got {t.warmup}")
    for key in ("epochs", "batch_size", "lr", "lr_gamma", "log_every"):
        positive(f"train.{key}", getattr(t, key))
    for key in ("momentum", "weight_decay"):
        positive(f"train.{key}", getattr(t, key), allow_zero=True)
    positive("train.seed", t.seed, allow_zero=True)
    if t.clip_grad is not None:
        positive("train.clip_grad", t.clip_grad)
    _check_steps("train.lr_steps", t.lr_steps, t.epochs, errors)
    if r.qat is not None:
        q = r.qat
        name("qat.backend", q.backend, list(QAT_BACKENDS))
        for key in ("epochs", "lr"):
            positive(f"qat.{key}", getattr(q, key))
        positive("qat.calib_batches", q.calib_batches, allow_zero=True)
        if q.batch_size is not None:
            positive("qat.batch_size", q.batch_size)
        _check_steps("qat.lr_steps", q.lr_steps, q.epochs, errors)
        for key in ("freeze_observer_epoch", "freeze_bn_epoch"):
            v = getattr(q, key)
            if isinstance(v, int) and isinstance(q.epochs, int) and not 0 <= v < q.epochs:
                errors.append(f"qat.{key}: must be an epoch in 0..{q.epochs - 1}, got {v}")


def _check_steps(where: str, steps: Any, epochs: Any, errors: list[str]) -> None:
    if not isinstance(steps, list) or not all(isinstance(s, float) for s in steps):
        return  # type error already reported
    if any(not 0 < s < 1 for s in steps):
        bad = next(s for s in steps if not 0 < s < 1)
        n = epochs if isinstance(epochs, int) and epochs > 1 else 10
        errors.append(f"{where}: steps are fractions of the run in (0, 1), got {bad:g}; for a step after epoch "
                      f"E of {n} write E/{n} (e.g. {max(1, n // 2)}/{n} = {max(1, n // 2) / n:.4g})")
    elif steps != sorted(set(steps)):
        errors.append(f"{where}: fractions must increase, got {steps}")


def parse_recipe(raw: Any, source: str | None = None) -> Recipe:
    """Validate a recipe dict; raises one :class:`ActionNetError` listing every problem."""
    where = f"{source}: " if source else ""
    if not isinstance(raw, dict):
        raise ActionNetError(f"{where}a recipe must be a mapping with sections {', '.join(SECTIONS)}")
    errors: list[str] = []
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SECTIONS:
            errors.append(f"unknown section '{key}'{_suggest(str(key), SECTIONS)}")
            continue
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping, got {value!r}")
            continue
        cls = SECTIONS[key]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for k, v in value.items():
            if k not in fields:
                errors.append(f"{key}.{k}: unknown key{_suggest(str(k), fields)}")
                continue
            kwargs[k] = _coerce(v, hints[k], f"{key}.{k}", errors)
        sections[key] = cls(**kwargs)
    for key in ("model", "data", "train"):
        if key not in raw:
            errors.append(f"missing section '{key}'")
    if not errors:
        recipe = Recipe(**sections, source=source)
        _check_values(recipe, errors)
    if errors:
        raise ActionNetError(f"{where}invalid recipe ({len(errors)} problem{'s' if len(errors) > 1 else ''}): "
                             + "; ".join(errors))
    return recipe


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (YAML-typed values) to a raw recipe dict."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    errors = []
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            errors.append(f"--set '{item}': expected section.key=value, e.g. train.lr=0.01")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        section, name = parts
        if raw.get(section) is None:
            raw[section] = {}
        if not isinstance(raw[section], dict):
            errors.append(f"--set '{item}': section '{section}' is not a mapping")
            continue
        raw[section][name] = value
    if errors:
        raise ActionNetError("; ".join(errors))
    return raw


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read a YAML recipe, apply ``--set`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ActionNetError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ActionNetError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ActionNetError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ActionNetError(f"{path}: a recipe must be a mapping with sections {', '.join(SECTIONS)}")
    return parse_recipe(apply_overrides(raw, overrides), source=str(path))
