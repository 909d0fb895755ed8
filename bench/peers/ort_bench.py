#!/usr/bin/env python3
"""Time ONNX Runtime (CPU, one thread) on an ONNX model and print one JSON object.

  python3 ort_bench.py MODEL.onnx [--shape 1,3,224,224] [--runs 20] [--warmup 5]

Prints {"median_ms", "min_ms", "p90_ms", "runs", "version"}. Used by the `compare` harness
of ferrolite-bench as the ONNX Runtime peer (pip install onnxruntime numpy).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if args.shape:
        shape = [int(v) for v in args.shape.split(",")]
    else:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    n = int(np.prod(shape))
    x = ((np.arange(n) * 31 % 255) / 127.5 - 1.0).astype(np.float32).reshape(shape)
    feed = {inp.name: x}
    for _ in range(args.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "median_ms": float(np.median(times)),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, int(np.ceil(0.9 * len(times))) - 1)],
        "runs": len(times),
        "version": ort.__version__,
    }))


if __name__ == "__main__":
    main()
