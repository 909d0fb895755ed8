#!/usr/bin/env bash
# Regenerates models/efficientnet_lite0.flb, the default bundle embedded in the CLI: the
# shared EfficientNet-Lite0 ONNX model (ImageNet-1k, preprocessing from its model card)
# quantized to int8, calibrated on the first 100 shared calibration images.
# Re-commit the result only when its bytes change.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
cargo run --release --no-default-features --features onnx,libjpeg -- convert \
  "$SHARED/models/efficientnet_lite0.onnx" -o models/efficientnet_lite0.flb \
  --name efficientnet_lite0 --resize 256 --crop 224 \
  --mean 127,127,127 --std 128,128,128 \
  --labels "$SHARED/data/imagenet_classes.tsv" \
  --precision int8 --calib "$SHARED/images/calib" --eval "$SHARED/images/labeled"
