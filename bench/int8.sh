#!/usr/bin/env bash
# int8 speed against ONNX Runtime's own int8 model of the same network, and against our fp32.
# For each shared model: our int8 bundle (`ferrolite convert --precision int8`, 100
# calibration images) and ONNX Runtime's QDQ model (bench/peers/ort_quantize.py, the same
# 100 images and preprocessing), then the compare-int8 harness (one thread, pinned,
# interleaved rounds). Needs ../shared and `pip install onnxruntime pillow numpy`.
# Usage: bash bench/int8.sh [--runs 42] [--rounds 7]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
OUT=target/int8-bench
mkdir -p "$OUT"
cargo build --release -p ferrolite -p ferrolite-bench --bins
IMAGENET=(--mean 123.675,116.28,103.53 --std 58.395,57.12,57.375)
LITE0=(--mean 127,127,127 --std 128,128,128)
triples=()
for m in efficientnet_lite0 mobilenet_v2 shufflenet_v2_x1_0; do
  if [ "$m" = efficientnet_lite0 ]; then norm=("${LITE0[@]}"); else norm=("${IMAGENET[@]}"); fi
  target/release/ferrolite convert "$SHARED/models/$m.onnx" -o "$OUT/$m.int8.flb" \
    --resize 256 --crop 224 "${norm[@]}" --labels "$SHARED/data/imagenet_classes.tsv" \
    --precision int8 --calib "$SHARED/images/calib" >/dev/null
  python3 bench/peers/ort_quantize.py "$SHARED/models/$m.onnx" "$OUT/$m.ort_qdq.onnx" \
    --calib "$SHARED/images/calib" "${norm[@]}" 2>/dev/null
  triples+=("$SHARED/models/$m.onnx,$OUT/$m.int8.flb,$OUT/$m.ort_qdq.onnx")
done
target/release/compare-int8 "$@" "${triples[@]}"
