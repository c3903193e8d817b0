"""Serve the browser demo (``web_demo/``) with an exported ONNX artifact on localhost.

The page runs the model with onnxruntime-web (WebAssembly), whose JS/wasm files come from
``web_demo/node_modules`` (``npm ci`` in ``web_demo/`` with the committed lock file); nothing
is fetched from a CDN. The server sends the cross-origin isolation headers so the wasm
runtime may use threads, and ``no-store`` so a new export is picked up on reload.

A streaming artifact (``export --streaming``: metadata.json has a ``streaming`` section) is
served the same way; the page then runs one inference per kept frame and carries the state.
:func:`check_streaming` checks that section as the page uses it before anything is served.

At start-up the artifact is checked against its metadata.json (:func:`.probe.check_artifact`);
then every file is streamed from disk per request, one log line per request, and a client
that hangs up mid-download is a debug line, not a traceback.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import os
import shutil
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActionNetError
from .probe import check_artifact
from .runtime import artifact_file
from .window import read_metadata

log = logging.getLogger(__name__)

PAGE_FILES = ("index.html", "demo.js", "style.css")
#: the onnxruntime-web files the page needs (the WebAssembly build, no WebGPU/WebGL)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CHUNK = 64 * 1024  # bytes per read/write when streaming a file


def web_root() -> Path:
    """The ``web_demo/`` folder: the installed package's copy, else the source checkout's."""
    here = Path(__file__).resolve()
    installed, checkout = here.parents[1] / "web_demo", here.parents[2] / "web_demo"
    root = installed if (installed / "index.html").is_file() else checkout
    if not (root / "index.html").is_file():
        raise ActionNetError(f"the browser demo files are not at {root}; run from a source checkout of actionnet-edge")
    return root


def ort_dist(root: Path) -> Path:
    dist = root / "node_modules" / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise ActionNetError(f"onnxruntime-web is not installed in {root} (missing {missing[0]}); run: npm ci --prefix {root}")
    return dist


#: Content-Type by suffix (the rest from :mod:`mimetypes`)
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
          ".json": "application/json", ".onnx": "application/octet-stream"}
#: a client that goes away mid-reply: one log line, no traceback
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Handler(BaseHTTPRequestHandler):
    """The page's fixed routes; files are streamed from disk in chunks (never read whole), so
    memory stays flat however many downloads run, and a file gone since start-up is a 404."""

    routes: dict[str, Path | bytes]
    _note = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._send(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(head=True)

    def _send(self, head: bool) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        target = self.routes.get("/index.html" if path == "/" else path)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if isinstance(target, bytes):
            self._reply(path, len(target), head, lambda: self.wfile.write(target))
            return
        try:
            f = open(target, "rb")
        except FileNotFoundError:
            self._note = f"{target} is gone"
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        except OSError as e:
            self._note = f"cannot read {target}: {e.strerror or e}"
            self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            self._reply(target.name, size, head, lambda: shutil.copyfileobj(f, self.wfile, CHUNK))

    def _reply(self, name: str, size: int, head: bool, write) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _TYPES.get(Path(name).suffix, mimetypes.guess_type(name)[0]
                                                    or "application/octet-stream"))
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.end_headers()
        if not head:
            try:
                write()
            except _GONE as e:
                self.close_connection = True
                log.debug("%s left during %s (%s)", self.address_string(), self.path, type(e).__name__)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request, through our logger (a failed one at WARNING, with its reason)."""
        code = int(code) if str(code).isdigit() else 0
        note, self._note = self._note, ""
        level = logging.WARNING if code >= 400 and note else logging.INFO
        log.log(level, "%s %s %s%s", getattr(self, "command", "-"), getattr(self, "path", "-"), code or "-",
                f" ({note})" if note else "")

    def log_error(self, fmt: str, *args: Any) -> None:  # the request line above says it
        log.debug("%s %s", self.address_string(), fmt % args)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # connections waiting to be accepted (many at once: a page load, a test)

    def handle_error(self, request, client_address) -> None:
        """A client that hung up is one debug line; anything else is a bug and keeps its traceback."""
        err = sys.exc_info()[1]
        if isinstance(err, _GONE):
            log.debug("%s:%s left (%s)", *client_address[:2], type(err).__name__)
            return
        log.exception("error while answering %s:%s", *client_address[:2])


