"""What a benchmark measures: its options, and the model sources (variants) it measures."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..constants import BENCH_VARIANTS, DEFAULT_BENCH_VARIANTS
from ..errors import ActionNetError, unknown_name
from ..models import check_input_size
from ..export import PRECISIONS
from . import adb
from .runtimes import get_runtime

TEMPORAL_TO_VARIANT = {v: k for k, v in BENCH_VARIANTS.items()}
SCHEMA = "actionnet-edge.bench/1"


@dataclass
class BenchOptions:
    """What to measure. Lists are measured as a full grid."""

    runtimes: list[str] = field(default_factory=lambda: ["pytorch", "executorch", "litert", "onnxruntime", "coreml"])
    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    threads: list[int] = field(default_factory=lambda: [2])
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_BENCH_VARIANTS))
    segments: int | None = None
    size: int | None = None
    warmup: int = 5
    runs: int = 30
    max_seconds: float | None = None  # stop timing a measurement after this long (at least 3 runs)
    rounds: int = 1  # every measurement once per round (order reversed every other round), runs pooled
    # model when there is no checkpoint
    arch: str = "mobilenet_v2"
    width_mult: float = 1.0
    num_classes: int = 27
    # export
    verify: bool = True
    parity_clips: int = 32
    # phone
    device: str | None = None
    dry_run: bool = False
    binaries: dict[str, Path] = field(default_factory=dict)
    # report
    accuracy: dict[str, float] = field(default_factory=dict)
    profile: bool | None = None  # None: profile when a goal is missed
    require_installed: bool = False  # runtimes named by the user: a missing one is an error, not a skip
    streaming: bool = False  # causal models: the streaming step per frame next to the clip

    def validate(self) -> None:
        for r in self.runtimes:
            rt = get_runtime(r)
            if self.require_installed and not self.device and not rt.macos_only and rt.missing():
                raise ActionNetError(rt.missing())
        for p in self.precisions:
            if p not in PRECISIONS:
                raise unknown_name("precision", p, PRECISIONS)
        for v in self.variants:
            if v not in BENCH_VARIANTS:
                raise unknown_name("variant", v, BENCH_VARIANTS)
        for k in self.accuracy:
            if k not in BENCH_VARIANTS:
                raise unknown_name("variant in --accuracy", k, BENCH_VARIANTS)
        if not self.threads or min(self.threads) < 1:
            raise ActionNetError("--threads must be positive integers")
        if self.warmup < 0 or self.runs < 1 or self.rounds < 1:
            raise ActionNetError("--warmup must be >= 0, --runs and --rounds >= 1")
        if self.segments is not None and self.segments < 2:
            raise ActionNetError(f"--segments must be at least 2, got {self.segments}")
        if self.size is not None:
            check_input_size(self.size, "--size")
        if self.device:
            serial = adb.parse_device(self.device)
            bad = [r for r in self.runtimes if r not in adb.BINARIES]
            if bad:
                raise ActionNetError(f"on a device only {', '.join(adb.BINARIES)} can run; remove {', '.join(bad)} "
                                     "from --runtimes")
            for r in self.runtimes:
                if r not in self.binaries:
                    flag = "--executorch-runner" if r == "executorch" else "--litert-benchmark"
                    raise ActionNetError(f"--device {self.device} with runtime {r} needs {flag} PATH "
                                         f"(the {adb.BINARIES[r]} binary built for the phone)")
            del serial
        if self.streaming and self.device:
            raise ActionNetError("--streaming is measured locally only (the phone runners feed no state)")


@dataclass
class Source:
    """One model variant to measure: its checkpoint (the pytorch artifact) and its MAC/param count."""

    variant: str
    checkpoint: Path | None
    config: dict
    macs: int | None
    params: int | None
    segments: int
    size: int
    mode: str = "clip"  # "clip": (1, T, 3, S, S) per run; "frame": one streaming step (1, 3, S, S)
    streaming: dict | None = None  # frame mode: metadata.json's streaming section ({"window": T} for pytorch)


def frame_source(src: Source, streaming: dict | None) -> Source:
    """``src`` measured frame by frame: MACs per frame = clip MACs / T (every op runs once per frame)."""
    macs = round(src.macs / src.segments) if src.macs else None
    return replace(src, mode="frame", streaming=streaming, macs=macs)

