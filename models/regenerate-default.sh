#!/usr/bin/env bash
# Regenerates models/efficientnet_lite0.flb, the default bundle embedded in the CLI, from
# the shared EfficientNet-Lite0 ONNX model (ImageNet-1k, preprocessing from its model card).
# Re-commit the result only when its bytes change.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
cargo run --release --no-default-features --features onnx -- convert \
  "$SHARED/models/efficientnet_lite0.onnx" -o models/efficientnet_lite0.flb \
  --name efficientnet_lite0 --resize 256 --crop 224 \
  --mean 127,127,127 --std 128,128,128 \
  --labels "$SHARED/data/imagenet_classes.tsv"
