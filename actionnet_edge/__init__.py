"""actionnet-edge: ACTION-Net video action recognition from training to phones."""
from ._version import __version__
from .errors import ActionNetError
from .models import create_model, list_models

__all__ = ["__version__", "ActionNetError", "create_model", "list_models"]
