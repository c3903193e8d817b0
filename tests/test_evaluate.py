"""Evaluation numbers on a model whose answers are known, the report files, and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from actionnet_edge.checkpoint import default_preprocess, save_checkpoint
from actionnet_edge.cli.main import main
from actionnet_edge.data import BadSample, Sample, build_dataset
from actionnet_edge.errors import ActionNetError
from actionnet_edge.models import create_model
from actionnet_edge.train.evaluate import evaluate, format_report, write_report

K = 7


class Oracle(torch.nn.Module):
    """Reads its answer from the clip: class c = clip[0, 0, 0, 0]; logits rank c, c+1, c+2, ... (mod K)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x[:, 0, 0, 0, 0].round().long()
        j = torch.arange(K)
        return -10.0 * ((j[None] - c[:, None]) % K).float() + self.w


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list, labels: list[str]) -> None:
        self.items, self.labels = items, labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def clip(c: int, views: int | None = None) -> torch.Tensor:
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0, 0, 0] = c
    return x if views is None else x.expand(views, *x.shape).clone()


# (true, predicted): top-5 of a prediction p is p..p+4 (mod 7), so true = p+5 or p+6 misses it
PAIRS = [(0, 0), (0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (4, 6), (5, 6), (2, 0), (6, 6)]
LABELS = [f"c{i}" for i in range(K)]


def test_numbers_against_a_known_model():
    items = [Sample(clip(p), t, f"s{i}") for i, (t, p) in enumerate(PAIRS)] + [BadSample("broken", "corrupt frame")]
    model = Oracle()
    model.train()
    r = evaluate(model, ListDataset(items, LABELS), batch_size=3)
    assert model.training  # restored
    assert r["num_samples"] == 10 and r["skipped"] == 1
    assert r["skipped_samples"] == [{"name": "broken", "reason": "corrupt frame"}]
    assert r["top1"] == pytest.approx(6 / 10)
    # top-5 misses: (0, 1): 0 = 1+6 mod 7; (4, 6): 4 = 6+5; (5, 6): 5 = 6+6; (2, 0) hits (2 in 0..4)
    assert r["top5"] == pytest.approx(7 / 10)
    conf = np.array(r["confusion"])
    assert conf.sum() == 10 and conf[0, 0] == 2 and conf[0, 1] == 1 and conf[2, 0] == 1 and conf[5, 6] == 1
    acc = {c["label"]: c["accuracy"] for c in r["per_class"]}
    assert acc["c0"] == pytest.approx(2 / 3) and acc["c2"] == pytest.approx(0.5) and acc["c4"] == 0.0
    assert acc["c6"] == 1.0 and acc["c1"] == 1.0
    assert r["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 + 0.5 + 1 + 0 + 0 + 1) / 7)
    assert "skipped broken: corrupt frame" in format_report(r)


def test_views_are_averaged():
    # 3 views: two say class 2, one says class 5 -> class 2; the class map renames dataset ids
    x = torch.stack([clip(2), clip(5), clip(2)])
    items = [Sample(x, 1, "a"), Sample(clip(3, views=3), 3, "b")]
    r = evaluate(Oracle(), ListDataset(items, LABELS), class_map=[0, 2, 1, 3, 4, 5, 6])
    assert r["views"] == 3 and r["top1"] == 1.0
    assert r["confusion"][2][2] == 1 and r["confusion"][3][3] == 1


def test_all_bad_and_report_files(tmp_path):
    with pytest.raises(ActionNetError, match=r"no usable samples to evaluate: 1 read, all bad \(e.g. x: empty frame folder\)"):
        evaluate(Oracle(), ListDataset([BadSample("x", "empty frame folder")], LABELS))
    r = evaluate(Oracle(), ListDataset([Sample(clip(p), t, str(i)) for i, (t, p) in enumerate(PAIRS)], LABELS))
    paths = write_report(r, tmp_path / "out")
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["top1"] == pytest.approx(0.6) and "confusion" not in metrics
    conf = json.loads(paths["confusion_json"].read_text())
    assert conf["labels"] == LABELS and conf["matrix"] == r["confusion"]
    with Image.open(paths["confusion_png"]) as im:
        assert im.format == "PNG" and im.size[0] > 100
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["confusion.json", "confusion.png", "metrics.json"]


# ---------------------------------------------------------------- CLI on a real (tiny) checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evaljester")
    labels = ["Swiping Left", "Swiping Right", "Thumb Up"]
    (root / "jester-v1-labels.csv").write_text("\n".join(labels) + "\n")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1, 7):
        d = root / "20bn-jester-v1" / str(i)
        d.mkdir(parents=True)
        for k in range(6):
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(d / f"{k + 1:05d}.jpg")
        rows.append(f"{i};{labels[i % 3]}")
    (root / "20bn-jester-v1" / "7").mkdir()
    rows.append("7;Thumb Up")
    (root / "jester-v1-validation.csv").write_text("\n".join(rows) + "\n")
    (root / "jester-v1-train.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", "action", num_segments=4, num_classes=3, width_mult=0.25)
    ckpt = root / "tiny.pt"
    save_checkpoint(ckpt, model, labels, default_preprocess(model, 64))
    return {"root": root, "ckpt": ckpt, "model": model.eval(), "labels": labels}


def cli(*args: str):
    if args[0] == "evaluate":
        args = (*args, "--workers", "0")
    return CliRunner().invoke(main, list(args))


def test_cli_json_matches_the_library(setup, tmp_path):
    res = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "jester", "--data-root",
              str(setup["root"]), "--json", "--out", str(tmp_path / "rep"), "--batch-size", "4")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ds = build_dataset("jester", setup["root"], "val", segments=4, size=64, train=False,
                       mean=setup["model"].mean, std=setup["model"].std)
    ref = evaluate(setup["model"], ds)
    assert 0.0 <= out["top1"] <= 1.0 and out["top5"] == 1.0  # 3 classes: top-5 always holds
    assert out["top1"] == pytest.approx(ref["top1"]) and out["confusion"] == ref["confusion"]
    assert out["num_samples"] == 6 and out["skipped"] == 1 and out["skipped_samples"][0]["name"] == "7"
    assert (tmp_path / "rep" / "confusion.png").is_file()


