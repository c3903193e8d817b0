"""Faults: a kill (SIGKILL, SIGTERM) at any point of an export's publish or a checkpoint write
leaves the old or the new result whole in place, and its temporaries are gone (SIGTERM) or swept
by the next run (SIGKILL); two exports to one output: one wins, the other fails with one line.

The subprocess ``_fault_driver.py`` runs the same publish and checkpoint code as ``export`` and
``train``; ``ACTIONNET_EDGE_FAULT=<point>:<KILL|TERM>`` signals it at a named point.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actionnet_edge import fsutil
from actionnet_edge.errors import ActionNetError

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "_fault_driver.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}


def _driver(*args: str, fault: str | None = None, wait: bool = True):
    env = dict(ENV)
    if fault:
        env[fsutil.FAULT_ENV] = fault
    p = subprocess.Popen([sys.executable, str(DRIVER), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if wait:
        p.out, p.err = p.communicate(timeout=120)
    return p


def _whole(out: Path) -> str:
    """The tag of the folder at ``out``: every part present and written by one run."""
    parts = sorted(out.iterdir())
    assert [p.name for p in parts] == [f"part{i}.txt" for i in range(8)], parts
    tags = {p.read_text() for p in parts}
    assert len(tags) == 1, "a mix of two exports"
    (text,) = tags
    assert len(set(text)) == 1 and len(text) == 20000
    return text[0]


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fsutil.TMP_SUFFIX))


def _old(tmp_path: Path) -> Path:
    out = tmp_path / "export"
    assert _driver("publish", str(out), "O", "0").returncode == 0
    assert _whole(out) == "O"
    return out


POINTS = ["driver.written", "publish.exchanged", "driver.published"]


@pytest.mark.parametrize("sig", ["KILL", "TERM"])
@pytest.mark.parametrize("point", POINTS)
def test_force_replace_killed_at_each_step_leaves_old_or_new(point, sig, tmp_path):
    out = _old(tmp_path)
    p = _driver("publish", str(out), "N", "1", fault=f"{point}:{sig}")
    assert p.returncode == (-signal.SIGKILL if sig == "KILL" else 128 + signal.SIGTERM), p.err
    assert "Traceback" not in p.err
    tag = _whole(out)
    assert tag == ("O" if point == "driver.written" else "N")
    if sig == "TERM":  # the handler unwound: its temporary folder is gone already
        assert _temps(tmp_path) == []
    assert _driver("publish", str(out), "M", "1").returncode == 0  # the next run sweeps what a kill left
    assert _whole(out) == "M" and _temps(tmp_path) == []


def test_force_replace_killed_at_random_instants(tmp_path):
    out = _old(tmp_path)
    rng, seen = random.Random(0), set()
    for i in range(12):
        p = _driver("publish", str(out), "ABCDEFGHIJKL"[i], "1", wait=False)
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL if i % 2 else signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        seen.add(p.returncode)
        assert "Traceback" not in err
        _whole(out)  # old or new, whole, at every instant
    assert _driver("publish", str(out), "Z", "1").returncode == 0
    assert _whole(out) == "Z" and _temps(tmp_path) == []


def test_two_exports_to_one_output_one_wins(tmp_path):
    for round_ in range(4):
        out, go = tmp_path / f"export{round_}", tmp_path / f"go{round_}"
        procs = [_driver("publish", str(out), tag, "0", str(go), wait=False) for tag in "AB"]
        time.sleep(1.0)  # both have written their temporary folder and wait at the rename
        go.touch()
        results = [(p.communicate(timeout=60)[1], p.returncode)[::-1] for p in procs]
        codes = sorted(c for c, _ in results)
        assert codes == [0, 2], results
        (err,) = [e for c, e in results if c == 2]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and "already exists" in lines[0]
        winner = "AB"[[c for c, _ in results].index(0)]
        assert _whole(out) == winner and _temps(tmp_path) == []


def test_fallback_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "_renameat2", lambda: None)
    out = tmp_path / "export"
    for tag, force in (("O", False), ("N", True)):
        tmp = fsutil.temp_dir_for(out)
        for i in range(8):
            (tmp / f"part{i}.txt").write_text(tag * 20000)
        fsutil.publish_dir(tmp, out, force)
        assert _whole(out) == tag and _temps(tmp_path) == []
    tmp = fsutil.temp_dir_for(out)
    with pytest.raises(ActionNetError, match="already exists"):
        fsutil.publish_dir(tmp, out, False)
    (tmp_path / ".export.lock").touch()  # another publisher holds the lock
    with pytest.raises(ActionNetError, match="another run is writing"):
        fsutil.publish_dir(tmp, out, True)


@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_checkpoint_write_killed_keeps_the_old_one(sig, tmp_path):
    last = tmp_path / "last.pt"
    assert _driver("checkpoint", str(last), "old").returncode == 0
    p = _driver("checkpoint", str(last), "newer", fault=f"atomic_write.written:{sig}")
    assert p.returncode != 0 and "Traceback" not in p.err
    assert torch.load(last, weights_only=True)["tag"] == "old"
    if sig == "TERM":
        assert _temps(tmp_path) == []
    else:
        assert len(_temps(tmp_path)) == 1  # the killed writer's temporary file...
    assert _driver("checkpoint", str(last), "next").returncode == 0
    assert torch.load(last, weights_only=True)["tag"] == "next"
    assert _temps(tmp_path) == []  # ...swept by the next write


def test_sweep_keeps_temporaries_of_live_processes(tmp_path):
    live = tmp_path / f".x.{os.getpid()}.abc{fsutil.TMP_SUFFIX}"
    dead = tmp_path / f".x.999999999.abc{fsutil.TMP_SUFFIX}"
    other = tmp_path / ".x.tmp"
    for p in (live, dead, other):
        p.write_text("")
    assert fsutil.sweep_stale(tmp_path) == [dead]
    assert live.exists() and other.exists()


def test_file_system_error_is_one_line(tmp_path):
    from click.testing import CliRunner

    from actionnet_edge.cli.main import main

    (tmp_path / "f").write_text("")
    e = fsutil.fs_error(OSError(28, "No space left on device", str(tmp_path / "x")))
    assert str(e) == f"{tmp_path / 'x'}: No space left on device"
    r = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "f" / "d"), "--train", "1", "--val", "1"])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0 and r.stderr.startswith("Error:"), r.stderr


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    import json

    from actionnet_edge.checkpoint import read_checkpoint
    from actionnet_edge.train.config import load_recipe
    from actionnet_edge.train.loop import Hooks, fit

    tiny = ["model.width_mult=0.25", "model.dropout=0.0", "data.segments=4", "data.size=32", "data.num_train=4",
            "data.num_val=4", "data.workers=0", "train.batch_size=4", "train.epochs=3", "train.lr_steps=[]"]
    recipe = load_recipe(HERE.parent / "recipes" / "synthetic.yaml", tiny)

    def poison(epoch, model):  # in epoch 2 a weight goes NaN, as a diverging run's would
        if epoch == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(ActionNetError, match="became nan.*last good checkpoint is kept"):
        fit(recipe, tmp_path, hooks=Hooks(on_epoch_start=poison))
    raw = read_checkpoint(tmp_path / "last.pt")
    assert raw["train_state"]["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in raw["state_dict"].values() if v.is_floating_point())
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0] == [r["epoch"] for r in raw["train_state"]["rows"]]


@pytest.mark.slow  # three real exports
def test_cli_export_force_killed_at_publish(tmp_path):
    """The real `export --force`: SIGTERM before the swap keeps the old folder, SIGKILL right after it
    leaves the new one; either way the folder is whole (artifact + metadata.json + report.json)."""
    import json

    from _helpers import EXPORT_FILES, export_test_model, save_test_checkpoint

    ckpt = save_test_checkpoint(tmp_path / "tiny.pt", export_test_model())
    out = tmp_path / "export"
    base = [sys.executable, "-m", "actionnet_edge", "-q", "export", "--target", "onnx", "--checkpoint", str(ckpt),
            "--output", str(out), "--parity-clips", "2"]

    def run(*extra, fault=None):
        env = dict(ENV, **({fsutil.FAULT_ENV: fault} if fault else {}))
        return subprocess.run(base + list(extra), env=env, capture_output=True, text=True, timeout=900)

    def state():
        names = sorted(p.name for p in out.iterdir() if p.name != "actionnet-edge.log")  # joins after the swap
        assert names == sorted(["tiny_fp32.onnx", *EXPORT_FILES]), names
        meta = json.loads((out / "metadata.json").read_text())
        assert (out / meta["artifact"]).stat().st_size > 10_000
        return json.loads((out / "report.json").read_text())["parity"]["verified"]

    assert run("--no-verify").returncode == 0 and state() is False
    p = run("--force", fault="publish.ready:TERM")
    assert p.returncode == 143 and "Traceback" not in p.stderr
    assert state() is False and _temps(tmp_path) == []
    p = run("--force", fault="publish.exchanged:KILL")
    assert p.returncode == -signal.SIGKILL
    assert state() is True  # the new export is in place; the old one waits under a temporary name
    assert run("--force", "--no-verify").returncode == 0 and state() is False and _temps(tmp_path) == []


def test_full_disk_during_a_checkpoint_write_is_one_line(tmp_path, monkeypatch):
    from actionnet_edge.checkpoint import atomic_save

    def full(obj, f):
        Path(f).write_bytes(b"\0" * 10)
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: "
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ActionNetError) as e:
        atomic_save({"a": 1}, tmp_path / "last.pt")
    assert str(e.value) == f"{tmp_path / 'last.pt'}: Input/output error"  # (No space left on device when it is full)
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []
