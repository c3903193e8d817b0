"""Serve the browser demo (``web_demo/``) with an exported ONNX artifact on localhost.

The page runs the model with onnxruntime-web (WebAssembly), whose JS/wasm files come from
``web_demo/node_modules`` (``npm ci`` in ``web_demo/`` with the committed lock file); nothing
is fetched from a CDN. The server sends the cross-origin isolation headers so the wasm
runtime may use threads, and ``no-store`` so a new export is picked up on reload.

A streaming artifact (``export --streaming``: metadata.json has a ``streaming`` section) is
served the same way; the page then runs one inference per kept frame and carries the state.
:func:`check_streaming` checks that section as the page uses it before anything is served.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActionNetError
from .runtime import artifact_file
from .window import read_metadata

log = logging.getLogger(__name__)

PAGE_FILES = ("index.html", "demo.js", "style.css")
#: the onnxruntime-web files the page needs (the WebAssembly build, no WebGPU/WebGL)
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


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


class _Handler(SimpleHTTPRequestHandler):
    routes: dict[str, Path | bytes]

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
        body = target if isinstance(target, bytes) else target.read_bytes()
        name = path if isinstance(target, bytes) else target.name
        ctype = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                 ".json": "application/json", ".onnx": "application/octet-stream"}.get(
            Path(name).suffix, mimetypes.guess_type(name)[0] or "application/octet-stream")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)


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
    meta = read_metadata(d)
    target, model = artifact_file(d, meta)
    if target != "onnx":
        raise ActionNetError(f"the browser demo runs ONNX artifacts, {d} holds a '{target}' one; "
                             "export with: actionnet-edge export --target onnx")
    streaming = "streaming" in meta
    if streaming:
        check_streaming(meta, model.name)
    if stride < 1 or not 0 <= alpha < 1:
        raise ActionNetError(f"need stride >= 1 and 0 <= alpha < 1, got {stride} and {alpha}")
    root = web_root()
    dist = ort_dist(root)
    config = {"metadata": "artifact/metadata.json", "model": f"artifact/{model.name}", "model_name": model.name,
              "stride": stride, "alpha": alpha, "debug": debug, "streaming": streaming}
    routes: dict[str, Path | bytes] = {f"/{f}": root / f for f in PAGE_FILES}
    routes.update({f"/vendor/ort/{f}": dist / f for f in ORT_FILES})
    routes["/artifact/metadata.json"] = d / "metadata.json"
    routes[f"/artifact/{model.name}"] = model
    routes["/config.json"] = json.dumps(config).encode()
    handler = type("Handler", (_Handler,), {"routes": routes})
    try:
        server = ThreadingHTTPServer((host, port), partial(handler, directory=str(root)))
    except OSError as e:
        raise ActionNetError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    server.daemon_threads = True
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
