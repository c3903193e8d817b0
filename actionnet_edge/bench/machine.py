"""The machine a benchmark ran on, and its compute floor (the fastest a model could possibly run).

The floor is MACs divided by the peak multiply-accumulate rate of the cores used::

    peak MAC/s = cores x FMA units per core x fp32 lanes x clock  (x 2 or x 4 for int8)

with the vector width from /proc/cpuinfo flags and the clock from :func:`read_clock_ghz`; the
assumptions (FMA units, lanes per CPU family, int8 rate) are in docs/benchmarks.md and stated in
every report. A measured GEMM replaces the theory when it is faster: a floor no kernel beats.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field

from .runtimes import allocator_note


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
    clock_source: str = ""  # where clock_ghz was read (read_clock_ghz)
    # measured GEMM rates (MAC/s) per precision and thread count, from measure_peaks()
    measured_macs_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    malloc: str = ""  # what the measuring processes' allocator does (runtimes.allocator_note)

    def to_dict(self) -> dict:
        return asdict(self)

    def theoretical_macs_per_s(self, threads: int, precision: str = "fp32") -> float | None:
        """cores x FMA units x lanes x clock for ``threads`` cores (capped at the physical cores)."""
        if not self.clock_ghz:
            return None
        cores = max(1, min(threads, self.physical_cores))
        rate = cores * self.fma_units * self.fp32_lanes * self.clock_ghz * 1e9
        return rate * (self.int8_macs_per_fp32_mac if precision == "int8" else 1)

    def peak_macs_per_s(self, threads: int, precision: str = "fp32") -> float | None:
        """The faster of the theoretical rate and the measured GEMM rate (fp32 or int8)."""
        rates = [self.theoretical_macs_per_s(threads, precision),
                 self.measured_macs_per_s.get(precision, {}).get(threads)]
        rates = [r for r in rates if r]
        return max(rates) if rates else None

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


def _vector_unit(info: dict[str, str]) -> tuple[str, int]:
    """(vector unit description, fp32 lanes per FMA unit per cycle) from /proc/cpuinfo fields."""
    flags = set(info.get("flags", info.get("Features", "")).split())
    if "avx512f" in flags:
        if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25":
            return "AVX-512 on 256-bit FMA units (AMD Zen 4)", 8
        if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "26":
            return "AVX-512 on 512-bit FMA units (AMD Zen 5)", 16
        return "AVX-512", 16
    if "avx2" in flags and "fma" in flags:
        return "AVX2+FMA", 8
    if flags & {"asimd", "neon"}:
        return "NEON", 4
    return "SSE", 4


def read_clock_ghz(info: dict[str, str], cpufreq: str = "/sys/devices/system/cpu/cpu0/cpufreq") -> tuple[float | None, str]:
    """(clock in GHz, where it was read): the rated maximum of sysfs cpufreq (``cpuinfo_max_freq``,
    kHz) where the kernel exposes it, else ``cpu MHz`` of /proc/cpuinfo (a VM often reports its
    base or TSC rate there, so the floor from it is higher than from the boost clock)."""
    try:
        with open(os.path.join(cpufreq, "cpuinfo_max_freq")) as f:
            return int(f.read().strip()) / 1e6, "cpuinfo_max_freq of sysfs cpufreq"
    except (OSError, ValueError):
        pass
    mhz = info.get("cpu MHz")
    try:
        return (float(mhz) / 1000.0, "cpu MHz of /proc/cpuinfo") if mhz else (None, "no clock found")
    except ValueError:
        return None, "no clock found"


def set_floor(row: dict, machine: Machine, macs: int) -> None:
    """A measured row's ``floor_ms`` (its MACs at the peak rate) and ``x_floor`` (median / floor)."""
    row["floor_ms"] = machine.floor_ms(macs, row["threads"], row["precision"])
    row["x_floor"] = row["latency_ms_median"] / row["floor_ms"] if row["floor_ms"] else None


#: a GEMM whose full size would take longer than this (seconds a call) is timed at the probe size
#: only: torch._int_mm without VNNI runs a reference kernel at about 0.5 GMAC/s, 16 s a 2048^3 call,
#: which a faster theoretical rate outruns anyway
GEMM_BUDGET_S = 0.5
GEMM_PROBE = 256


