"""`actionnet-edge recipes`: the shipped YAML recipes by name, and the lookup `train`/`qat` use."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import unknown_name

#: the shipped recipes, package data of actionnet_edge (a `recipes` link in the repository points here)
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def list_recipes() -> dict[str, Path]:
    """Shipped recipe name (file stem) -> its file."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def recipe_path(recipe: str) -> Path:
    """A recipe file: ``recipe`` itself when it is a file, else the shipped recipe of that name
    (``synthetic`` or ``synthetic.yaml``); an unknown name lists the valid ones and the closest."""
    if Path(recipe).is_file():
        return Path(recipe)
    shipped = list_recipes()
    name = Path(recipe).name.removesuffix(".yaml").removesuffix(".yml")
    if name in shipped:
        return shipped[name]
    raise unknown_name("recipe (not a file, nor a shipped one)", name, shipped)


def describe(path: Path) -> str:
    """The recipe's one-line description: the first line of its leading comment, up to a colon."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            head, sep, _ = text.partition(": ")
            if head.count("(") > head.count(")"):  # the colon was inside a parenthesis
                head, sep = head.split(" (")[0], ":"
            return head if sep else text.rstrip(":,")
        if line.strip():
            break
    return ""


@click.command("recipes", epilog="Example: actionnet-edge recipes; then: actionnet-edge train synthetic")
@click.option("--paths", is_flag=True, help="Print each recipe's file path too.")
def command(paths: bool) -> None:
    """List the shipped recipes (name and description); `train NAME` and `qat NAME` take them."""
    shipped = list_recipes()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        click.echo(f"{name:<{width}}  {describe(path)}" + (f"  [{path}]" if paths else ""))
