"""One PT2E quantizer per backend, configured for QAT or post-training quantization.

* ``xnnpack``: ExecuTorch's ``XNNPACKQuantizer``, symmetric int8, per-channel weights;
* ``litert``: litert-torch's ``PT2EQuantizer``, symmetric int8, per-channel weights, the
  classifier left float, with the annotation fixes of :mod:`actionnet_edge.compat`;
* ``coreml``: ExecuTorch's ``CoreMLQuantizer`` (coremltools' ``LinearQuantizerConfig``,
  symmetric, quint8 activations, per-channel qint8 weights).
"""
from __future__ import annotations

import torch

from ..compat import litert_annotate
from ..constants import QUANT_BACKENDS as BACKENDS
from ..errors import ActionNetError, unknown_name

#: left float by the litert quantizer (torch.export records module types by qualified name):
#: the classifier, whose int8 logits (steps of range / 255) flip clips with close top-2 logits.
#: The temporal modules' layers on pooled vectors are models.edge.VectorLinear, quantized.
_LITERT_FLOAT_MODULES = ("torch.nn.modules.linear.Linear",)
#: the pip extra that installs each quantizer's toolchain
_EXTRA = {"xnnpack": "executorch", "coreml": "coreml", "litert": "tflite"}

__all__ = ["BACKENDS", "make_quantizer"]


def _xnnpack(qat: bool, per_channel: bool):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    q = XNNPACKQuantizer()
    q.set_global(get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat))
    return q


def _litert(qat: bool, per_channel: bool):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    q = PT2EQuantizer()
    q.set_global(get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=qat))
    for name in _LITERT_FLOAT_MODULES:
        q.set_module_type(name, None)
    q.annotate = litert_annotate(q.annotate)
    return q


def _coreml(qat: bool, per_channel: bool):
    from coremltools.optimize.torch.quantization.quantization_config import (LinearQuantizerConfig,
                                                                             QuantizationScheme)
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

    cfg = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": QuantizationScheme.symmetric, "activation_dtype": torch.quint8,
        "weight_dtype": torch.qint8, "weight_per_channel": per_channel}})
    return CoreMLQuantizer(cfg)


_FACTORIES = {"xnnpack": _xnnpack, "litert": _litert, "coreml": _coreml}


def make_quantizer(backend: str, *, qat: bool, per_channel: bool = True):
    """The backend's PT2E quantizer, configured for QAT (``qat=True``) or PTQ."""
    if backend not in BACKENDS:
        raise unknown_name("quantization backend", backend, BACKENDS)
    try:
        return _FACTORIES[backend](qat, per_channel)
    except ImportError as e:
        raise ActionNetError(f"the {backend} quantizer needs its toolchain ({e}); install it with: "
                             f"pip install 'actionnet-edge[{_EXTRA[backend]}]'") from None
