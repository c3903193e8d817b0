"""Where the ARM64 tools live on this machine, and the Debian archive they come from.

One cache folder (``$ACTIONNET_EDGE_CACHE``, default ``~/.cache/actionnet-edge``) holds the
emulated runtimes (``arm64/``) and the plugin QEMU (``qemu-plugins-<version>/``). The Debian
archive is the one the machine's own apt is configured with (``/etc/apt/sources.list``,
``sources.list.d/*.list`` and deb822 ``*.sources``): nothing else is assumed.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..errors import ActionNetError

CACHE_ENV = "ACTIONNET_EDGE_CACHE"
#: one emulated CPU per phone class: ARMv8.0 (no dot product), ARMv8.2 with dot product (little, big core)
CPUS = ("cortex-a53", "cortex-a55", "cortex-a76")
APT_DIR = Path("/etc/apt")
_ONE_LINE = re.compile(r"^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)", re.M)
_DEB822 = re.compile(r"^URIs:\s*(\S+)", re.M | re.I)


def cache_base(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$ACTIONNET_EDGE_CACHE``, else ``~/.cache/actionnet-edge``."""
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "actionnet-edge")


def _source_files(apt_dir: Path) -> list[Path]:
    parts = apt_dir / "sources.list.d"
    return [apt_dir / "sources.list", *sorted(parts.glob("*.list")), *sorted(parts.glob("*.sources"))]


def debian_mirror(apt_dir: Path = APT_DIR) -> str:
    """The first Debian archive URI in the machine's apt sources (security suites skipped)."""
    for f in _source_files(apt_dir):
        try:
            text = f.read_text()
        except OSError:
            continue
        pattern = _DEB822 if f.suffix == ".sources" else _ONE_LINE
        for m in pattern.finditer(text):
            uri = m.group(1).rstrip("/")
            if "/debian" in uri and not uri.endswith("-security"):
                return uri
    raise ActionNetError(f"apt has no Debian source configured (looked in {apt_dir}/sources.list and "
                         f"{apt_dir}/sources.list.d/)")


def run(cmd: list, what: str, **kw) -> str:
    """Run a set-up command; its failure is one line naming the step and the last line of its output."""
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise ActionNetError(f"{what}: '{cmd[0]}' is not installed") from None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ActionNetError(f"{what} failed: {tail[0][:300]}")
    return p.stdout