def test_cli_ten_clips_three_crops_table(setup):
    res = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "jester", "--data-root",
              str(setup["root"]), "--clips", "2", "--crops", "3", "--limit", "2")
    assert res.exit_code == 0, res.output
    assert "2 clips x 6 views" in res.stdout and "Swiping Right" in res.stdout


def test_cli_errors(setup, tmp_path):
    r = cli("evaluate", "--checkpoint", str(tmp_path / "missing.pt"))
    assert r.exit_code == 2 and "checkpoint not found" in r.stderr
    r = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "jestr")
    assert r.exit_code == 2 and "Did you mean 'jester'" in r.stderr
    r = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "jester", "--data-root", str(tmp_path / "x"))
    assert r.exit_code == 2 and "data root not found" in r.stderr
    r = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "jester")
    assert r.exit_code == 2 and "needs a data root" in r.stderr
    (tmp_path / "val.csv").write_text("a.mp4,a\nb.mp4,b\nc.mp4,c\nd.mp4,d\n")
    for name in "abcd":  # the rows name files that exist: the label check is what refuses them
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    r = cli("evaluate", "--checkpoint", str(setup["ckpt"]), "--dataset", "csv", "--data-root", str(tmp_path))
    assert r.exit_code == 2 and "do not match the checkpoint" in r.stderr


def test_cli_default_data_is_the_synthetic_val_split(tmp_path):
    from actionnet_edge.data.synth import LABELS as SYNTH

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", "action", num_segments=4, num_classes=len(SYNTH),
                         width_mult=0.25)
    save_checkpoint(tmp_path / "s.pt", model, SYNTH, default_preprocess(model, 64))
    res = cli("evaluate", "--checkpoint", str(tmp_path / "s.pt"), "--limit", "8", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dataset"] == "synthetic" and out["split"] == "val" and out["num_samples"] == 8
    assert [c["support"] for c in out["per_class"]] == [1] * len(SYNTH)  # clip i has class i mod 8


def test_cli_error_is_one_line_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "actionnet_edge", "evaluate", "--checkpoint", str(tmp_path / "no.pt")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"Error: checkpoint not found: {tmp_path / 'no.pt'}"]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        items = [Sample(clip(p), t, f"s{i}") for i, (t, p) in enumerate(PAIRS)] + [BadSample("broken", "bad")]
        shard = items[rank::world]  # what a DistributedSampler would hand this rank
        r = evaluate(Oracle(), ListDataset(shard, LABELS), batch_size=2)
        Path(out_dir, f"{rank}.json").write_text(json.dumps(r))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes
def test_distributed_evaluation_sums_over_ranks(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    full = evaluate(Oracle(), ListDataset([Sample(clip(p), t, f"s{i}") for i, (t, p) in enumerate(PAIRS)]
                                          + [BadSample("broken", "bad")], LABELS))
    for rank in range(2):
        r = json.loads((tmp_path / f"{rank}.json").read_text())
        assert r["num_samples"] == 10 and r["skipped"] == 1
        assert r["top1"] == full["top1"] and r["top5"] == full["top5"] and r["confusion"] == full["confusion"]
        assert r["loss"] == pytest.approx(full["loss"])
