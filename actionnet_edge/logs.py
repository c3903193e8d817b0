"""Quiet output: the toolkit's own log lines on the console, everything else in a log file.

The converters and runtimes this toolkit drives are loud (per-op logs, rewriter notes,
progress trees, deprecation warnings, C++ writes straight to file descriptors 1 and 2).
:func:`configure` shows only ``actionnet_edge`` records (and warnings raised from its own
code) on the console; :func:`capture` sends, for the duration of a heavy step, file
descriptors 1 and 2, Python warnings and every other package's log records to a log file,
prints that file's tail when the step fails, and does nothing with ``-v`` (all of it is then
shown as it comes).
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from tqdm import tqdm

from .errors import ActionNetError

__all__ = ["configure", "capture", "console", "console_level", "LOG_NAME", "TAIL_LINES"]

#: file name of the captured output inside an output folder
LOG_NAME = "actionnet-edge.log"
#: lines of the log shown when a captured step fails
TAIL_LINES = 25
_FORMAT = "%(levelname).1s %(name)s: %(message)s"
_OURS = "actionnet_edge"


class _Console(logging.StreamHandler):
    """Writes to the console stream of the moment (the saved stderr while a capture is on)."""

    def __init__(self, show_all: bool):
        super().__init__()
        self.show_all = show_all

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return console()

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the console decides
        pass

    def filter(self, record: logging.LogRecord) -> bool:
        return self.show_all or _is_ours(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:  # through tqdm, so that a progress bar on the console is redrawn below the line
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


def _is_ours(record: logging.LogRecord) -> bool:
    if record.name == _OURS or record.name.startswith(_OURS + "."):
        return True
    if record.name == "py.warnings":  # shown when raised from our own code
        return f"{os.sep}{_OURS}{os.sep}" in record.getMessage().split(":", 1)[0]
    return False


_state: dict = {"console": None, "verbose": 0}


def console() -> TextIO:
    """The stream that reaches the user's terminal, also while fds 1/2 go to a log file."""
    return _state["console"] or sys.stderr


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Our records on the console (WARNING and up with ``quiet``), others only with ``verbose``."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _Console)]:
        root.removeHandler(h)
    handler = _Console(show_all=verbose > 0)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    logging.getLogger(_OURS).setLevel(logging.WARNING if quiet else logging.NOTSET)
    logging.captureWarnings(True)
    warnings.simplefilter("default")  # once per location, into the log (not the console)
    _state["verbose"] = verbose


@contextmanager
def console_level(level: int) -> Iterator[None]:
    """Only records at ``level`` and above reach the console while inside (a captured log file
    still gets every record); with ``-v`` nothing changes."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, _Console)]
    saved = [h.level for h in handlers]
    if not _state["verbose"]:
        for h in handlers:
            h.setLevel(max(level, h.level))
    try:
        yield
    finally:
        for h, old in zip(handlers, saved):
            h.setLevel(old)


@contextmanager
def capture(path: str | Path) -> Iterator[Path]:
    """Append fds 1/2, Python warnings and other packages' log records to ``path`` while inside.

    With ``-v`` nothing is redirected. When the body raises, the log's last lines are printed
    on the console before the error goes on."""
    path = Path(path)
    if _state["verbose"] or _state["console"] is not None:  # shown in full, or already captured
        yield path
        return
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # folders this log creates
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(path, "a", buffering=1, encoding="utf-8")
    file_handler = logging.StreamHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s " + _FORMAT))
    _flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    _state["console"] = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    logging.getLogger().addHandler(file_handler)
    for fd in (1, 2):
        os.dup2(log_file.fileno(), fd)
    try:
        yield path
    except ActionNetError:  # a bad input, refused in one line: leave nothing behind
        _restore(saved, file_handler, log_file)
        if not existed:
            path.unlink(missing_ok=True)
            _remove_empty(made)
        raise
    except BaseException:
        _restore(saved, file_handler, log_file)
        _print_tail(path)
        raise
    else:
        _restore(saved, file_handler, log_file)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            return


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _restore(saved: dict[int, int], file_handler: logging.Handler, log_file: TextIO) -> None:
    _flush()
    for fd, dup in saved.items():
        os.dup2(dup, fd)
        os.close(dup)
    logging.getLogger().removeHandler(file_handler)
    log_file.close()
    con, _state["console"] = _state["console"], None
    con.close()


def _print_tail(path: Path) -> None:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    if lines:
        out = console()
        out.write(f"--- last {len(lines)} lines of {path} ---\n" + "\n".join(lines) + "\n---\n")
        out.flush()
