#!/usr/bin/env python3
"""Time ONNX Runtime (CPU execution provider) on an ONNX model and print one JSON line.

  python3 ort_bench.py MODEL.onnx [--shape 1,3,224,224] [--runs 20] [--warmup 5] [--threads 1]

Prints {"median_ms", "min_ms", "p90_ms", "runs", "threads", "version"} (times of single
`run` calls, perf_counter). --threads N sets intra_op_num_threads=N with inter_op_num_threads=1
and sequential execution; for N>1 ORT's defaults stay as they are (its worker threads spin
between ops), N=1 is the single-threaded session used so far. Pin the process from outside
(`taskset -c ...`) to choose the cores. The input is a fixed deterministic pattern in [-1, 1).
Used by the `compare` harness of ferrolite-bench and by bench/threads.py as the ONNX Runtime
peer (pip install onnxruntime numpy; bench/peers/requirements.txt has the pins).
"""
import argparse
import json

import numpy as np
import onnxruntime as ort

import peer_models as pm  # this folder's shared helpers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
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
    print(json.dumps({
        **pm.time_runs(lambda: sess.run(None, feed), args.warmup, args.runs),
        "threads": args.threads,
        "version": ort.__version__,
    }))


if __name__ == "__main__":
    main()
