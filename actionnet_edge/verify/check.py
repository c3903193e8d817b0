"""Judge a runtime's outputs on an export's test vectors, and print the table.

Against ``pytorch``: the export's own parity checks with the tolerances recorded in vectors.json
(a stream adds the frame logits' cosine). Against ``host_runtime`` (the same artifact and runtime
on the exporting machine): max abs error within ``host_rtol`` of the logits' scale and the same
top-1 on every vector.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..export.parity import Thresholds, compare, evaluate
from ..export.vectors import Vectors

_TH_KEYS = set(Thresholds().to_dict())


def judge(vec: Vectors, out: dict[str, np.ndarray]) -> dict[str, Any]:
    """Figures and checks of ``out`` (``logits``, for a stream also ``frame_logits``, each (n, K))."""
    tol = vec.meta["tolerances"]
    th = Thresholds(**{k: v for k, v in tol.items() if k in _TH_KEYS})
    precision, t = vec.meta["precision"], vec.tensors
    got = out["logits"].reshape(vec.meta["count"], -1)
    flat = {k: v.reshape(vec.meta["count"], -1) for k, v in t.items() if k != "input"}
    res = evaluate(precision, got, flat["pytorch"], flat.get("quantized_pytorch"), th)
    checks = {f"vs pytorch: {k}": ok for k, ok in res["checks"].items()}
    row: dict[str, Any] = {"vs_pytorch": res["vs_float"]}
    if vec.stream:
        fl = compare(flat["pytorch_frame_logits"], out["frame_logits"].reshape(vec.meta["count"], -1))
        if precision == "int8":  # int8 is judged by SQNR, as the export's parity judges it
            checks[f"vs pytorch: frame_logits sqnr_db >= {th.min_sqnr_db}"] = fl["sqnr_db"] >= th.min_sqnr_db
        else:
            min_cos = th.min_cosine if precision == "fp32" else th.min_cosine_fp16
            checks[f"vs pytorch: frame_logits cosine >= {min_cos}"] = fl["cosine"] >= min_cos
        row["frame_logits_vs_pytorch"] = fl
    if "vs_quantized_pytorch" in res:  # int8 with the converted PT2E model's logits: a figure, not a check
        row["vs_quantized_pytorch"] = res["vs_quantized_pytorch"]
    if "host_runtime" in flat:
        host = flat["host_runtime"]
        vh = compare(host, got)
        atol = float(tol["host_rtol"]) * max(1.0, float(np.abs(host).max()))
        checks[f"vs host runtime: max abs err <= {atol:.3g}"] = vh["max_abs_err"] <= atol
        checks["vs host runtime: same top-1 on every vector"] = vh["top1_agreement"] == 1.0
        row["vs_host_runtime"] = vh
    row["checks"] = checks
    row["failures"] = [k for k, ok in checks.items() if not ok]
    row["passed"] = not row["failures"]
    return row


def _fmt(v: float | None, spec: str) -> str:
    if v is None:
        return "-"
    return "inf" if np.isinf(v) else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    """One line per (artifact, runtime, CPU, reference): max abs error, cosine, SQNR, top-1, met."""
    head = ("artifact", "runtime", "cpu", "vs", "max abs err", "cosine", "SQNR dB", "top-1", "met")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append((r["artifact"], r["runtime"], r["cpu"], "-", "-", "-", "-", "-", f"skipped: {r['skipped']}"))
            continue
        for ref in ("vs_pytorch", "vs_host_runtime"):
            if ref not in r:
                continue
            f = r[ref]
            fails = [k for k in r["failures"] if k.startswith(ref.replace("_", " "))]
            lines.append((r["artifact"], r["runtime"], r["cpu"], ref[3:].replace("_", " "),
                          _fmt(f["max_abs_err"], ".3g"), _fmt(f["cosine"], ".7f"), _fmt(f["sqnr_db"], ".1f"),
                          _fmt(f["top1_agreement"], ".0%"), "no: " + "; ".join(k.split(": ", 1)[1] for k in fails)
                          if fails else "yes"))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head) - 1)]
    out = []
    for row in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + str(row[-1]))
    return "\n".join(out)