def _best_rate(fn, macs: int, repeats: int = 5) -> float:
    fn()  # warm-up (packing buffers, thread pool)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return macs / best


def _gemm_rate(make, n: int) -> float:
    """Best-of-5 MAC/s of the n x n x n GEMM ``make(n)`` returns, or of the probe-size one when a
    probe call says the full size would exceed :data:`GEMM_BUDGET_S`."""
    probe = make(GEMM_PROBE)
    probe()  # warm-up
    t0 = time.perf_counter()
    probe()
    if (time.perf_counter() - t0) * (n / GEMM_PROBE) ** 3 > GEMM_BUDGET_S:
        n = GEMM_PROBE
    return _best_rate(make(n), n ** 3)


def measure_peaks(machine: Machine, threads: list[int], n: int = 2048) -> None:
    """Time an n x n x n fp32 and int8 GEMM on each thread count into ``machine``: a check of the
    theoretical rate (should a GEMM beat it, the floor uses the measured rate)."""
    import torch

    def fp32(k: int):
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(k, k, generator=gen), torch.randn(k, k, generator=gen)
        return lambda: a @ b

    def int8(k: int):
        gen = torch.Generator().manual_seed(0)
        a, b = (torch.randint(-127, 128, (k, k), dtype=torch.int8, generator=gen) for _ in range(2))
        return lambda: torch._int_mm(a, b)

    before = torch.get_num_threads()
    try:
        for t in threads:
            torch.set_num_threads(t)
            machine.measured_macs_per_s.setdefault("fp32", {})[t] = _gemm_rate(fp32, n)
            try:
                machine.measured_macs_per_s.setdefault("int8", {})[t] = _gemm_rate(int8, n)
            except (RuntimeError, AttributeError):  # no int8 GEMM in this torch build: theory only
                machine.measured_macs_per_s.get("int8", {}).pop(t, None)
    finally:
        torch.set_num_threads(before)
    machine.assumption = _assumption(machine)


def _assumption(m: Machine) -> str:
    """How the floor's peak rate is computed, in words, for the report."""
    clock = f"{m.clock_ghz} GHz ({m.clock_source})"
    text = (f"peak = cores x {m.fma_units} FMA units x {m.fp32_lanes} fp32 lanes ({m.vector}) x {clock}; int8 = "
            f"{m.int8_macs_per_fp32_mac}x fp32 ({'VNNI dot products' if m.int8_macs_per_fp32_mac == 4 else 'no VNNI: 16-bit VPMADDWD'}); "
            "threads beyond physical cores add nothing")
    rates = "; ".join(f"{p} {', '.join(f'{t} thr {r / 1e9:.0f}' for t, r in sorted(d.items()))} GMAC/s"
                      for p, d in m.measured_macs_per_s.items() if d)
    if rates:
        text += (f"; measured square GEMMs (torch matmul fp32, torch._int_mm int8, best of 5; a kernel that would "
                 f"take over {GEMM_BUDGET_S} s a full-size call timed at {GEMM_PROBE}^3): {rates}; "
                 "the floor uses the faster of theory and measurement")
    return text


def describe(runtime_versions: dict[str, str | None] | None = None) -> Machine:
    """CPU model, cores, vector unit and clock of this machine, plus the runtime versions."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    logical = os.cpu_count() or 1
    physical, tpc = _physical_cores(logical)
    vector, lanes = _vector_unit(info)
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "asimddp"})
    int8_ratio = 4 if vnni else 2
    clock, clock_source = read_clock_ghz(info)
    model = info.get("model name") or platform.processor() or platform.machine()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    machine = Machine(cpu_model=model, arch=platform.machine(), logical_cores=logical, physical_cores=physical,
                      threads_per_core=tpc, clock_ghz=clock, clock_source=clock_source, vector=vector, fp32_lanes=lanes, fma_units=2,
                      int8_macs_per_fp32_mac=int8_ratio, os=f"{platform.system()} {platform.release()}",
                      python=platform.python_version(), load_avg=tuple(round(x, 2) for x in load) if load else None,
                      runtimes=runtime_versions or {}, assumption="", malloc=allocator_note())
    machine.assumption = _assumption(machine)
    return machine
