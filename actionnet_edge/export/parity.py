"""Parity of an exported artifact with the PyTorch model it came from.

fp32/fp16: max/mean abs logit error, cosine, top-1 agreement vs the float model.
int8: SQNR and top-1 agreement vs the float model, plus cosine / max error / top-1 vs the
converted (quantized) PyTorch model, which is what the artifact should reproduce.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class Thresholds:
    """Pass criteria (the CLI exposes each as an option)."""

    min_cosine: float = 0.99999  # fp32 vs float
    min_cosine_fp16: float = 0.999  # fp16 vs float
    min_top1: float = 1.0  # fp32/fp16 top-1 agreement with float
    min_sqnr_db: float = 20.0  # int8 vs float
    min_top1_int8: float = 0.98  # int8 top-1 agreement with float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float(np.array_equal(a, b))


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio of ``test`` against ``ref`` in dB (inf when equal)."""
    ref, test = ref.astype(np.float64), test.astype(np.float64)
    noise = float(np.sum((ref - test) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref ** 2) / noise))


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


def compare(ref: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """All figures of ``test`` logits against ``ref`` logits, both (N, K)."""
    if ref.shape != test.shape:
        raise ValueError(f"output shape {test.shape} != reference {ref.shape}")
    diff = np.abs(ref.astype(np.float64) - test.astype(np.float64))
    return {
        "max_abs_err": float(diff.max()),
        "mean_abs_err": float(diff.mean()),
        "cosine": cosine(ref, test),
        "sqnr_db": sqnr_db(ref, test),
        "top1_agreement": top1_agreement(ref, test),
    }


def evaluate(precision: str, out: np.ndarray, float_ref: np.ndarray, quant_ref: np.ndarray | None,
             th: Thresholds) -> dict[str, Any]:
    """Parity figures, the checks applied, and ``passed``; ``failures`` lists what missed."""
    res: dict[str, Any] = {"clips": int(out.shape[0]), "vs_float": compare(float_ref, out)}
    vf = res["vs_float"]
    if precision == "int8":
        if quant_ref is not None:
            res["vs_quantized_pytorch"] = compare(quant_ref, out)
            res["quantized_pytorch_vs_float"] = compare(float_ref, quant_ref)
        checks = {f"sqnr_db vs float >= {th.min_sqnr_db}": vf["sqnr_db"] >= th.min_sqnr_db,
                  f"top1_agreement vs float >= {th.min_top1_int8}": vf["top1_agreement"] >= th.min_top1_int8}
    else:
        min_cos = th.min_cosine if precision == "fp32" else th.min_cosine_fp16
        checks = {f"cosine vs float >= {min_cos}": vf["cosine"] >= min_cos,
                  f"top1_agreement vs float >= {th.min_top1}": vf["top1_agreement"] >= th.min_top1}
    res["checks"] = checks
    res["failures"] = [k for k, ok in checks.items() if not ok]
    res["passed"] = not res["failures"]
    return res


def summary(res: dict[str, Any]) -> str:
    """One line of the key figures, for logs and error messages."""
    vf = res["vs_float"]
    s = (f"vs {res.get('reference', 'float')}: max abs err {vf['max_abs_err']:.3g}, cosine {vf['cosine']:.6f}, "
         f"SQNR {vf['sqnr_db']:.1f} dB, top-1 agreement {vf['top1_agreement']:.1%}")
    if "vs_quantized_pytorch" in res:
        vq = res["vs_quantized_pytorch"]
        s += f"; vs quantized PyTorch: cosine {vq['cosine']:.5f}, top-1 {vq['top1_agreement']:.1%}"
    frames = f" = {res['frames']} frames in one stream" if "frames" in res else ""
    return s + f" ({res['clips']} clips{frames})"
