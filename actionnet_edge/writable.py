"""Check that an output path can be written before the work that produces it starts.

A command that writes a figure, a video or a JSON report at the end fails at once, with one
line naming the path and the errno's meaning, instead of losing its work at the last step.
Nothing is created: the nearest existing folder on the path gets a probe file that is removed
at once (folders the writer will create are created by the writer).
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import ActionNetError


def check_writable(path: str | Path, what: str = "output") -> Path:
    """``path`` if a file can be written there (after its missing folders are made); else an
    :class:`ActionNetError` such as ``cannot write --out /x/y.png: Permission denied (/x)``."""
    path = Path(path)
    if path.is_dir():
        raise ActionNetError(f"cannot write {what} {path}: {os.strerror(errno.EISDIR)}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ActionNetError(f"cannot write {what} {path}: {os.strerror(errno.ENOTDIR)} ({folder})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".actionnet-write-check.", dir=folder)
    except OSError as e:
        raise ActionNetError(f"cannot write {what} {path}: {e.strerror or e} ({folder})") from None
    os.close(fd)
    os.unlink(probe)
    return path
