"""actionnet-edge: ACTION-Net video action recognition from training to phones."""
from ._version import __version__
from .errors import ActionNetError

__all__ = ["__version__", "ActionNetError", "create_model", "list_models"]


def __getattr__(name: str):
    # torch loads only when a model is asked for, so `actionnet-edge --help` stays fast
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'actionnet_edge' has no attribute {name!r}")
