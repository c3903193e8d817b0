"""A QEMU with TCG plugins and our instruction-counting plugin, built once into the cache.

Debian's QEMU builds have no plugin support, so :func:`ensure_plugin_qemu` builds QEMU
(``aarch64-linux-user`` only) from the upstream tarball of Debian's bookworm-backports source
package (from the machine's own Debian archive, :func:`.cache.debian_mirror`, with apt's private lists,
checked against the signed Sources index), with
meson and pycotap from PyPI in a private venv and ninja / glib from Debian. The plugin
(``assets/armcost_plugin.c``) is compiled against that QEMU's ``qemu-plugin.h``; its file name
carries the source's hash, so an edited plugin is rebuilt. Everything is built in a temporary
folder and renamed into place: a failed set-up leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ActionNetError
from .cache import cache_base, debian_mirror

log = logging.getLogger(__name__)

QEMU_VERSION = "10.0.2"
SOURCE_SUITE = "bookworm-backports"
BUILD_PYPI = ("meson==1.5.2", "pycotap==1.3.1")  # QEMU 10.0 needs meson >= 1.5; its tarball ships neither wheel
DEBIAN_BUILD = {"ninja": "ninja-build", "pkg-config": "pkg-config", "cc": "gcc", "xz": "xz-utils"}
CONFIGURE = ("--target-list=aarch64-linux-user", "--enable-plugins", "--disable-system", "--disable-tools",
             "--disable-docs", "--disable-install-blobs")  # the +ds tarball has no firmware blobs to install
PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "assets" / "armcost_plugin.c"


@dataclass(frozen=True)
class PluginQemu:
    """A ``qemu-aarch64`` that loads TCG plugins, and our counting plugin built for it."""

    qemu: Path
    plugin: Path


def qemu_dir(cache: str | Path | None = None) -> Path:
    return cache_base(cache) / f"qemu-plugins-{QEMU_VERSION}"


def plugin_path(cache: str | Path | None = None) -> Path:
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:12]
    return qemu_dir(cache) / f"armcost-{digest}.so"


def locate_plugin_qemu(cache: str | Path | None = None) -> PluginQemu | None:
    """The built QEMU and plugin, or None when :func:`ensure_plugin_qemu` has not run (nothing downloads)."""
    found = PluginQemu(qemu_dir(cache) / "qemu-aarch64", plugin_path(cache))
    return found if found.qemu.is_file() and found.plugin.is_file() else None


def ensure_plugin_qemu(cache: str | Path | None = None, echo=None) -> PluginQemu:
    """Build what is missing (QEMU about 5 minutes on one core, the plugin a second) and return it."""
    say = echo or log.info
    home = qemu_dir(cache)
    if not (home / "qemu-aarch64").is_file():
        say(f"building QEMU {QEMU_VERSION} with TCG plugins into {home} (once; several minutes)")
        _check_build_tools()
        home.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".qemu-build-", dir=home.parent) as tmp:
            staged = _build_qemu(Path(tmp), say)
            if home.exists():
                shutil.rmtree(home)
            staged.rename(home)
    plugin = plugin_path(cache)
    if not plugin.is_file():
        _compile_plugin(home / "include", plugin)
    return PluginQemu(home / "qemu-aarch64", plugin)


def _run(cmd: list, what: str, log_file: Path | None = None, **kw) -> None:
    """Run a build step; on failure one line naming it and the tail of its output."""
    res = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if log_file is not None:
        log_file.write_text(res.stdout)
    if res.returncode != 0:
        tail = [ln for ln in res.stdout.splitlines() if ln.strip()][-1:] or ["no output"]
        where = f" (log: {log_file})" if log_file is not None else ""
        raise ActionNetError(f"{what} failed: {tail[0].strip()[:300]}{where}")


def _check_build_tools() -> None:
    """ninja, a C compiler, pkg-config and glib's headers; installed from Debian when we are root."""
    missing = sorted({pkg for tool, pkg in DEBIAN_BUILD.items() if shutil.which(tool) is None})
    glib = shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "glib-2.0"]).returncode == 0
    if not glib:
        missing.append("libglib2.0-dev")
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ActionNetError(f"building QEMU needs {', '.join(missing)}: run 'sudo apt-get install "
                             f"{' '.join(missing)}' and retry")
    log.info("installing %s from Debian", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends", *missing],
         f"apt-get install {' '.join(missing)}", env=env)


