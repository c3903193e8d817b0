"""The machine a benchmark ran on, and its compute floor (the fastest a model could possibly run).

The floor is MACs divided by the peak multiply-accumulate rate of the cores used::

    peak MAC/s = cores x FMA units per core x lanes per vector x clock

read from /proc/cpuinfo (flags for the vector width, ``cpu MHz`` for the clock). Assumptions,
stated in every report: 2 FMA units per core (true for Intel since Haswell and AMD since Zen 2);
fp32 lanes = the FMA units' datapath bits / 32 (AVX-512: 16, AVX2+FMA: 8, NEON/SSE: 4), where
AMD Zen 4 (family 19h with AVX-512) runs each 512-bit op on two 256-bit halves, so it has the
AVX2 rate of 8 lanes per unit, while Zen 5 (family 1Ah) has full 512-bit units (measured on an
EPYC of family 1Ah model 2 with benchmarks/peak_fma.c: 31.5 fp32 FMA per cycle per core); int8
on AVX2 without VNNI runs through 16-bit multiply-adds (VPMADDWD: 2 MACs per 32-bit lane),
i.e. 2x the fp32 rate, and with VNNI (VPDPBUSD: 4 MACs per lane) 4x. The clock: the kernel's ``cpu MHz`` is often the base clock (a VM reports the TSC
rate) while the cores run at their boost clock, so on x86-64 with a C compiler :func:`measure_peaks`
times a chain of dependent integer adds (one per cycle) to read the running clock, and the
higher of the two is used; it also times a large fp32 and int8 GEMM, and the floor uses the
fastest of theory and measurement: a floor is a bound no kernel can beat.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field

from ..malloc import describe as malloc_describe, keep_freed_memory


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
    reported_clock_ghz: float | None = None  # the kernel's figure, when a measured clock replaced it
    # measured GEMM rates (MAC/s) per precision and thread count, from measure_peaks()
    measured_macs_per_s: dict[str, dict[int, float]] = field(default_factory=dict)
    malloc: str = ""  # what the measuring processes' allocator does (actionnet_edge.malloc.describe)

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


# one dependent add per cycle on every x86-64 core: loop time / adds = the running clock. Register
# operands: Intel's Golden Cove and later cores fold chains of `add reg, imm` at rename (several per
# cycle; an immediate-add chain read 11.3 GHz on a Xeon of family 6 model 207)
_CLOCK_PROBE = r"""
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(void) {
  long best = 0; double rate = 0;
  for (int r = 0; r < 5; r++) {
    long n = 100000000L, x = 0; double t0 = now();
    long one = 1;
    __asm__ volatile("mov %1, %%rcx\n1:\n add %2, %0\n add %2, %0\n add %2, %0\n add %2, %0\n"
                     " sub $1, %%rcx\n jnz 1b\n" : "+r"(x) : "r"(n / 4), "r"(one) : "rcx");
    double g = n / (now() - t0) / 1e9; if (g > rate) rate = g; best += x;
  }
  printf("%.4f %ld\n", rate, best);
  return 0;
}
"""


def probe_clock_ghz() -> float | None:
    """The clock the cores run at, from a compiled add chain (x86-64 with ``cc``); None elsewhere."""
    import shutil
    import subprocess
    import tempfile

    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if platform.machine() not in ("x86_64", "AMD64") or not cc:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "clock.c"), os.path.join(tmp, "clock")
        with open(src, "w") as f:
            f.write(_CLOCK_PROBE)
        try:
            subprocess.run([cc, "-O2", "-o", exe, src], check=True, capture_output=True, timeout=60)
            out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=60).stdout
            return round(float(out.split()[0]), 3)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None


def set_floor(row: dict, machine: Machine, macs: int) -> None:
    """A measured row's ``floor_ms`` (its MACs at the peak rate) and ``x_floor`` (median / floor)."""
    row["floor_ms"] = machine.floor_ms(macs, row["threads"], row["precision"])
    row["x_floor"] = row["latency_ms_median"] / row["floor_ms"] if row["floor_ms"] else None


def _best_rate(fn, macs: int, repeats: int = 5) -> float:
    fn()  # warm-up (packing buffers, thread pool)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return macs / best


def measure_peaks(machine: Machine, threads: list[int], n: int = 2048) -> None:
    """Measure the running clock, and an n x n x n fp32 and int8 GEMM on each thread count, into ``machine``.

    A measured clock above the reported one replaces it; the GEMM rates (PyTorch's MKL / oneDNN
    kernels, 77% (fp32) and 92% (int8) of the peak on a Zen 4) are a check: should one beat the
    theoretical rate, the assumption is wrong for this CPU and the floor uses the measured rate.
    """
    import torch

    clock = probe_clock_ghz()
    if clock and (not machine.clock_ghz or clock > machine.clock_ghz):
        machine.reported_clock_ghz, machine.clock_ghz = machine.clock_ghz, clock
    before = torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    qa = torch.randint(-127, 128, (n, n), dtype=torch.int8, generator=gen)
    qb = torch.randint(-127, 128, (n, n), dtype=torch.int8, generator=gen)
    try:
        for t in threads:
            torch.set_num_threads(t)
            machine.measured_macs_per_s.setdefault("fp32", {})[t] = _best_rate(lambda: a @ b, n ** 3)
            try:
                machine.measured_macs_per_s.setdefault("int8", {})[t] = _best_rate(lambda: torch._int_mm(qa, qb), n ** 3)
            except (RuntimeError, AttributeError):  # no int8 GEMM in this torch build: theory only
                machine.measured_macs_per_s.get("int8", {}).pop(t, None)
    finally:
        torch.set_num_threads(before)
    machine.assumption = _assumption(machine)


def _assumption(m: Machine) -> str:
    """How the floor's peak rate is computed, in words, for the report."""
    if m.reported_clock_ghz:
        clock = f"{m.clock_ghz} GHz (measured with a dependent-add chain; the kernel reports {m.reported_clock_ghz})"
    else:
        clock = f"{m.clock_ghz} GHz (cpu MHz of /proc/cpuinfo)"
    text = (f"peak = cores x {m.fma_units} FMA units x {m.fp32_lanes} fp32 lanes ({m.vector}) x {clock}; int8 = "
            f"{m.int8_macs_per_fp32_mac}x fp32 ({'VNNI dot products' if m.int8_macs_per_fp32_mac == 4 else 'no VNNI: 16-bit VPMADDWD'}); "
            "threads beyond physical cores add nothing")
    rates = "; ".join(f"{p} {', '.join(f'{t} thr {r / 1e9:.0f}' for t, r in sorted(d.items()))} GMAC/s"
                      for p, d in m.measured_macs_per_s.items() if d)
    if rates:
        text += (f"; measured square GEMMs (torch matmul fp32, torch._int_mm int8, best of 5): {rates}; "
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
    mhz = info.get("cpu MHz")
    clock = float(mhz) / 1000.0 if mhz else None
    model = info.get("model name") or platform.processor() or platform.machine()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    machine = Machine(cpu_model=model, arch=platform.machine(), logical_cores=logical, physical_cores=physical,
                      threads_per_core=tpc, clock_ghz=clock, vector=vector, fp32_lanes=lanes, fma_units=2,
                      int8_macs_per_fp32_mac=int8_ratio, os=f"{platform.system()} {platform.release()}",
                      python=platform.python_version(), load_avg=tuple(round(x, 2) for x in load) if load else None,
                      runtimes=runtime_versions or {}, assumption="", malloc=malloc_describe(keep_freed_memory()))
    machine.assumption = _assumption(machine)
    return machine
