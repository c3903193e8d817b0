"""The ``actionnet-edge`` command line: a thin click group, one file per command."""
from .main import main

__all__ = ["main"]