def _build_qemu(tmp: Path, say) -> Path:
    """Fetch, configure and build; returns ``tmp/out`` holding ``qemu-aarch64`` and ``include/``."""
    src = _fetch_source(tmp)
    say(f"installing {', '.join(BUILD_PYPI)} from PyPI into a private venv")
    _run([sys.executable, "-m", "venv", tmp / "venv"], "creating the build venv")
    _run([tmp / "venv/bin/python", "-m", "pip", "install", "-q", *BUILD_PYPI], f"pip install {' '.join(BUILD_PYPI)}")
    build = tmp / "build"
    build.mkdir()
    say("configuring QEMU (aarch64-linux-user, plugins on)")
    _run([src / "configure", f"--python={tmp / 'venv/bin/python3'}", *CONFIGURE], "QEMU's configure",
         log_file=tmp / "configure.log", cwd=build)
    _ninja(build, say, tmp / "ninja.log")
    out = tmp / "out"
    (out / "include").mkdir(parents=True)
    shutil.copy2(build / "qemu-aarch64", out / "qemu-aarch64")
    shutil.copy2(src / "include/qemu/qemu-plugin.h", out / "include/qemu-plugin.h")
    return out


def _ninja(build: Path, say, log_file: Path) -> None:
    """``ninja qemu-aarch64`` with its progress reported every tenth."""
    proc = subprocess.Popen(["ninja", "qemu-aarch64"], cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    shown, lines = -1, []
    with log_file.open("w") as fh:
        for line in proc.stdout:
            fh.write(line)
            lines.append(line)
            m = re.match(r"\[(\d+)/(\d+)\]", line)
            if m and int(m[1]) * 10 // int(m[2]) > shown:
                shown = int(m[1]) * 10 // int(m[2])
                say(f"building QEMU: {m[1]}/{m[2]} steps")
    if proc.wait() != 0:
        errors = [ln.strip() for ln in lines if "error" in ln.lower()] or lines[-1:] or ["no output"]
        raise ActionNetError(f"building QEMU failed: {errors[0][:300]} (log: {log_file})")


def _fetch_source(tmp: Path) -> Path:
    """The upstream tarball of Debian's qemu source package, its sha256 checked against apt's signed index."""
    if shutil.which("apt-get") is None:
        raise ActionNetError("building QEMU needs apt-get (Debian's qemu source package from bookworm-backports)")
    apt = tmp / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True)
    (apt / "sources.list").write_text(f"deb-src {debian_mirror()} {SOURCE_SUITE} main\n")
    opts = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", "Dir::State::status=/dev/null"]
    _run(["apt-get", *opts, "update"], f"apt-get update ({SOURCE_SUITE} sources)")
    res = subprocess.run(["apt-get", *opts, "source", "--print-uris", f"qemu/{SOURCE_SUITE}"], capture_output=True,
                         text=True, cwd=tmp)
    found = re.search(r"'(\S+)' (qemu_([\d.]+)\+ds\.orig\.tar\.xz) (\d+) SHA256:([0-9a-f]{64})", res.stdout)
    if not found:
        raise ActionNetError(f"apt-get source found no qemu source package in {SOURCE_SUITE}")
    url, name, version, size, sha = found.groups()
    if version != QEMU_VERSION:
        raise ActionNetError(f"{SOURCE_SUITE} has QEMU {version}; this toolkit builds {QEMU_VERSION}")
    log.info("downloading %s (%.0f MB)", name, int(size) / 1e6)
    tarball = tmp / name
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as r, tarball.open("wb") as fh:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            fh.write(chunk)
    if digest.hexdigest() != sha:
        raise ActionNetError(f"{name}: sha256 differs from the one in Debian's index")
    with tarfile.open(tarball) as tf:
        tf.extractall(tmp / "src", filter="data")
    tarball.unlink()
    return tmp / "src" / f"qemu-{QEMU_VERSION}"


def _compile_plugin(include: Path, out: Path) -> None:
    """The plugin against the built QEMU's header, compiled to a temp name then renamed."""
    flags = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True).stdout.split()
    tmp = out.with_name(out.name + ".tmp")
    _run(["cc", "-shared", "-fPIC", "-O2", "-Wall", f"-I{include}", *flags, PLUGIN_SOURCE, "-o", tmp],
         "compiling the instruction-counting plugin")
    tmp.rename(out)
