"""The training loop: loss goes down, exact resume, checkpoints, bad samples, hooks, DDP, CLI errors."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from actionnet_edge.checkpoint import load_checkpoint, read_checkpoint
from actionnet_edge.cli.main import main
from actionnet_edge.data import BadSample
from actionnet_edge.data.synth import SyntheticGestures
from actionnet_edge.train.config import load_recipe
from actionnet_edge.train.loop import Hooks, fit
from actionnet_edge.train.schedule import lr_factor, step_epochs

ROOT = Path(__file__).resolve().parents[1]
SYNTH = ROOT / "recipes" / "synthetic.yaml"
TINY = ["model.width_mult=0.25", "model.dropout=0.0", "data.size=32", "data.segments=4", "data.num_train=8",
        "data.num_val=4", "data.workers=0", "train.batch_size=4", "train.epochs=2", "train.lr_steps=[0.5]",
        "train.log_every=1", "train.lr=0.05", "train.optimizer=sgd"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tiny(*extra: str):
    return load_recipe(SYNTH, TINY + list(extra))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def test_two_steps_lower_the_loss(tmp_path):
    # one fixed batch (evaluation sampling, no augmentation): a step on it must lower its loss
    fixed = SyntheticGestures("val", 4, 32, MEAN, STD, train=False, n=4)
    res = fit(tiny("train.epochs=2", "train.lr_steps=[]"), tmp_path, train_set=fixed, val_set=fixed)
    assert len(res["losses"]) == 2 and res["losses"][1] < res["losses"][0], res["losses"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    res = fit(tiny(), out)
    return out, res


@pytest.mark.slow  # training
def test_run_writes_checkpoints_and_metrics(uninterrupted):
    out, res = uninterrupted
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[0]["lr"] == 0.05 and abs(rows[1]["lr"] - 0.005) < 1e-12  # step schedule
    assert all(0 <= r["val_top1"] <= 1 and r["clips_per_s"] > 0 for r in rows)
    raw = read_checkpoint(out / "last.pt")
    st = raw["train_state"]
    assert st["epoch"] == 1 and {"optimizer", "rows", "rng", "best_top1"} <= set(st) and st["rows"] == rows
    assert raw["recipe"]["model"]["width_mult"] == 0.25 and raw["labels"][0] == "Swiping Right"
    assert raw["preprocess"]["size"] == 32
    ck = load_checkpoint(out / "best.pt")
    assert ck.model.config["num_segments"] == 4 and "train_state" not in ck.raw
    assert res["best_top1"] == max(r["val_top1"] for r in rows)
    assert list((out / "tb").iterdir())
    assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".anetmp"))]


@pytest.mark.slow  # training
def test_resume_equals_uninterrupted(tmp_path, uninterrupted):
    full, _ = uninterrupted
    # stop after epoch 0 (4 clips/batch, 8 clips: 2 steps per epoch), then resume for epoch 1
    fit(tiny(), tmp_path, max_steps=2)
    assert read_checkpoint(tmp_path / "last.pt")["train_state"]["epoch"] == 0
    fit(tiny(), tmp_path, resume=True)
    a, b = _weights(full / "last.pt"), _weights(tmp_path / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]


@pytest.mark.slow  # training
def test_metrics_rows_follow_the_checkpoint_on_resume(tmp_path):
    """Rows a killed run wrote past its last checkpoint are dropped on resume (no duplicate epochs)."""
    fit(tiny(), tmp_path, max_steps=2)
    kept = (tmp_path / "metrics.jsonl").read_text()
    with open(tmp_path / "metrics.jsonl", "a") as f:  # a row of epoch 1 whose checkpoint never landed, twice
        f.write(kept.replace('"epoch": 0', '"epoch": 1') * 2)
    fit(tiny(), tmp_path, resume=True)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows == read_checkpoint(tmp_path / "last.pt")["train_state"]["rows"]


def test_schedule_factors():
    step = lr_factor("step", [0.5], 0.1, 0.0, 4, 3)  # steps after epoch 2 of 4, 3 steps an epoch
    assert [step(i) for i in range(12)] == [1.0] * 6 + [pytest.approx(0.1)] * 6
    warm = lr_factor("step", [], 0.1, 0.25, 4, 2)  # 2 of the 8 steps warm up
    assert [warm(i) for i in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cos = lr_factor("cosine", [], 0.1, 0.0, 2, 2)
    assert cos(0) == 1.0 and cos(2) == pytest.approx(0.5) and cos(4) == pytest.approx(0.0, abs=1e-12)
    assert step_epochs([0.3333, 0.6667, 0.8333], 30) == [10, 20, 25] and step_epochs([0.6, 0.8], 1) == []


class _WithBad(torch.utils.data.Dataset):
    def __init__(self, ds):
        self.ds, self.labels, self.flip_map = ds, ds.labels, None

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return BadSample("clip-000", "corrupt frame 00003.jpg") if i == 0 else self.ds[i]


def test_bad_samples_are_skipped_counted_and_named(tmp_path, caplog):
    ds = SyntheticGestures("train", 4, 32, MEAN, STD, train=True, n=8)
    calls = []
    hooks = Hooks(on_epoch_start=lambda e, m: calls.append(("epoch", e)),
                  set_train_mode=lambda m, mode: (calls.append(("mode", mode)), m.train(mode)))
    with caplog.at_level(logging.WARNING):
        fit(tiny("train.epochs=1", "train.lr_steps=[]"), tmp_path, train_set=_WithBad(ds), val_set=ds, hooks=hooks)
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["bad_train"] == 1
    assert "clip-000 (corrupt frame 00003.jpg)" in caplog.text
    assert calls[0] == ("epoch", 0) and ("mode", True) in calls and ("mode", False) in calls


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def test_cli_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {arch: mobilenet_v3}\ndata: {dataset: synthetic}\ntrain: {lr: -1}\n")
    r = _cli("train", str(bad))
    assert r.exit_code == 2 and "Error:" in r.output and "2 problems" in r.output and "mobilenet_v2" in r.output
    r = _cli("train", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "unknown recipe" in r.output and "synthetic" in r.output
    r = _cli("train", str(SYNTH), "--output", str(tmp_path / "run"), "--resume")
    assert r.exit_code == 2 and "nothing to resume" in r.output
    r = _cli("train", str(SYNTH), "--set", "train.lr")
    assert r.exit_code == 2 and "expected section.key=value" in r.output
    r = _cli("train", str(SYNTH), "--data-root", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "data root not found" in r.output
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"x")
    r = _cli("train", str(SYNTH), "--output", str(tmp_path / "run"))
    assert r.exit_code == 2 and "--resume" in r.output


@pytest.mark.slow  # training
def test_cli_trains_on_a_written_jester_tree(tmp_path):
    r = _cli("data", "synth", "--out", str(tmp_path / "data"), "--train", "4", "--val", "2", "--size", "40x40",
             "--frames", "6")
    assert r.exit_code == 0, r.output
    args = ["train", str(SYNTH), "--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "run"), "--json"]
    for s in TINY + ["train.epochs=1", "train.lr_steps=[]"]:  # dataset: synthetic, read from the folder
        args += ["--set", s]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["epoch"] == 0 and summary["val"]["samples"] == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt").labels[1] == "Swiping Left"
    # recipe.yaml is what ran: the folder's reader and root, the --set values, the checkpoint's recipe
    ran = load_recipe(tmp_path / "run" / "recipe.yaml")
    assert (ran.data.dataset, ran.data.root) == ("jester", str((tmp_path / "data").resolve()))
    assert (ran.train.epochs, ran.model.width_mult, ran.data.size) == (1, 0.25, 32)
    assert ran.to_dict() == read_checkpoint(tmp_path / "run" / "last.pt")["recipe"]
    assert ran.to_dict() == dataclasses.replace(tiny("train.epochs=1", "train.lr_steps=[]"),
                                                data=ran.data).to_dict()


@pytest.mark.slow  # training
def test_ddp_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "actionnet_edge", "train", str(SYNTH), "--output", str(out), "--json"]
    for s in TINY + ["train.epochs=1", "train.lr_steps=[]"]:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "batch 2 x 2 processes" in p.stderr
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["epoch"] == 0
    assert load_checkpoint(out / "best.pt").model.config["width_mult"] == 0.25
    # both ranks report the same (all-reduced) validation result
    summaries = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    assert len(summaries) == 2 and summaries[0]["val"] == summaries[1]["val"]
    assert summaries[0]["val"]["samples"] == 4


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A one-epoch run started from the CLI with --set (the recipe file says 5 epochs)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    args = ["train", str(SYNTH), "--output", str(out)]
    for s in TINY + ["train.epochs=1"]:
        args += ["--set", s]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow  # training
def test_resume_of_a_finished_run_trains_nothing_and_says_so(finished):
    before = {p.name: p.read_bytes() for p in (finished / "last.pt", finished / "metrics.jsonl")}
    r = _cli("train", "--resume", "--output", str(finished))
    assert r.exit_code == 0, r.output
    assert "nothing to train" in r.output and "finished its 1 epochs" in r.output and "nan" not in r.output
    assert {p.name: p.read_bytes() for p in (finished / "last.pt", finished / "metrics.jsonl")} == before
    r = _cli("train", "--resume", "--output", str(finished), "--json")
    assert json.loads(r.output.strip().splitlines()[-1])["epochs_trained"] == 0


@pytest.mark.slow  # training
def test_resume_with_another_recipe_is_one_error_naming_the_differences(finished):
    r = _cli("train", str(SYNTH), "--resume", "--output", str(finished))  # the file: 5 epochs, other keys
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "train.epochs: 1 in the run, 5 given" in r.output and "model.width_mult: 0.25 in the run, 1.0 given" in r.output
    r = _cli("train", "--resume", "--output", str(finished), "--set", "train.lr=0.01")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "train.lr: 0.05 in the run, 0.01 given" in r.output and "train.epochs" not in r.output
    r = _cli("train", "--resume", "--output", str(finished), "--set", "train.epochs=0")
    assert r.exit_code == 2


@pytest.mark.slow  # training
def test_resume_extends_epochs_only_when_asked(finished, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    r = _cli("train", "--resume", "--output", str(out), "--set", "train.epochs=2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["epochs_trained"] == 1
    assert [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert load_recipe(out / "recipe.yaml").train.epochs == 2
