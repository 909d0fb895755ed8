#!/usr/bin/env python3
"""Per-call cost of ferrolite's Python `Model.run` against the Rust call on the same bundle,
and the latency of the same network through ONNX Runtime's and LiteRT's Python APIs.

  python3 bench/python_overhead.py [--model mobilenet_v3_small] [--rounds 7] [--runs 200]
      [--ferrolite target/release/ferrolite]

Needs the package (`pip install ./python`) in this Python; ONNX Runtime and LiteRT rows need
bench/peers/requirements.txt, ../shared/models/MODEL.onnx and target/peers/MODEL.fp32.tflite
(made by bench/threads.py), else they read n/a. Everything runs on 1 thread pinned to CPU 1.
Each round times, in turn (the order rotates): `ferrolite bench BUNDLE --threads 1` (Rust,
its own process), `Model.run(x)` (numpy in, numpy out), `InferenceSession.run` and LiteRT's
`set_tensor` + `invoke` + `get_tensor`; the table gives medians over rounds of the per-round
medians, and the Python overhead as the median over rounds of (Python − Rust).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
import peer_models as pm  # noqa: E402  (the peer scripts' shared timing loop)


def median_ms(call, runs, warmup=20):
    return pm.time_runs(call, warmup, runs)["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenet_v3_small")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--ferrolite", default=os.path.join(ROOT, "target", "release", "ferrolite"))
    a = ap.parse_args()
    import ferrolite

    os.sched_setaffinity(0, {1})
    onnx = os.path.join(ROOT, "..", "shared", "models", f"{a.model}.onnx")
    tmp = tempfile.mkdtemp()
    bundle = os.path.join(tmp, f"{a.model}.flb")
    if os.path.exists(onnx):
        subprocess.run([a.ferrolite, "convert", onnx, "-o", bundle], check=True,
                       capture_output=True)
    else:
        subprocess.run([a.ferrolite, "zoo", "export", a.model, "-o", bundle], check=True,
                       capture_output=True)
    model = ferrolite.Model(bundle, threads=1, cpus="1")
    x = np.random.default_rng(0).standard_normal(model.inputs[0].shape).astype(np.float32)
    engines = {"rust": None, "python": lambda: model.run(x)}
    try:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        engines["ort"] = lambda: sess.run(None, {name: x})
    except Exception as e:  # noqa: BLE001 - a missing peer is reported, not fatal
        print(f"n/a: ONNX Runtime: {e}", file=sys.stderr)
    try:
        from ai_edge_litert.interpreter import Interpreter
        tfl = os.path.join(ROOT, "target", "peers", f"{a.model}.fp32.tflite")
        it = Interpreter(model_path=tfl, num_threads=1)
        it.allocate_tensors()
        d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
        xt = np.random.default_rng(0).standard_normal(d_in["shape"]).astype(np.float32)

        def litert():
            it.set_tensor(d_in["index"], xt)
            it.invoke()
            return it.get_tensor(d_out["index"])
        engines["litert"] = litert
    except Exception as e:  # noqa: BLE001
        print(f"n/a: LiteRT: {e}", file=sys.stderr)
    per = {k: [] for k in engines}
    overhead = []
    names = list(engines)
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        got = {}
        for k in order:
            if k == "rust":
                out = subprocess.run(["taskset", "-c", "1", a.ferrolite, "bench", bundle,
                                      "--threads", "1", "--cpus", "1", "--runs", str(a.runs),
                                      "--warmup", "20", "--json"],
                                     check=True, capture_output=True, text=True).stdout
                got[k] = json.loads(out)["median_ms"]
            else:
                got[k] = median_ms(engines[k], a.runs)
            per[k].append(got[k])
        overhead.append((got["python"] - got["rust"]) * 1e3)
    label = {"rust": "ferrolite, Rust (`ferrolite bench`)", "python": "ferrolite, Python `Model.run`",
             "ort": "ONNX Runtime, Python `InferenceSession.run`",
             "litert": "LiteRT, Python `set_tensor` + `invoke` + `get_tensor`"}
    print("Command: `" + " ".join(["python3", "bench/python_overhead.py", *sys.argv[1:]]) + "`")
    print(f"\n{a.model}, fp32, 1 thread on CPU 1, {a.rounds} rounds x {a.runs} calls\n")
    print("| engine | median ms |\n|---|---|")
    for k in names:
        print(f"| {label[k]} | {statistics.median(per[k]):.3f} |")
    print(f"\nPython overhead per call (Model.run − Rust): {statistics.median(overhead):.1f} µs "
          f"(rounds: {', '.join(f'{o:.1f}' for o in overhead)})")


if __name__ == "__main__":
    main()
