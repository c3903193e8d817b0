"""A newcomer's first hour: quiet output with the third-party log in a file, help without
torch and with examples, recipes by name from any folder and in a built wheel, artifact
names that match metadata.json, and the docs' sha256 of the bundled model."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, also from another folder
    return subprocess.run([sys.executable, "-m", "actionnet_edge", *args], capture_output=True, text=True,
                          timeout=1800, cwd=cwd, env=env)


# ---- help ---------------------------------------------------------------------------------------

def test_help_of_every_command_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        from actionnet_edge.cli.main import COMMANDS, main
        for args in [["--help"]] + [[c, "--help"] for c in sorted(COMMANDS)]:
            try:
                main(args)
            except SystemExit as e:
                assert e.code == 0, (args, e.code)
        heavy = sorted(m for m in ("torch", "numpy", "onnx", "executorch", "coremltools") if m in sys.modules)
        print("HEAVY", heavy, file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr, proc.stderr.splitlines()[-1]


# demo and cam: their help belongs to the demos' files (cli/demo.py, cli/cam.py)
@pytest.mark.parametrize("cmd", ["bench", "data", "evaluate", "export", "profile", "qat", "quickstart", "recipes",
                                 "train", "data synth"])
def test_every_command_help_has_an_example(cmd):
    from actionnet_edge.cli.main import main

    res = CliRunner().invoke(main, [*cmd.split(), "--help"])
    assert res.exit_code == 0, res.output
    assert re.search(r"Examples?: actionnet-edge " + cmd.split()[0], res.output), res.output


def test_help_lists_the_choices():
    from actionnet_edge.cli.main import main
    from actionnet_edge.constants import EXPORT_TARGETS, PRECISIONS
    from actionnet_edge.models import list_temporal

    out = CliRunner().invoke(main, ["export", "--help"]).output
    assert all(t in out for t in EXPORT_TARGETS) and all(p in out for p in PRECISIONS)
    out = " ".join(CliRunner().invoke(main, ["profile", "--help"]).output.split())
    for name in list_temporal(aliases=True):
        assert re.search(rf"\b{name}\b", out), name
    from actionnet_edge.export.registry import _TARGETS

    assert list(_TARGETS) == list(EXPORT_TARGETS)


def test_tsm_and_tsn_are_names_of_shift_and_none():
    from actionnet_edge.errors import ActionNetError
    from actionnet_edge.models import create_model

    assert create_model("mobilenet_v2", "tsm", 4, 5, 0.25).config["temporal"] == "shift"
    assert create_model("mobilenet_v2", "tsn", 4, 5, 0.25).config["temporal"] == "none"
    with pytest.raises(ActionNetError, match="valid: .*tsm.*Did you mean 'ts[mn]'"):
        create_model("mobilenet_v2", "tsx", 4, 5, 0.25)


def test_recipe_keys_accept_the_aliases():
    from actionnet_edge.cli.recipes import recipe_path
    from actionnet_edge.train.config import load_recipe

    r = load_recipe(recipe_path("synthetic"), ["model.temporal=tsm"])
    assert r.model.temporal == "tsm"


# ---- recipes ------------------------------------------------------------------------------------

def test_recipes_lists_every_shipped_recipe_with_a_description():
    from actionnet_edge.cli.main import main

    shipped = sorted(p.stem for p in (ROOT / "actionnet_edge" / "recipes").glob("*.yaml"))
    res = CliRunner().invoke(main, ["recipes"])
    assert res.exit_code == 0
    rows = [line.split(None, 1) for line in res.output.splitlines()]
    assert [r[0] for r in rows] == shipped
    assert all(len(r) == 2 and len(r[1]) > 10 for r in rows), res.output


def test_recipe_by_name_from_another_folder(tmp_path, monkeypatch):
    from actionnet_edge.cli.recipes import recipe_path
    from actionnet_edge.errors import ActionNetError

    monkeypatch.chdir(tmp_path)
    assert recipe_path("synthetic") == ROOT / "actionnet_edge" / "recipes" / "synthetic.yaml"
    assert recipe_path("synthetic.yaml") == recipe_path("synthetic")
    (tmp_path / "mine.yaml").write_text("model: {}\n")
    assert recipe_path("mine.yaml") == Path("mine.yaml")  # a file is taken as it is
    with pytest.raises(ActionNetError, match="Did you mean 'synthetic'"):
        recipe_path("synthtic")


def test_unknown_recipe_is_one_line_with_the_valid_names(tmp_path):
    proc = run("train", "synthtic", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "synthetic_causal" in lines[0] and "Did you mean 'synthetic'" in lines[0]


@pytest.mark.slow
def test_train_synthetic_runs_from_another_folder(tmp_path):
    proc = run("train", "synthetic", "--output", "run", "--max-steps", "1", "--set", "data.num_val=8",
               "--set", "data.num_train=8", "--set", "train.batch_size=4", "--set", "model.width_mult=0.25",
               "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "last.pt").is_file()
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_wheel_carries_recipes_and_web_demo(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for p in (ROOT / "actionnet_edge" / "recipes").glob("*.yaml"):
        assert f"actionnet_edge/recipes/{p.name}" in names
    for f in ("index.html", "demo.js", "style.css"):
        assert f"actionnet_edge/web_demo/{f}" in names
    from actionnet_edge.demo.web import ORT_FILES

    dist = "node_modules/onnxruntime-web/dist"
    if not (ROOT / "web_demo" / dist).is_dir():
        pytest.skip("web_demo/node_modules not installed (npm ci): the runtime files are not built in")
    for f in ORT_FILES:
        assert f"actionnet_edge/web_demo/{dist}/{f}" in names


# ---- quiet output -------------------------------------------------------------------------------

_CAPTURE = textwrap.dedent("""
    import logging, os, sys, warnings
    from actionnet_edge.logs import capture, configure
    configure(verbose=int(sys.argv[2]))
    ours = logging.getLogger("actionnet_edge.test")
    with capture(sys.argv[1]):
        ours.info("our line")
        os.write(1, b"raw fd1 line\\n")
        os.write(2, b"raw fd2 line\\n")
        logging.getLogger("onnxscript.rewriter").info("third-party record")
        warnings.warn("a deprecation", DeprecationWarning)
        if sys.argv[3] == "fail":
            raise SystemExit(3)
    ours.info("after")
