#!/usr/bin/env python3
"""Time LiteRT (ai-edge-litert, CPU with its default XNNPACK delegate) on a .tflite model and
print one JSON line.

  python3 litert_bench.py MODEL.tflite [--threads 1] [--runs 20] [--warmup 5]

Prints {"median_ms", "min_ms", "p90_ms", "runs", "threads", "version", "input_dtype"}: times
of single `invoke()` calls (perf_counter) of
`ai_edge_litert.interpreter.Interpreter(model_path, num_threads=N)`, on a seeded random input of
the model's own shape and dtype (float: uniform in [-1, 1); int8/uint8 input: uniform random
integers of that type), set once before the warm-up. Pin the process from outside
(`taskset -c ...`) to choose the cores. Used by bench/threads.py as the LiteRT peer; the
.tflite files come from bench/peers/make_tflite.py. Needs `pip install ai-edge-litert numpy`
(bench/peers/requirements.txt has the pins).
"""
import argparse
import json

import numpy as np

import peer_models as pm  # this folder's shared helpers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=args.model, num_threads=args.threads)
    it.allocate_tensors()
    rng = np.random.RandomState(0)
    inputs = it.get_input_details()
    for d in inputs:
        shape, dtype = tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = rng.randint(info.min, int(info.max) + 1, size=shape).astype(dtype)
        else:
            x = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        it.set_tensor(d["index"], x)
    print(json.dumps({
        **pm.time_runs(lambda: it.invoke(), args.warmup, args.runs),
        "threads": args.threads,
        "version": getattr(ai_edge_litert, "__version__", "unknown"),
        "input_dtype": np.dtype(inputs[0]["dtype"]).name,
    }))


if __name__ == "__main__":
    main()
