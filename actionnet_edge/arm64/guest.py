"""The ARM64 (aarch64) builds of the runtimes on an x86 machine, under QEMU user-mode emulation.

:func:`ensure` sets up, once, into a cache folder (``$ACTIONNET_EDGE_CACHE/arm64``, default
``~/.cache/actionnet-edge/arm64``), from the package registries only and without changing the
host's apt state:

- ``qemu-aarch64``: the one static binary of Debian's ``qemu-user`` from bookworm-backports (QEMU
  10, which emulates ``/proc/cpuinfo`` per ``-cpu`` model; Debian 12's own QEMU 7.2 passes the
  host's through and LiteRT's CPU detection crashes on it), by ``apt-get download`` with a private
  sources list, list and cache folders, then ``dpkg-deb --fsys-tarfile``;
- ``sysroot``: the arm64 ``.deb`` files of python3.11 and the libraries it and the wheels need,
  unpacked with ``dpkg -x`` (no chroot, no binfmt: ``qemu-aarch64 -L SYSROOT``);
- ``site``: the aarch64 wheels of numpy, ai-edge-litert, onnxruntime and flatbuffers (the host's
  versions), unzipped into one folder for ``PYTHONPATH``;
- ``runner``: our ExecuTorch runner (``runner.cpp`` beside this file) cross-compiled with Debian's
  ``g++-aarch64-linux-gnu`` against the aarch64 executorch wheel's headers and libraries (its
  Python extension needs libtorch, whose aarch64 PyPI build needs CUDA libraries); its folder's
  name carries the source's hash, so an edited ``runner.cpp`` is rebuilt.

Each piece is built in a temporary folder and renamed into place, so a failed step is redone next
time. :func:`locate` returns the same :class:`Arm64Env` without downloading anything.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ActionNetError
from .cache import CPUS, cache_base, debian_mirror
from .cache import run as _run

log = logging.getLogger(__name__)

SUITE, BACKPORTS = "bookworm", "bookworm-backports"
CROSS_PACKAGE, CROSS_CXX = "g++-aarch64-linux-gnu", "aarch64-linux-gnu-g++"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: what the sysroot starts from (apt adds their dependencies)
SYSROOT_ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1")
#: wheels run inside the emulated Python (with what their metadata requires)
GUEST_WHEELS = ("numpy", "ai-edge-litert", "onnxruntime", "flatbuffers")
EXECUTORCH_VERSION = "1.5.1"
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_28_aarch64")
RUNNER_SOURCE = Path(__file__).resolve().with_name("runner.cpp")
ET_LIBS = ("executorch_kernels_optimized", "executorch_kernels_quantized", "executorch_backend_xnnpack",
           "executorch_threadpool", "executorch")


@dataclass(frozen=True)
class Arm64Env:
    """Where the emulated runtimes are: run ``command(cpu, [python, script])`` or ``[runner, ...]``."""

    root: Path
    qemu: Path
    sysroot: Path
    site: Path
    runner: Path

    @property
    def python(self) -> Path:
        """The guest's Python, as a path the emulator opens (inside the sysroot)."""
        return self.sysroot / "usr" / "bin" / "python3.11"

    def command(self, cpu: str, argv: list[str]) -> list[str]:
        """``argv`` (an aarch64 program and its arguments) under ``qemu-aarch64 -cpu cpu``."""
        if cpu not in CPUS:
            from ..errors import unknown_name

            raise unknown_name("emulated CPU", cpu, CPUS)
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.sysroot), *map(str, argv)]

    def environment(self) -> dict[str, str]:
        """The guest Python's environment: the wheels' folder on its path, nothing from the host's venv."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LD_"))}
        return {**env, "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def cache_root(cache: str | Path | None = None) -> Path:
    """The arm64 cache: ``cache``, else ``$ACTIONNET_EDGE_CACHE/arm64``, else ``~/.cache/actionnet-edge/arm64``."""
    return Path(cache) if cache is not None else cache_base() / "arm64"


def _env(root: Path) -> Arm64Env:
    digest = hashlib.sha256(RUNNER_SOURCE.read_bytes()).hexdigest()[:12]
    return Arm64Env(root, root / "qemu-aarch64", root / "sysroot", root / "site",
                    root / f"executorch-{digest}" / "runner")


def locate(cache: str | Path | None = None) -> Arm64Env:
    """The set-up environment; a one-line error naming the missing piece (and how to set it up)."""
    env = _env(cache_root(cache))
    for what, path in (("qemu-aarch64", env.qemu), ("the arm64 sysroot", env.python),
                       ("the aarch64 wheels", env.site), ("the ExecuTorch runner", env.runner)):
        if not path.exists():
            raise ActionNetError(f"{what} is missing from {env.root} (any `actionnet-edge verify --on arm64` "
                                 "sets it up)")
    return env


def ensure(cache: str | Path | None = None) -> Arm64Env:
    """Set up whatever is missing (logged step by step), then return the environment."""
    env = _env(cache_root(cache))
    env.root.mkdir(parents=True, exist_ok=True)
    steps = (("qemu-aarch64 (QEMU from bookworm-backports)", env.qemu, _get_qemu),
             ("arm64 sysroot (python3.11 and its libraries)", env.sysroot, _get_sysroot),
             ("aarch64 wheels (" + ", ".join(GUEST_WHEELS) + ")", env.site, _get_wheels),
             ("ExecuTorch runner (cross-compiled)", env.runner.parent, _build_runner))
    for i, (what, dest, step) in enumerate(steps, 1):
        if dest.exists():
            continue
        log.info("arm64 set-up %d/%d: %s -> %s", i, len(steps), what, dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=env.root))
        try:
            step(env.root, tmp)
            os.replace(tmp / "out", dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return locate(env.root)


# ---------------------------------------------------------------------------------------------


def _apt(root: Path, arch: str, suites: tuple[str, ...]) -> list[str]:
    """An ``apt-get`` command prefix with a private sources list, lists, cache and architecture."""
    d = root / "apt" / f"{arch}-{'-'.join(suites)}"
    (d / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (d / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (d / "parts").mkdir(exist_ok=True)
    signed = f"[signed-by={KEYRING}] " if Path(KEYRING).is_file() else ""
    (d / "sources.list").write_text("".join(f"deb {signed}{debian_mirror()} {s} main\n" for s in suites))
    opts = {"Dir::Etc::SourceList": d / "sources.list", "Dir::Etc::SourceParts": d / "parts",
            "Dir::State::Lists": d / "lists", "Dir::Cache": d / "cache", "Dir::State::status": "/dev/null",
            "APT::Architecture": arch, "APT::Architectures": arch, "Debug::NoLocking": "1"}
    prefix = [f"-o{k}={v}" for k, v in opts.items()]
    if not (d / "updated").exists():
        _run(["apt-get", *prefix, "-qq", "update"], f"apt-get update ({arch}, {' '.join(suites)})")
        (d / "updated").touch()
    return prefix


def _get_qemu(root: Path, tmp: Path) -> None:
    host = _run(["dpkg", "--print-architecture"], "dpkg").strip()
    apt = _apt(root, host, (BACKPORTS,))
    _run(["apt-get", *apt, "-qq", "download", f"qemu-user/{BACKPORTS}"], "apt-get download qemu-user", cwd=tmp)
    deb = next(tmp.glob("qemu-user_*.deb"))
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        member = tf.getmember("./usr/bin/qemu-aarch64")
        (tmp / "out").write_bytes(tf.extractfile(member).read())
    (tmp / "out").chmod(0o755)


def _get_sysroot(root: Path, tmp: Path) -> None:
    apt = _apt(root, "arm64", (SUITE, f"{SUITE}-updates"))
    text = _run(["apt-cache", *apt, "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                 "--no-breaks", "--no-replaces", "--no-enhances", *SYSROOT_ROOTS], "apt-cache depends (arm64)")
    names = sorted({ln.strip() for ln in text.splitlines() if ln and not ln[0].isspace() and not ln.startswith("<")})
    log.info("arm64 sysroot: downloading %d packages", len(names))
    debs = tmp / "debs"
    debs.mkdir()
    _run(["apt-get", *apt, "-qq", "download", *names], "apt-get download (arm64 sysroot)", cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(tmp / "out")], f"dpkg -x {deb.name}")


def _pip_download(dest: Path, specs: list[str], *, deps: bool) -> None:
    plats = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:", *plats,
          "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
          *([] if deps else ["--no-deps"]), "-d", str(dest), *specs], "pip download (aarch64 wheels)")


def _host_pin(dist: str) -> str:
    """``dist==<the host's version>`` (the same runtime on both sides), or ``dist`` when not installed here."""
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return dist


