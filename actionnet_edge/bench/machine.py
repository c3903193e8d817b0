"""The machine a benchmark ran on, and its compute floor (the fastest a model could possibly run).

The floor is MACs divided by the peak multiply-accumulate rate of the cores used::

    peak MAC/s = cores x FMA units per core x lanes per vector x clock

read from /proc/cpuinfo (flags for the vector width, ``cpu MHz`` for the clock). Assumptions,
stated in every report: 2 FMA units per core (true for Intel since Haswell and AMD since Zen 2);
fp32 lanes = vector bits / 32 (AVX-512: 16, AVX2+FMA: 8, NEON/SSE: 4); int8 on AVX2 without
VNNI runs through 16-bit multiply-adds (VPMADDWD: 2 MACs per 32-bit lane), i.e. 2x the fp32
rate, and with VNNI (VPDPBUSD: 4 MACs per lane) 4x. The clock is the one the kernel reports
(turbo may be higher, so real code can beat a "floor" slightly; a VM may report the base clock).
"""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass


@dataclass
class Machine:
    cpu_model: str
    arch: str
    logical_cores: int
    physical_cores: int
    threads_per_core: int
    clock_ghz: float | None
    vector: str
    fp32_lanes: int
    fma_units: int
    int8_macs_per_fp32_mac: int
    os: str
    python: str
    load_avg: tuple[float, float, float] | None
    runtimes: dict[str, str | None]
    assumption: str

    def to_dict(self) -> dict:
        return asdict(self)

    def peak_macs_per_s(self, threads: int, precision: str = "fp32") -> float | None:
        """Peak MAC/s of ``threads`` cores (capped at the physical cores) for fp32 or int8."""
        if not self.clock_ghz:
            return None
        cores = max(1, min(threads, self.physical_cores))
        rate = cores * self.fma_units * self.fp32_lanes * self.clock_ghz * 1e9
        return rate * (self.int8_macs_per_fp32_mac if precision == "int8" else 1)

    def floor_ms(self, macs: int, threads: int, precision: str = "fp32") -> float | None:
        """MACs / peak rate, in ms (fp16 artifacts run in fp32 on CPUs without fp16 arithmetic)."""
        peak = self.peak_macs_per_s(threads, "int8" if precision == "int8" else "fp32")
        return None if not peak else macs / peak * 1e3


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    k, v = (s.strip() for s in line.split(":", 1))
                    info.setdefault(k, v)  # first processor's values
    except OSError:
        pass
    return info


def _physical_cores(logical: int) -> tuple[int, int]:
    """(physical cores, threads per core) from sysfs thread siblings, else (logical, 1)."""
    seen = set()
    for cpu in range(logical):
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                seen.add(f.read().strip())
        except OSError:
            return logical, 1
    return len(seen) or logical, max(1, logical // max(1, len(seen)))


def describe(runtime_versions: dict[str, str | None] | None = None) -> Machine:
    """CPU model, cores, vector unit and clock of this machine, plus the runtime versions."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    logical = os.cpu_count() or 1
    physical, tpc = _physical_cores(logical)
    if "avx512f" in flags:
        vector, lanes = "AVX-512", 16
    elif "avx2" in flags and "fma" in flags:
        vector, lanes = "AVX2+FMA", 8
    elif flags & {"asimd", "neon"}:
        vector, lanes = "NEON", 4
    else:
        vector, lanes = "SSE", 4
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})
    int8_ratio = 4 if vnni else 2
    mhz = info.get("cpu MHz")
    clock = float(mhz) / 1000.0 if mhz else None
    model = info.get("model name") or platform.processor() or platform.machine()
    assumption = (f"peak = cores x 2 FMA units x {lanes} fp32 lanes ({vector}) x {clock} GHz (cpu MHz of "
                  f"/proc/cpuinfo); int8 = {int8_ratio}x fp32 ({'VNNI dot products' if vnni else 'no VNNI: 16-bit VPMADDWD'}); "
                  "threads beyond physical cores add nothing")
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return Machine(cpu_model=model, arch=platform.machine(), logical_cores=logical, physical_cores=physical,
                   threads_per_core=tpc, clock_ghz=clock, vector=vector, fp32_lanes=lanes, fma_units=2,
                   int8_macs_per_fp32_mac=int8_ratio, os=f"{platform.system()} {platform.release()}",
                   python=platform.python_version(), load_avg=tuple(round(x, 2) for x in load) if load else None,
                   runtimes=runtime_versions or {}, assumption=assumption)
