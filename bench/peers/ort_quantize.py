#!/usr/bin/env python3
"""Make ONNX Runtime's own static int8 model (QDQ, per-channel weights, u8 activations,
min-max calibration) of an fp32 ONNX model, as the int8 peer of `compare-int8`.

  python3 ort_quantize.py MODEL.onnx OUT.onnx --calib DIR [--count 100]
      [--mean 123.675,116.28,103.53] [--std 58.395,57.12,57.375] [--resize 256] [--crop 224]

Images get the model's preprocessing with Pillow (bilinear resize of the shorter side,
center crop, (x - mean) / std, NCHW RGB). Needs `pip install onnxruntime pillow numpy`.
"""
import argparse
import os

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

import peer_models as pm  # this folder's shared helpers


def floats(s):
    return [float(v) for v in s.split(",")]


def preprocess(path, mean, std, resize, crop):
    img = pm.load_pixels(path, resize, crop)
    x = (img - np.array(mean, np.float32)) / np.array(std, np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


class Images(CalibrationDataReader):
    def __init__(self, files, name, args):
        self.items = iter(
            {name: preprocess(f, args.mean, args.std, args.resize, args.crop)} for f in files)

    def get_next(self):
        return next(self.items, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--mean", type=floats, default=[123.675, 116.28, 103.53])
    ap.add_argument("--std", type=floats, default=[58.395, 57.12, 57.375])
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--crop", type=int, default=224)
    args = ap.parse_args()
    files = sorted(
        os.path.join(args.calib, f) for f in os.listdir(args.calib)
        if f.lower().endswith((".jpg", ".jpeg", ".png")))[: args.count]
    prepared = args.out + ".pre.onnx"
    quant_pre_process(args.model, prepared)
    import onnx
    name = onnx.load(prepared).graph.input[0].name
    quantize_static(prepared, args.out, Images(files, name, args),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(prepared)


if __name__ == "__main__":
    main()
