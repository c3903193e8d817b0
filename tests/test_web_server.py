"""The browser demo's server as a process (`actionnet-edge demo web`), and the start-up checks of
`demo web` and `demo run`.

The server runs as the CLI runs it (its own process, our log format on stderr, glibc's freed
memory kept as every command keeps it), on loopback only. It streams files, so 200 parallel
downloads of a large artifact leave its memory where it was; a deleted artifact is a 404 with
one log line; a client that hangs up mid-download leaves no traceback. At start-up an artifact
that disagrees with its metadata.json (empty, truncated, other segments/size/layout/labels) is
refused in one line, as `demo run` refuses it before its loop.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from _helpers import moving_square, write_mp4
from actionnet_edge.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
ORT_INSTALLED = (ROOT / "web_demo" / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs").is_file()
needs_ort = pytest.mark.skipif(not ORT_INSTALLED, reason="run `npm ci --prefix web_demo` first")

BIG = 8 << 20  # bytes of the large file the downloads fetch
DOWNLOADS = 200
MAX_GROWTH = 32 << 20  # bytes of peak RSS growth allowed over the 200 downloads (a server reading whole files: ~100 MB)


def _rss(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` in bytes (VmRSS now, VmHWM its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


class Server:
    """`actionnet-edge demo web` in a subprocess on a free loopback port; ``log()`` reads its stderr."""

    def __init__(self, artifact: Path, tmp: Path) -> None:
        self.err_path = tmp / "server.err"
        self.err = open(self.err_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "actionnet_edge", "demo", "web", "--artifact", str(artifact),
                                      "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=self.err, stdin=subprocess.DEVNULL, env=env, cwd=tmp)
        line = self.proc.stdout.readline().decode()  # "serving DIR at http://localhost:PORT/ (...)"
        m = re.search(r"at (http://\S+/)", line)
        if not m:
            self.stop()
            pytest.fail(f"the server did not start: {line!r} {self.log()}")
        self.url = m.group(1).replace("localhost", "127.0.0.1")

    def log(self) -> str:
        self.err.flush()
        return self.err_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        return self.err_path.read_text(errors="replace")


@pytest.fixture
def served(tmp_path, tiny_onnx_export):
    """A running server on a copy of the tiny artifact (its files may be changed after start-up)."""
    d = tmp_path / "art"
    shutil.copytree(tiny_onnx_export, d)
    meta = json.loads((d / "metadata.json").read_text())
    server = Server(d, tmp_path)
    yield server, d / meta["artifact"], meta
    server.stop()


def _download(url: str, deadline: float) -> int:
    """Bytes received for ``url`` (read in 1 MiB chunks and dropped)."""
    n = 0
    with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())) as r:
        while chunk := r.read(1 << 20):
            n += len(chunk)
    return n


def _requests_in(log: str, path: str) -> list[str]:
    return [line for line in log.splitlines() if f" {path} " in line + " "]


@needs_ort
def test_200_parallel_downloads_keep_memory_flat(served):
    """The artifact is replaced (after the start-up check) by an 8 MiB file; 200 clients fetch it
    at once. Every client gets all its bytes, and the server's peak RSS grows by less than
    MAX_GROWTH (a server that reads the whole file per request holds up to 200 copies)."""
    server, model, _ = served
    model.write_bytes(os.urandom(BIG))
    url = server.url + f"artifact/{model.name}"
    assert _download(url, time.monotonic() + 60) == BIG  # warm: the handler's code paths are loaded
    pid = server.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM (the peak) to the current RSS
    before = _rss(pid)
    deadline = time.monotonic() + 240
    with cf.ThreadPoolExecutor(DOWNLOADS) as pool:
        got = list(pool.map(lambda _: _download(url, deadline), range(DOWNLOADS)))
    peak, after = _rss(pid, "VmHWM"), _rss(pid)
    print(f"server RSS before {before / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB "
          f"over {DOWNLOADS} parallel downloads of {BIG / 2**20:.0f} MiB")
    assert got == [BIG] * DOWNLOADS
    assert peak - before < MAX_GROWTH, f"peak RSS grew by {(peak - before) / 2**20:.1f} MiB"
    log = server.stop()
    assert len(_requests_in(log, f"/artifact/{model.name}")) == DOWNLOADS + 1  # one line per request
    assert "Traceback" not in log


@needs_ort
def test_deleted_artifact_is_404_with_one_log_line(served):
    server, model, _ = served
    model.unlink()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + f"artifact/{model.name}", timeout=30)
    assert e.value.code == 404
    with urllib.request.urlopen(server.url + "config.json", timeout=30) as r:  # still serving
        assert json.load(r)["model_name"] == model.name
    log = server.stop()
    lines = _requests_in(log, f"/artifact/{model.name}")
    assert len(lines) == 1 and " 404 " in lines[0] + " " and "is gone" in lines[0], log
    assert lines[0].startswith("W ")  # a warning, through our logger
    assert "Traceback" not in log


@needs_ort
def test_client_that_hangs_up_leaves_no_traceback(served):
    """Clients that reset the connection mid-download (RST, and a plain close) of a large file."""
    server, model, _ = served
    model.write_bytes(os.urandom(BIG))
    host, port = server.url.split("//")[1].rstrip("/").split(":")
    for reset in (True, False, True, False):
        s = socket.create_connection((host, int(port)), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /artifact/{model.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.0 200")
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.0)  # the server notices the hang-ups while writing
    with urllib.request.urlopen(server.url + "config.json", timeout=30) as r:
        assert r.status == 200
    log = server.stop()
    assert "Traceback" not in log and "Error" not in log, log
    assert len(_requests_in(log, f"/artifact/{model.name}")) == 4


# ---- start-up checks: demo web and demo run refuse an artifact that disagrees with its metadata ----


def _broken(case: str, tmp: Path, artifact: Path) -> Path:
    """A copy of the ``artifact`` folder broken as ``case`` says."""
    d = tmp / case.replace(" ", "_")
    shutil.copytree(artifact, d)
    meta = json.loads((d / "metadata.json").read_text())
    model = d / meta["artifact"]
    data = model.read_bytes()
    edits = {"segments": {"segments": meta["segments"] * 2}, "size": {"size": meta["size"] + 32, "resize": 110},
             "layout": {"layout": "NHWC"}, "labels": {"labels": meta["labels"][:-1]}}
    if case == "empty":
        model.write_bytes(b"")
    elif case == "truncated":
        model.write_bytes(data[: len(data) // 2])
    elif case == "truncated tail":
        model.write_bytes(data[:-64])
    else:
        meta.update(edits[case])
        (d / "metadata.json").write_text(json.dumps(meta))
    return d


CASES = [("empty", "is empty (0 bytes)"), ("truncated", "is it truncated?"), ("truncated tail", "is it truncated?"),
         ("segments", "8 frames of 64 px"), ("size", "4 frames of 96 px"), ("layout", "NHWC: (1, 4, 64, 64, 3)"),
         ("labels", "gives 5 scores, but metadata.json lists 4 labels")]


def _one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("Error: ") and r.stderr.strip().count("\n") == 0, r.stderr
    assert message in r.stderr and "Traceback" not in r.output


@needs_ort
@pytest.mark.parametrize("case,message", CASES)
def test_demo_web_refuses_artifact_that_disagrees_with_metadata(case, message, tmp_path, tiny_onnx_export):
    r = CliRunner().invoke(main, ["demo", "web", "--artifact", str(_broken(case, tmp_path, tiny_onnx_export)), "--port", "0"])
    _one_line_error(r, message)


@pytest.mark.parametrize("case,message", CASES)
def test_demo_run_refuses_artifact_before_the_loop(case, message, tmp_path, tiny_onnx_export):
    video = write_mp4(moving_square(8), tmp_path / "v.mp4")
    save = tmp_path / "out.mp4"
    r = CliRunner().invoke(main, ["demo", "run", "--artifact", str(_broken(case, tmp_path, tiny_onnx_export)), "--video", str(video),
                                  "--save", str(save)])
    _one_line_error(r, message)
    assert "frame" not in r.stdout and not save.exists()  # nothing ran, nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == [case.replace(" ", "_"), "v.mp4"]


def test_the_checks_pass_a_good_artifact(tmp_path, tiny_onnx_export):
    """The same checks accept the artifact they were broken from (so each case above is the break)."""
    from actionnet_edge.demo.probe import check_artifact

    meta, target, path = check_artifact(tiny_onnx_export)
    assert target == "onnx" and path.name == meta["artifact"]
    video = write_mp4(moving_square(8), tmp_path / "v.mp4")
    r = CliRunner().invoke(main, ["demo", "run", "--artifact", str(tiny_onnx_export), "--video", str(video)])
    assert r.exit_code == 0, r.output
    assert "8 frames" in r.stdout


@pytest.mark.parametrize("case,message", [("garbage", "is not an ExecuTorch program"),
                                          ("truncated", "is truncated: 4096 of its 100000 bytes"),
                                          ("segments cut", "is truncated: 4096 of its 9000 bytes")])
def test_demo_run_refuses_a_damaged_pte_before_executorch_reads_it(case, message, tmp_path, tiny_onnx_export):
    """ExecuTorch's loader aborts the process on some malformed files, so the .pte header (file
    identifier; extended header: program size, segment offset and size) is read first."""
    d = tmp_path / "pte"
    d.mkdir()
    meta = json.loads((tiny_onnx_export / "metadata.json").read_text())
    meta.update(target="executorch", artifact="m.pte")
    (d / "metadata.json").write_text(json.dumps(meta))
    program, base, segments = {"garbage": (0, 0, 0), "truncated": (100_000, 0, 0), "segments cut": (2000, 4000, 5000)}[case]
    head = b"\0\0\0\0ET12eh00" + (32).to_bytes(4, "little") + b"".join(
        v.to_bytes(8, "little") for v in (program, base, segments))
    (d / "m.pte").write_bytes((b"this is not a program" if case == "garbage" else head).ljust(4096, b"\0"))
    video = write_mp4(moving_square(8), tmp_path / "v.mp4")
    r = CliRunner().invoke(main, ["demo", "run", "--artifact", str(d), "--video", str(video)])
    _one_line_error(r, message)
