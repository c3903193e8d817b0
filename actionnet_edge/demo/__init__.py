"""Demos: the sliding-window logic the apps mirror (:mod:`.window`), the Python live demo
(:mod:`.live`) and the browser demo server (:mod:`.web`)."""
from .window import Preprocess, SlidingWindow, read_metadata, softmax

__all__ = ["Preprocess", "SlidingWindow", "read_metadata", "softmax"]
