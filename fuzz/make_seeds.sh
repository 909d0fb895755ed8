#!/usr/bin/env bash
# Regenerate the committed seed corpora under fuzz/seeds/ (a few kB in all): the small ONNX
# graphs of tools/mutate_onnx.py, their fp32 and int8 bundles written by our converter (tiny,
# so one execution takes microseconds), tiny JPEG / PNG images and .npy tensors.
# Needs python3 with onnx, numpy and Pillow, and a host build of the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${FERROLITE:-target/release/ferrolite}
[ -x "$bin" ] || cargo build --release -q
s=fuzz/seeds
rm -rf "$s"
mkdir -p "$s"/{onnx,bundle,image,npy}
python3 tools/mutate_onnx.py --write-seeds "$s/onnx"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$s" "$tmp" <<'PY'
import sys, numpy as np
from PIL import Image
s, tmp = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
img = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
img.save(f"{s}/image/baseline.jpg", quality=70)
img.save(f"{s}/image/progressive.jpg", quality=70, progressive=True)
img.convert("L").save(f"{s}/image/gray.jpg")
img.save(f"{s}/image/rgb.png")
img.convert("RGBA").save(f"{s}/image/rgba.png")
Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(f"{tmp}/calib0.png")
Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(f"{tmp}/calib1.png")
np.save(f"{s}/npy/f32.npy", rng.standard_normal((1, 3, 4, 4)).astype(np.float32))
np.save(f"{s}/npy/f64.npy", rng.standard_normal((2, 5)))
np.save(f"{s}/npy/scalar.npy", np.float32(1.5))
PY
for m in "$s"/onnx/*.onnx; do
    n=$(basename "$m" .onnx)
    # Seeds with ops the runtime lacks (Expand, TopK) stay ONNX seeds only.
    "$bin" convert "$m" -o "$s/bundle/$n.fp32.flb" >/dev/null 2>&1 \
        || echo "no bundle seed from $n.onnx (not convertible)"
done
"$bin" convert "$s/onnx/cnn.onnx" -o "$s/bundle/cnn.int8.flb" --precision int8 \
    --calib "$tmp" --mean 127 --std 128 >/dev/null
"$bin" convert "$s/onnx/cnn.onnx" -o "$s/bundle/cnn.fp16.flb" --precision fp16 >/dev/null
du -sh "$s"
