"""Writing files so that a failure or a kill never leaves a half result.

* :func:`atomic_write` / :func:`atomic_write_text`: a temporary file in the same folder,
  flushed and fsynced, then ``os.replace`` (and the folder fsynced); removed on any failure.
* :func:`publish_dir`: move a finished temporary folder into place. On Linux it uses
  ``renameat2`` (glibc >= 2.28): ``RENAME_EXCHANGE`` swaps a new folder with the old one in one
  step (a kill at any instant leaves the old or the new folder whole at the output path), and
  ``RENAME_NOREPLACE`` refuses to overwrite a folder another process published meanwhile.
  Elsewhere a lock file serialises publishers and the old folder is renamed aside, then the new
  one renamed in: a kill between the two renames leaves the old folder under its hidden
  temporary name (recovered by hand), a weaker guarantee.
* :func:`sweep_stale`: removes this tool's temporary files whose process is gone.
* :func:`fs_error`: a file-system ``OSError`` as one line naming the path and the errno's meaning.

Temporary names are ``.<name>.<pid>.<random>.anetmp``, so a later run knows which are ours and
whether their writer is still alive. ``ACTIONNET_EDGE_FAULT=<point>:<KILL|TERM>`` makes the
process signal itself at a named point (:func:`fault_point`); the fault tests use it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import ActionNetError

log = logging.getLogger(__name__)

TMP_SUFFIX = ".anetmp"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+" + re.escape(TMP_SUFFIX) + r"$")
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100
FAULT_ENV = "ACTIONNET_EDGE_FAULT"


def fs_error(e: OSError, path: str | Path | None = None) -> ActionNetError:
    """One line for a file-system error: the path and what the errno means."""
    where = e.filename if e.filename is not None else path
    what = os.strerror(e.errno) if e.errno else (e.strerror or str(e) or type(e).__name__)
    other = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    return ActionNetError(f"{where}{other}: {what}" if where is not None else what)


def fault_point(name: str) -> None:
    """Test hook: signal this process at ``name`` when ``ACTIONNET_EDGE_FAULT`` names it."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, sig = spec.partition(":")
    if point == name:
        os.kill(os.getpid(), signal.SIGTERM if sig.upper() == "TERM" else signal.SIGKILL)


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def temp_dir_for(out: Path) -> Path:
    """A new temporary folder next to ``out`` (same file system, so renames are atomic)."""
    return Path(tempfile.mkdtemp(prefix=_tmp_prefix(out), suffix=TMP_SUFFIX, dir=out.parent))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync the file and rename it to ``path``; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        fault_point("atomic_write.written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def check_writable(path: str | Path, what: str = "output") -> Path:
    """``path`` if it can be written (a file, or a folder when ``what`` ends with "folder"), else one
    :class:`ActionNetError` such as ``cannot write --out /x/y.png: Permission denied (/x)``. Fails
    now, before long work: a probe file is created and removed in the nearest existing folder."""
    path = Path(path)
    is_folder = what.endswith("folder")
    if path.exists() and path.is_dir() != is_folder:
        meaning = os.strerror(errno.ENOTDIR if is_folder else errno.EISDIR)
        raise ActionNetError(f"cannot write {what} {path}: {meaning}")
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ActionNetError(f"cannot write {what} {path}: {os.strerror(errno.ENOTDIR)} ({folder})")
    try:
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(Path("probe")), suffix=TMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ActionNetError(f"cannot write {what} {path}: {os.strerror(e.errno or 0)} ({folder})") from None
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: str | Path) -> list[Path]:
    """Remove this tool's temporary files and folders in ``folder`` whose writing process is gone."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP_RE.match(p.name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            removed.append(p)
        except OSError:
            continue
    if removed:
        log.info("removed %d stale temporary item(s) of an interrupted run in %s", len(removed), folder)
    return removed


def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False when the call or the flag is not supported here."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def publish_dir(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished folder ``tmp`` to ``out``; with ``force`` replace an existing ``out``.

    Without ``force`` an ``out`` that exists (another process published first) is an error.
    """
    try:
        if out.exists() or out.is_symlink():
            if not force:
                raise ActionNetError(f"output {out} already exists (another run wrote it); pass --force to replace it")
            if _rename2(tmp, out, _RENAME_EXCHANGE):  # tmp now holds the old folder
                fault_point("publish.exchanged")
                _fsync_dir(out.parent)
                _remove(tmp)
                return
        elif _rename2(tmp, out, _RENAME_NOREPLACE):
            _fsync_dir(out.parent)
            return
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and not force:
            raise ActionNetError(f"output {out} already exists (another run wrote it); pass --force to replace it") from None
        raise
    _publish_locked(tmp, out, force)


def _remove(p: Path) -> None:
    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _publish_locked(tmp: Path, out: Path, force: bool) -> None:
    """The fallback without renameat2: a lock file, old folder renamed aside, new one renamed in."""
    lock = out.parent / f".{out.name}.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise ActionNetError(f"another run is writing {out} (lock {lock}); try again when it has finished") from None
    try:
        os.close(fd)
        if out.exists() or out.is_symlink():
            if not force:
                raise ActionNetError(f"output {out} already exists (another run wrote it); pass --force to replace it")
            aside = temp_dir_for(out)
            os.rmdir(aside)
            os.replace(out, aside)
            fault_point("publish.aside")
            os.replace(tmp, out)
            _remove(aside)
        else:
            os.replace(tmp, out)
        _fsync_dir(out.parent)
    finally:
        lock.unlink(missing_ok=True)


def raise_on_sigterm() -> None:
    """In the main thread: SIGTERM raises SystemExit(143), so ``finally`` blocks clean up temporaries."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def _handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, _handler)
    except (ValueError, OSError):
        pass


#: how a file torch.load reads begins: a zip archive (torch >= 1.6) or a pickle (protocol 2+)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _looks_like_torch(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return True  # let the load's own error speak
    return not head or head.startswith(_TORCH_MAGIC)


def _load_reason(e: Exception, path: Path) -> str:
    """Why torch could not load ``path``, without torch's advice to load it unsafely."""
    text = str(e)
    if isinstance(e, EOFError):
        return "empty or cut short"
    if not _looks_like_torch(path):
        return "not a torch file: neither a zip archive nor a pickle"
    if "Weights only load failed" in text or "weights_only" in text:
        return ("not a file of tensors and plain values only; refused, since unpickling anything else "
                "could run code")
    if "zip archive" in text or "central directory" in text or "PytorchStreamReader" in text:
        return "truncated or not a torch file"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:200]


def load_untrusted(path: str | Path, what: str) -> Any:
    """``torch.load`` of a file from elsewhere: tensors and plain values only (``weights_only``),
    and a one-line error naming the problem when ``path`` is missing or not such a file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ActionNetError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise fs_error(e, path) from None
    except Exception as e:  # corrupt, truncated, or a pickle with code in it
        raise ActionNetError(f"{path} is not a valid {what} ({_load_reason(e, path)})") from None