def _get_wheels(root: Path, tmp: Path) -> None:
    _pip_download(tmp / "wheels", [_host_pin(d) for d in GUEST_WHEELS], deps=True)
    for whl in sorted((tmp / "wheels").glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(tmp / "out")


def _cross_compiler() -> str:
    """The aarch64 C++ compiler; installed with apt-get when missing and we are root, else a clear error."""
    if shutil.which(CROSS_CXX):
        return CROSS_CXX
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log.info("installing %s (apt-get)", CROSS_PACKAGE)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", CROSS_PACKAGE],
             f"apt-get install {CROSS_PACKAGE}", env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if shutil.which(CROSS_CXX):
            return CROSS_CXX
    raise ActionNetError(f"{CROSS_CXX} not found: install the Debian package {CROSS_PACKAGE} "
                         f"(apt-get install {CROSS_PACKAGE})")


def _build_runner(root: Path, tmp: Path) -> None:
    cxx = _cross_compiler()
    _pip_download(tmp, [f"executorch=={EXECUTORCH_VERSION}"], deps=False)
    out = tmp / "out"
    with zipfile.ZipFile(next(tmp.glob("executorch-*.whl"))) as z:
        z.extractall(out, [n for n in z.namelist() if n.startswith(("executorch/lib/", "executorch/include/"))])
    et = out / "executorch"
    _run([cxx, "-std=c++17", "-O2", "-DC10_USING_CUSTOM_GENERATED_MACROS", f"-I{et / 'include'}",
          f"-I{et / 'include/executorch/runtime/core/portable_type/c10'}", "-o", str(out / "runner"),
          str(RUNNER_SOURCE), f"-L{et / 'lib'}", "-Wl,--no-as-needed",
          *(f"-l{lib}" for lib in ET_LIBS), "-Wl,-rpath,$ORIGIN/executorch/lib"], "compiling the ExecuTorch runner")
    shutil.rmtree(et / "include")
    shutil.rmtree(et / "lib" / "cmake", ignore_errors=True)
