"""Published weights in: the official ACTION-Net and TSM checkpoints, mapped exactly onto our models."""
from .api import import_weights
from .detect import identify, read_source

__all__ = ["import_weights", "identify", "read_source"]
