"""Every command given bad input: one line on stderr starting with "Error:", a non-zero exit,
no traceback, and nothing left behind in the working folder or the output place.

Table-driven and in-process (click's CliRunner); ``{name}`` in a case's arguments is a file of
the module fixture ``inputs`` (bad recipes, checkpoints, data sets, artifacts), ``{out}`` an
output place inside the case's own working folder.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from _helpers import export_test_model, save_test_checkpoint
from actionnet_edge.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SYNTH = str(ROOT / "recipes" / "synthetic.yaml")
QAT = str(ROOT / "recipes" / "qat_synthetic.yaml")
TINY = ["model.width_mult=0.25", "model.dropout=0.0", "data.segments=4", "data.size=32", "data.num_train=8",
        "data.num_val=4", "data.workers=0", "train.batch_size=4", "train.epochs=2", "train.lr_steps=[0.5]"]
LOG_LINE = re.compile(r"^[DIWEC] [\w.]+: ")


class _Pwn:
    """A pickle that would run a command when unpickled without weights_only."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _tiny_recipe():
    from actionnet_edge.train.config import load_recipe

    return load_recipe(SYNTH, TINY)


def _run_checkpoint(path: Path, *, width: float = 0.25, optimizer: bool = True, bad_shape: bool = False,
                    train_state: bool = True) -> None:
    """A ``last.pt`` of the tiny recipe's run, optionally broken in one way."""
    from actionnet_edge.checkpoint import default_preprocess, save_checkpoint
    from actionnet_edge.models import create_model

    recipe = _tiny_recipe()
    model = create_model("mobilenet_v2", "action", 4, 8, width, dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = [f"c{i}" for i in range(8)]
    state = {"epoch": 0, "best_top1": 0.0, "losses": [], "rows": []}
    if optimizer:
        state["optimizer"] = opt.state_dict()
    extra = {"recipe": recipe.to_dict()}
    if train_state:
        extra["train_state"] = state
    save_checkpoint(path, model, labels, default_preprocess(model, 32), **extra)
    if bad_shape:
        raw = torch.load(path, weights_only=True)
        key = next(k for k, v in raw["state_dict"].items() if v.ndim == 4)
        raw["state_dict"][key] = torch.zeros(3, 3, 3, 3)
        torch.save(raw, path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {}
    f["good"] = save_test_checkpoint(d / "good.pt", export_test_model())
    raw = (d / "good.pt").read_bytes()
    for name, data in {"empty.pt": b"", "trunc.pt": raw[: len(raw) // 2], "garbage.pt": os.urandom(4096),
                       "text.pt": b"model: yes\n", "latin1.yaml": "model:\n  arch: caf\xe9\n".encode("latin-1"),
                       "list.yaml": b"- 1\n- 2\n", "badyaml.yaml": b"model: [unclosed\n",
                       "unknown.yaml": b"model: {}\ndata: {}\ntrain: {}\nextra: {}\n",
                       "badkey.yaml": b"model: {archh: x}\ndata: {}\ntrain: {}\n",
                       "nosection.yaml": b"model: {}\ndata: {}\n",
                       "wrongtype.yaml": b"model: {}\ndata: {}\ntrain: {lr: fast}\n"}.items():
        (d / name).write_bytes(data)
        f[name.split(".")[0] if name.endswith(".pt") else name.replace(".", "_")] = d / name
    torch.save({"os": _Pwn()}, d / "pwn.pt")
    f["pwn"] = d / "pwn.pt"
    with zipfile.ZipFile(d / "pwn_raw.pt", "w") as z:  # a hand-made torch zip whose pickle calls os.system
        z.writestr("pwn_raw/data.pkl", pickle.dumps(_Pwn(), protocol=2))
        z.writestr("pwn_raw/version", "3\n")
    f["pwn_raw"] = d / "pwn_raw.pt"
    torch.save({"state_dict": {}}, d / "noformat.pt")
    f["noformat"] = d / "noformat.pt"
    torch.save([1, 2, 3], d / "alist.pt")
    f["alist"] = d / "alist.pt"
    g = torch.load(d / "good.pt", weights_only=True)
    torch.save({**g, "labels": ["a", "b"]}, d / "labels.pt")
    f["labels"] = d / "labels.pt"
    bad = dict(g)
    bad["state_dict"] = {k: (torch.zeros(2, 2) if i == 0 else v) for i, (k, v) in enumerate(g["state_dict"].items())}
    torch.save(bad, d / "shape.pt")
    f["shape"] = d / "shape.pt"
    torch.save({**g, "preprocess": {"size": 64}}, d / "nopre.pt")
    f["nopre"] = d / "nopre.pt"
    (d / "adir.pt").mkdir()
    f["adir"] = d / "adir.pt"
    (d / "afile").write_text("x")
    f["afile"] = d / "afile"
    _datasets(d, f)
    _runs(d, f)
    _artifacts(d, f)
    return f


def _datasets(d: Path, f: dict[str, Path]) -> None:
    """CSV data sets: not UTF-8, every sample bad, wrong field counts, a labels.txt not UTF-8."""
    for name, rows in {"csv_latin1": "path,label\nvid\xe9o.mp4,wave\n", "csv_allbad": "".join(f"v{i}.mp4,gesture {i}\n" for i in range(5)),
                       "csv_fields": "a.mp4\n", "csv_range": "a.mp4,g0,5,1\n", "csv_empty": "path,label\n"}.items():
        root = d / name
        root.mkdir()
        for split in ("train", "val"):
            (root / f"{split}.csv").write_bytes(rows.encode("latin-1"))
        f[name] = root
    root = d / "csv_labels"
    root.mkdir()
    (root / "val.csv").write_text("a.mp4,g0\n")
    (root / "train.csv").write_text("a.mp4,g0\n")
    (root / "labels.txt").write_bytes("g\xe9\n".encode("latin-1"))
    f["csv_labels"] = root


def _runs(d: Path, f: dict[str, Path]) -> None:
    """Run folders whose ``last.pt`` cannot be resumed."""
    for name, kw in {"run_shape": {"bad_shape": True}, "run_width": {"width": 0.5}, "run_noopt": {"optimizer": False},
                     "run_nostate": {"train_state": False}}.items():
        (d / name).mkdir()
        _run_checkpoint(d / name / "last.pt", **kw)
        f[name] = d / name
    for name, src in {"run_empty": "empty", "run_trunc": "trunc", "run_pwn": "pwn"}.items():
        (d / name).mkdir()
        (d / name / "last.pt").write_bytes(f[src].read_bytes())
        f[name] = d / name


def _artifacts(d: Path, f: dict[str, Path]) -> None:
    for name, data in {"empty.onnx": b"", "garbage.onnx": os.urandom(2048), "empty.tflite": b"",
                       "garbage.pte": os.urandom(2048)}.items():
        (d / name).write_bytes(data)
        f[name.replace(".", "_")] = d / name


def _set(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _train(*items: str, recipe: str = SYNTH) -> list[str]:
    return ["train", recipe, "--output", "{out}", *_set(*TINY, *items)]


SET_CASES = ["train.lr=.nan", "train.lr=.inf", "train.lr=-.inf", "train.lr=-1", "train.lr=0", "train.lr=1000.0",
             "train.epochs=0", "train.epochs=-3", "train.epochs=1e9", "train.epochs=100001", "train.batch_size=0",
             "train.batch_size=99999999", "data.size=16", "data.size=99999999", "data.segments=1",
             "data.segments=1000", "model.width_mult=0", "model.width_mult=.nan", "model.width_mult=100",
             "model.dropout=1.5", "model.dropout=.nan", "train.momentum=.nan", "train.momentum=2",
             "train.weight_decay=-1", "train.warmup=1.5", "train.warmup=.nan", "train.clip_grad=.inf",
             "train.lr_gamma=.nan", "train.lr_steps=[1.5]", "train.lr_steps=[0.8,0.2]", "train.lr_steps=[.nan]",
             "model.arch=resnet9000", "model.temporal=wobble", "data.dataset=imagenet", "train.optimizer=adam",
             "train.lr_schedule=exp", "model.pretrained=/nonexistent.pth", "data.workers=-1", "data.workers=100000",
             "train.seed=-1", "train.log_every=0", "data.num_train=0", "train.lr=fast", "train.epochs=[1]",
             "model.causal=maybe", "train.nope=1", "nope.lr=1", "trainlr=1", "a.b.c=1"]

CASES: list[tuple[str, list[str]]] = [(f"set:{s}", _train(s)) for s in SET_CASES]
CASES += [(f"qat-set:{s}", ["qat", QAT, "--output", "{out}", *_set(*TINY, s)])
          for s in ("qat.lr=.nan", "qat.lr=.inf", "qat.epochs=0", "qat.backend=tpu", "qat.batch_size=0",
                    "qat.calib_batches=-1", "qat.freeze_bn_epoch=99", "qat.lr_steps=[2]")]
CASES += [
    ("import:missing", ["import", "{afile}.pth", "--output", "{out}/x.pt"]),
    ("import:not-a-checkpoint", ["import", "{afile}", "--output", "{out}/x.pt"]),
    ("import:bad-temporal", ["import", "{afile}", "--output", "{out}/x.pt", "--temporal", "tsx"]),
    ("verify:missing", ["verify", "{afile}/nowhere"]),
    ("verify:not-an-export", ["verify", "{adir}"]),
    ("verify:bad-on", ["verify", "{adir}", "--on", "mars"]),
    ("recipes:extra-argument", ["recipes", "nosuch", "more"]),
    ("recipe:missing", ["train", "{afile}.yaml", "--output", "{out}"]),
    ("recipe:latin1", ["train", "{latin1_yaml}", "--output", "{out}"]),
    ("recipe:list", ["train", "{list_yaml}", "--output", "{out}"]),
    ("recipe:yaml", ["train", "{badyaml_yaml}", "--output", "{out}"]),
    ("recipe:section", ["train", "{unknown_yaml}", "--output", "{out}"]),
    ("recipe:key", ["train", "{badkey_yaml}", "--output", "{out}"]),
    ("recipe:nosection", ["train", "{nosection_yaml}", "--output", "{out}"]),
    ("recipe:type", ["train", "{wrongtype_yaml}", "--output", "{out}"]),
    ("recipe:qat-latin1", ["qat", "{latin1_yaml}", "--output", "{out}"]),
    ("recipe:dir", ["train", "{adir}", "--output", "{out}"]),
    ("train:no-recipe", ["train"]),
    ("train:data-root", _train() + ["--data-root", "{afile}/nowhere"]),
    ("train:output-under-file", ["train", SYNTH, "--output", "{afile}/run", *_set(*TINY)]),
    ("train:output-proc", ["train", SYNTH, "--output", "/proc/actionnet-run", *_set(*TINY)]),
    ("train:max-steps", _train() + ["--max-steps", "0"]),
    ("train:csv-latin1", _train("data.dataset=csv") + ["--data-root", "{csv_latin1}"]),
    ("train:csv-allbad", _train("data.dataset=csv") + ["--data-root", "{csv_allbad}"]),
    ("train:csv-fields", _train("data.dataset=csv") + ["--data-root", "{csv_fields}"]),
    ("train:csv-empty", _train("data.dataset=csv") + ["--data-root", "{csv_empty}"]),
    ("resume:nothing", ["train", "--resume", "--output", "{out}"]),
    ("resume:shape", ["train", "--resume", "--output", "{run_shape}"]),
    ("resume:width", ["train", "--resume", "--output", "{run_width}"]),
    ("resume:no-optimizer", ["train", "--resume", "--output", "{run_noopt}"]),
    ("resume:no-state", ["train", "--resume", "--output", "{run_nostate}"]),
    ("resume:empty", ["train", "--resume", "--output", "{run_empty}"]),
    ("resume:truncated", ["train", "--resume", "--output", "{run_trunc}"]),
    ("resume:pickle", ["train", "--resume", "--output", "{run_pwn}"]),
    ("resume:other-recipe", ["train", SYNTH, "--resume", "--output", "{run_shape}", *_set(*TINY, "train.lr=0.5")]),
    ("resume:shorter", ["train", "--resume", "--output", "{run_noopt}", "--set", "train.epochs=1"]),
    ("train:existing-run", ["train", SYNTH, "--output", "{run_noopt}", *_set(*TINY)]),
]
for ck in ("empty", "trunc", "garbage", "text", "pwn", "pwn_raw", "noformat", "alist", "labels", "shape", "nopre",
           "adir"):
    CASES.append((f"evaluate:ckpt-{ck}", ["evaluate", "--checkpoint", "{" + ck + "}", "--out", "{out}"]))
    CASES.append((f"export:ckpt-{ck}", ["export", "--target", "onnx", "--checkpoint", "{" + ck + "}", "--output", "{out}"]))
CASES += [(f"export:ckpt-{ck}", ["export", "--target", "onnx", "--checkpoint", "{afile}.pt", "--output", "{out}"])
          for ck in ("missing",)]
CASES += [(f"bench:ckpt-{ck}", ["bench", "--checkpoint", "{" + ck + "}", "--out", "{out}"]) for ck in ("pwn", "trunc", "empty")]
CASES += [(f"qat:init-{ck}", ["qat", QAT, "--init", "{" + ck + "}", "--output", "{out}", *_set(*TINY)])
          for ck in ("pwn", "garbage", "shape")]
G = ["--checkpoint", "{good}"]
CASES += [
    ("evaluate:dataset", ["evaluate", *G, "--dataset", "kinetics"]),
    ("evaluate:data-root", ["evaluate", *G, "--dataset", "csv", "--data-root", "{afile}/none"]),
    ("evaluate:csv-latin1", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_latin1}", "--out", "{out}"]),
    ("evaluate:csv-allbad", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_allbad}", "--out", "{out}",
                             "--workers", "0"]),
    ("evaluate:csv-fields", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_fields}"]),
    ("evaluate:csv-range", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_range}"]),
    ("evaluate:csv-empty", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_empty}"]),
    ("evaluate:labels-latin1", ["evaluate", *G, "--dataset", "csv", "--data-root", "{csv_labels}"]),
    ("evaluate:out-under-file", ["evaluate", *G, "--out", "{afile}/report"]),
    ("evaluate:out-proc", ["evaluate", *G, "--out", "/proc/actionnet-eval"]),
    ("evaluate:out-is-file", ["evaluate", *G, "--out", "{afile}"]),
    ("evaluate:batch", ["evaluate", *G, "--batch-size", "0"]),
    ("evaluate:clips", ["evaluate", *G, "--clips", "0"]),
    ("evaluate:crops", ["evaluate", *G, "--crops", "2"]),
    ("evaluate:limit", ["evaluate", *G, "--limit", "0"]),
    ("evaluate:split", ["evaluate", *G, "--split", "dev"]),
    ("evaluate:workers", ["evaluate", *G, "--workers", "-1"]),
]
E = ["export", "--target", "onnx", *G, "--output", "{out}"]
CASES += [
    ("export:target", ["export", "--target", "tensorrt", "--output", "{out}"]),
    ("export:precision", [*E, "--precision", "int4"]),
    ("export:size-huge", [*E, "--size", "99999999"]),
    ("export:size-small", [*E, "--size", "16"]),
    ("export:size-text", [*E, "--size", "big"]),
    ("export:segments-1", [*E, "--segments", "1"]),
    ("export:segments-huge", [*E, "--segments", "100000"]),
    ("export:layout", [*E, "--layout", "NCWH"]),
    ("export:parity-clips", [*E, "--parity-clips", "0"]),
    ("export:calib-clips", [*E, "--calib-clips", "0"]),
    ("export:min-cosine-nan", [*E, "--min-cosine", "nan"]),
    ("export:min-top1-2", [*E, "--min-top1", "2"]),
    ("export:min-sqnr-inf", [*E, "--min-sqnr", "inf"]),
    ("export:data-root", [*E, "--data-root", "{afile}/none", "--dataset", "csv"]),
    ("export:data-root-no-dataset", [*E, "--data-root", "{csv_allbad}"]),
    ("export:streaming-int8", [*E, "--streaming", "--precision", "int8"]),
    ("export:streaming-nhwc", [*E, "--streaming", "--layout", "NHWC"]),
    ("export:streaming-not-causal", [*E, "--streaming"]),
    ("export:output-exists", ["export", "--target", "onnx", *G, "--output", "{csv_allbad}"]),
    ("export:output-under-file", ["export", "--target", "onnx", *G, "--output", "{afile}/x"]),
    ("export:output-is-file", ["export", "--target", "onnx", *G, "--output", "{afile}", "--force"]),
    ("export:output-proc", ["export", "--target", "onnx", *G, "--output", "/proc/actionnet-export"]),
    ("bench:artifact-missing", ["bench", "--artifact", "{afile}.onnx", "--out", "{out}"]),
    ("bench:runtimes", ["bench", "--runtimes", "tensorrt", "--out", "{out}"]),
    ("bench:variants", ["bench", "--variants", "x3d", "--out", "{out}"]),
    ("bench:threads", ["bench", "--threads", "two", "--out", "{out}"]),
    ("bench:precision", ["bench", "--precision", "int2", "--out", "{out}"]),
    ("profile:arch", ["profile", "--arch", "vgg"]),
    ("profile:temporal", ["profile", "--temporal", "lstm"]),
    ("profile:size", ["profile", "--size", "8"]),
    ("profile:classes", ["profile", "--num-classes", "0"]),
    ("data:size", ["data", "synth", "--out", "{out}", "--size", "7x"]),
    ("data:frames", ["data", "synth", "--out", "{out}", "--frames", "1"]),
    ("data:train", ["data", "synth", "--out", "{out}", "--train", "0"]),
    ("cli:command", ["trian"]),
    ("cli:option", ["export", "--tagret", "onnx"]),
    ("bench:arm-cost-missing", ["bench", "--arm-cost", "--artifact", "{afile}.pte", "--out", "{out}"]),
]
#: what the one line must say, where the case's cause is easy to misname
SAYS = {"verify:missing": "export folder not found", "verify:not-an-export": "no metadata.json",
        "bench:arm-cost-missing": "artifact not found", "export:ckpt-text": "not a torch file",
        "export:ckpt-garbage": "not a torch file", "export:ckpt-missing": "checkpoint not found"}


def _fill(args: list[str], inputs: dict[str, Path], out: Path) -> list[str]:
    names = {k: str(v) for k, v in inputs.items()}
    names["out"] = str(out)
    return [a.format(**names) if "{" in a else a for a in args]


def _listing(*folders: Path) -> set[str]:
    return {str(p) for d in folders if d.exists() for p in d.rglob("*")}


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not LOG_LINE.match(line)]


@pytest.mark.parametrize("case,args", CASES, ids=[c for c, _ in CASES])
def test_bad_input(case, args, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path, inputs["good"].parent)
    result = CliRunner().invoke(main, _fill(args, inputs, tmp_path / "out"))
    lines = _stderr_lines(result.stderr)
    assert result.exit_code not in (0, None), (case, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (case, repr(result.exception))
    assert "Traceback" not in result.output, (case, result.output)
    assert len(lines) == 1 and lines[0].startswith("Error:"), (case, result.stderr)
    assert SAYS.get(case, "") in lines[0], (case, lines[0])
    assert "weights_only=False" not in lines[0] and "weights_only" not in lines[0]
    assert _listing(tmp_path, inputs["good"].parent) == before, case  # nothing left behind, no PWNED
    assert not (tmp_path / "out").exists()


def test_the_table_covers_every_command():
    from actionnet_edge.cli.main import COMMANDS

    assert len(CASES) >= 100
    tried = {args[0] for _, args in CASES}
    assert set(COMMANDS) - tried <= {"cam", "demo", "quickstart"}  # cam/demo: tests/test_demo.py, test_cam.py


def test_checkpoint_errors_name_the_problem(inputs):
    from actionnet_edge.checkpoint import read_checkpoint
    from actionnet_edge.errors import ActionNetError

    reasons = {"empty": "empty or cut short", "trunc": "truncated or not a torch file",
               "garbage": "not a torch file: neither a zip archive nor a pickle", "text": "neither a zip archive",
               "pwn": "could run code", "pwn_raw": "could run code"}
    for name, reason in reasons.items():
        with pytest.raises(ActionNetError, match=reason):
            read_checkpoint(inputs[name])
