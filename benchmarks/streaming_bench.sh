#!/usr/bin/env bash
# Reproduce benchmarks/results/streaming/: per-frame (streaming step) vs clip latency of a
# causal MobileNetV2-ACTION, width 1.0, 8 frames x 224 px, fresh random weights (latency does
# not depend on them), fp32, ExecuTorch (XNNPACK), LiteRT (XNNPACK) and ONNX Runtime at 2 threads, PyTorch eager
# alongside. Each runtime gets two exports of the same model, both parity-checked in its own
# runtime: the 8-frame clip and the streaming step (8 clips x 8 frames run as one stream).
# Goal (issue 7): one streaming step costs less than 1/6 of one 8-frame clip.
#
#   PYTHON=.venv/bin/python benchmarks/streaming_bench.sh
#   RUNTIMES=pytorch,executorch RUNS=30 benchmarks/streaming_bench.sh
#
# About 10 minutes of CPU on a 2-core machine (conversions included; they are kept in $WORK
# and reused by the next run), and a few more for the per-op profiles of the ExecuTorch and LiteRT
# clip and step that a missed goal brings (pass --no-profile to skip them). The report records the
# load average at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/streaming}
WORK=${WORK:-bench_work/streaming-mbv2-t8-s224}
exec nice -n "${NICE:-5}" "${PYTHON:-python}" -m actionnet_edge bench --streaming \
  --runtimes "${RUNTIMES:-pytorch,executorch,litert,onnxruntime}" --precision fp32 --variants action \
  --arch mobilenet_v2 --width-mult 1.0 --num-classes 27 --segments 8 --size 224 \
  --threads "${THREADS:-2}" --warmup 3 --runs "${RUNS:-20}" --parity-clips "${PARITY_CLIPS:-8}" \
  --out "$OUT" --work "$WORK" "$@"