""")


@pytest.mark.parametrize("verbose", [0, 1])
def test_capture_sends_third_party_output_to_the_log(tmp_path, verbose):
    log = tmp_path / "out" / "actionnet-edge.log"
    proc = subprocess.run([sys.executable, "-c", _CAPTURE, str(log), str(verbose), "ok"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    assert "our line" in console and "after" in console
    third = ("raw fd1 line", "raw fd2 line", "third-party record", "a deprecation")
    if verbose:  # -v: everything on the console, nothing captured
        assert all(t in console for t in third) and not log.exists()
    else:
        assert not any(t in console for t in third), console
        text = log.read_text()
        assert all(t in text for t in third), text


def test_capture_prints_the_log_tail_on_failure(tmp_path):
    log = tmp_path / "actionnet-edge.log"
    proc = subprocess.run([sys.executable, "-c", _CAPTURE, str(log), "0", "fail"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 3
    assert f"lines of {log}" in proc.stderr and "raw fd2 line" in proc.stderr and "after" not in proc.stderr


@pytest.mark.slow
def test_export_onnx_prints_a_handful_of_lines(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxscript")
    proc = run("export", "--target", "onnx", "--checkpoint", str(tiny_checkpoint), "--output", str(tmp_path / "o"),
               "--parity-clips", "2")
    assert proc.returncode == 0, proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) <= 8, lines
    assert all(re.match(r"(I|W) actionnet_edge|wrote |parity ", line) for line in lines), lines
    log = (tmp_path / "o" / "actionnet-edge.log").read_text()
    assert "onnxscript" in log  # the converter's own lines went to the log


@pytest.fixture(scope="module")
def quickstart(tiny_checkpoint, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`actionnet-edge quickstart` on the tiny checkpoint, run once: its process and output folder."""
    out = tmp_path_factory.mktemp("quickstart") / "q"
    proc = run("quickstart", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
               "--parity-clips", "2", "--min-sqnr", "0", "--min-top1-int8", "0.5")  # int8 of a random tiny model
    return proc, out


@pytest.mark.slow
def test_quickstart_prints_at_most_40_lines(quickstart):
    proc, out = quickstart
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(lines) <= 40, "\n".join(lines)
    log = (out / "actionnet-edge.log").read_text()
    assert len(log.splitlines()) > len(lines)  # the converters' output is there, not on the console


# ---- names in metadata.json match the artifact --------------------------------------------------

def _artifact_io(target: str, path: Path) -> tuple[list, list]:
    """Input and output names (.pte: positional, their shapes) read from the artifact itself."""
    if target == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        sig = Interpreter(model_path=str(path)).get_signature_list()
        assert list(sig) == ["serving_default"], sig
        return sig["serving_default"]["inputs"], sig["serving_default"]["outputs"]
    if target == "onnx":
        import onnx

        g = onnx.load(str(path)).graph
        return [i.name for i in g.input], [o.name for o in g.output]
    if target == "coreml":
        import coremltools as ct

        spec = ct.utils.load_spec(str(path))
        return [i.name for i in spec.description.input], [o.name for o in spec.description.output]
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(str(path)).metadata("forward")
    return ([list(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())],
            [list(meta.output_tensor_meta(i).sizes()) for i in range(meta.num_outputs())])


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "onnx", "coreml", "executorch"])
def test_metadata_names_the_artifacts_inputs_and_outputs(target, quickstart):
    from _helpers import target_available

    if not target_available(target):
        pytest.skip(f"{target} not installed")
    folder = quickstart[1] / f"{target}-fp32"  # the quickstart's fp32 export of the tiny checkpoint
    meta = json.loads((folder / "metadata.json").read_text())
    inputs, outputs = _artifact_io(target, folder / meta["artifact"])
    if target == "executorch":  # positional: one input and one output of the promised shapes
        assert inputs == [meta["input"]["shape"]] and outputs == [meta["output"]["shape"]]
    else:
        assert (inputs, outputs) == ([meta["input"]["name"]], [meta["output"]["name"]])


# ---- docs ---------------------------------------------------------------------------------------

def test_apps_doc_quotes_the_bundled_models_sha256():
    from actionnet_edge.checkpoint import bundled_checkpoint

    quoted = re.findall(r"bundled checkpoint \(sha256 ([0-9a-f]{12,})", (ROOT / "docs" / "apps.md").read_text())
    assert quoted, "docs/apps.md no longer quotes the bundled checkpoint's sha256"
    actual = hashlib.sha256(bundled_checkpoint().read_bytes()).hexdigest()
    assert all(actual.startswith(q) for q in quoted), (quoted, actual)