def check_streaming(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``streaming`` section of ``meta``, checked as the page uses it (first input ``frame``
    of (1, 3, S, S), then the state tensors, each with a ``<name>_out``-style output listed)."""
    from ..export.streaming import FRAME, LOGITS, StreamRunner

    section = meta["streaming"]
    if not isinstance(section, dict):
        raise ActionNetError(f"{name}: the 'streaming' section of metadata.json must be an object")
    run = StreamRunner(None, section, name)  # a malformed section is a clear error
    size = int(meta["size"])
    if not run.inputs or run.inputs[0] != (FRAME, (1, 3, size, size)):
        got = run.inputs[0] if run.inputs else "nothing"
        raise ActionNetError(f"{name}: the first streaming input must be '{FRAME}' of shape (1, 3, {size}, {size}), "
                             f"metadata.json says {got}")
    try:
        state = [(s["name"], tuple(int(d) for d in s["shape"]), s["output"]) for s in section["state"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ActionNetError(f"{name}: malformed 'state' in the 'streaming' section of metadata.json ({e!r})") from None
    if [(n, sh) for n, sh, _ in state] != run.state_spec:
        raise ActionNetError(f"{name}: the streaming inputs after '{FRAME}' differ from its 'state' list in metadata.json")
    missing = [o for o in (LOGITS, *(o for *_, o in state)) if o not in run.outputs]
    if missing:
        raise ActionNetError(f"{name}: the streaming outputs in metadata.json lack '{missing[0]}'")
    if run.window < 1:
        raise ActionNetError(f"{name}: the streaming window must be >= 1, metadata.json says {run.window}")
    return section


def make_server(artifact_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
                stride: int = 1, alpha: float = 0.5, debug: bool = False) -> ThreadingHTTPServer:
    """A (not yet started) HTTP server for the page and one ONNX artifact folder."""
    d = Path(artifact_dir)
    if stride < 1 or not 0 <= alpha < 1:
        raise ActionNetError(f"need stride >= 1 and 0 <= alpha < 1, got {stride} and {alpha}")
    meta = read_metadata(d)
    target, model = artifact_file(d, meta)
    if target != "onnx":
        raise ActionNetError(f"the browser demo runs ONNX artifacts, {d} holds a '{target}' one; "
                             "export with: actionnet-edge export --target onnx")
    streaming = "streaming" in meta
    if streaming:
        check_streaming(meta, model.name)
    check_artifact(d)  # not served if it disagrees with its metadata.json
    root = web_root()
    dist = ort_dist(root)
    config = {"metadata": "artifact/metadata.json", "model": f"artifact/{model.name}", "model_name": model.name,
              "stride": stride, "alpha": alpha, "debug": debug, "streaming": streaming}
    routes: dict[str, Path | bytes] = {f"/{f}": root / f for f in PAGE_FILES}
    routes.update({f"/vendor/ort/{f}": dist / f for f in ORT_FILES})
    routes["/artifact/metadata.json"] = d / "metadata.json"
    routes[f"/artifact/{model.name}"] = model
    for key in ("file", "data"):  # the test vectors, for the page's ?selftest
        name = Path(str((meta.get("vectors") or {}).get(key, ""))).name
        if name and (d / name).is_file():
            routes[f"/artifact/{name}"] = d / name
    routes["/config.json"] = json.dumps(config).encode()
    handler = type("Handler", (_Handler,), {"routes": routes})
    try:
        server = _Server((host, port), handler)
    except OSError as e:
        raise ActionNetError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server.streaming = streaming  # type: ignore[attr-defined]  # for the CLI's message
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::') else host}:{port}/"


def serve_background(server: ThreadingHTTPServer) -> threading.Thread:
    """Start ``server`` in a daemon thread (tests; the CLI calls ``serve_forever`` itself)."""
    t = threading.Thread(target=server.serve_forever, name="web-demo", daemon=True)
    t.start()
    return t


def write_y4m(frames: np.ndarray, path: str | Path, fps: int = 15) -> Path:
    """Write RGB uint8 frames (N, H, W, 3) as a 4:2:0 .y4m, the format Chromium's fake camera reads
    (``--use-file-for-fake-video-capture``). BT.601 limited range; H and W must be even."""
    frames = np.asarray(frames)
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ActionNetError(f"y4m frames need an even size, got {w}x{h}")
    rgb = frames.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))

    def q(c: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)

    y, u, v = q(y), q(sub(u)), q(sub(v))
    path = Path(path)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            f.write(b"FRAME\n" + y[i].tobytes() + u[i].tobytes() + v[i].tobytes())
    return path
