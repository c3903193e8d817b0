"""Build step: the browser demo's files (web_demo/ and the onnxruntime-web runtime it serves)
become package data (actionnet_edge/web_demo/), so that a non-editable install runs `demo web`.

Everything else is in pyproject.toml.
"""
import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WEB_FILES = ("index.html", "demo.js", "style.css")
ORT_DIST = Path("node_modules") / "onnxruntime-web" / "dist"


def _ort_files() -> tuple[str, ...]:
    """demo/web.py's ORT_FILES (its one home), read without importing the package."""
    tree = ast.parse((ROOT / "actionnet_edge" / "demo" / "web.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ORT_FILES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("ORT_FILES not found in actionnet_edge/demo/web.py")


class BuildPyWithWebDemo(build_py):
    def run(self) -> None:
        super().run()
        src, dst = ROOT / "web_demo", Path(self.build_lib) / "actionnet_edge" / "web_demo"
        for name in WEB_FILES:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
        missing = [f for f in _ort_files() if not (src / ORT_DIST / f).is_file()]
        if missing:  # an editable install runs from the checkout, which gets them from `make install`
            self.warn(f"web_demo/{ORT_DIST / missing[0]} is missing: `demo web` of this build will ask for "
                      "`npm ci`; run `npm ci --prefix web_demo` before building a wheel")
            return
        (dst / ORT_DIST).mkdir(parents=True, exist_ok=True)
        for name in _ort_files():
            shutil.copy2(src / ORT_DIST / name, dst / ORT_DIST / name)


setup(cmdclass={"build_py": BuildPyWithWebDemo})
