"""Int8 quantization with PT2E, in four parts: quantizers (:mod:`.quantizers`, one per backend),
the PT2E steps (:mod:`.pt2e`; the streaming step's in :mod:`.stream`), QAT checkpoints (:mod:`.checkpoints`) and QAT fine-tuning
(:mod:`.qat`). Third-party workarounds live in :mod:`actionnet_edge.compat`."""
from __future__ import annotations

from .checkpoints import (QAT_FORMAT, QATCheckpoint, check_qat_state, float_edge_from_qat, is_qat_checkpoint,
                          load_qat_checkpoint, save_qat_checkpoint)
from .pt2e import (calibrate, check_qat_backend, convert, fake_quant_model, freeze_observers, load_prepared, prepare, quantize,
                   set_qat_mode)
from .quantizers import BACKENDS, make_quantizer
from .stream import quantize_step

__all__ = ["BACKENDS", "QAT_FORMAT", "make_quantizer", "prepare", "calibrate", "convert", "quantize",
           "freeze_observers", "set_qat_mode", "fake_quant_model", "load_prepared", "QATCheckpoint",
           "save_qat_checkpoint", "load_qat_checkpoint", "is_qat_checkpoint", "float_edge_from_qat",
           "check_qat_state", "check_qat_backend", "quantize_step"]
