#!/usr/bin/env python3
"""Compare `ferrolite run` against ONNX Runtime on arbitrary ONNX models.

Usage:
  check_unseen.py [--ferrolite BIN] [--timeout S] [--tol 1e-4] [--seed 0]
                  [--dist normal|uniform] [--work DIR] [--no-shape-flag]
                  MODEL.onnx[:N,C,H,W] ...

A shape after ':' fixes the first input's shape (needed for symbolic dims; it is
also passed to ferrolite as --input-shape). Without it the model's static shape is
used (symbolic batch -> 1; any other symbolic dim is an error).

Prints a table: model, status, rel error (max|diff|/max|ref|), ferrolite time,
and for failures the ferrolite error message.
Exit code 0 iff every model is within tolerance.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def model_input_shape(path):
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    dims = []
    for d in inputs[0].type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return inputs[0].name, dims, len(inputs)


def run_ort(path, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]


def check(path, shape, args):
    base = os.path.splitext(os.path.basename(path))[0]
    tag = base + ("_" + "x".join(map(str, shape)) if shape else "")
    res = {"model": os.path.basename(path) + (":" + ",".join(map(str, shape)) if shape else ""),
           "status": "?", "rel": None, "msg": "", "secs": None, "shape": None, "refstat": ""}
    try:
        name, dims, n_in = model_input_shape(path)
        if shape is None:
            if dims and dims[0] is None:
                dims[0] = 1
            if any(d is None for d in dims):
                res["status"] = "BAD-ARGS"
                res["msg"] = f"symbolic dims {dims}: give MODEL:shape"
                return res
            shape_used = dims
        else:
            shape_used = shape
        res["shape"] = shape_used
        rng = np.random.default_rng(args.seed)
        if args.dist == "normal":
            x = rng.standard_normal(shape_used).astype(np.float32)
        else:
            x = rng.uniform(-1, 1, shape_used).astype(np.float32)
        xin = os.path.join(args.work, tag + ".in.npy")
        yout = os.path.join(args.work, tag + ".ferrolite.npy")
        np.save(xin, x)
        if os.path.exists(yout):
            os.remove(yout)
        ref = run_ort(path, x)
        np.save(os.path.join(args.work, tag + ".ort.npy"), ref)
        pass_shape = shape is not None and not args.no_shape_flag
        cmd = [args.ferrolite, "run", path, "--input", xin, "--output", yout]
        if pass_shape:
            cmd += ["--input-shape", ",".join(map(str, shape))]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            res["status"] = "TIMEOUT"
            res["msg"] = f"> {args.timeout}s"
            return res
        res["secs"] = time.time() - t0
        if p.returncode != 0:
            res["status"] = "FAIL"
            res["msg"] = p.stderr.strip() or p.stdout.strip()
            return res
        y = np.load(yout)
        if y.shape != ref.shape:
            if y.size == ref.size:
                res["msg"] = f"shape {y.shape} vs ort {ref.shape} (same size, compared flat); "
                y = y.reshape(ref.shape)
            else:
                res["status"] = "SHAPE"
                res["msg"] = f"ferrolite {y.shape} vs ort {ref.shape}"
                return res
        ref64 = ref.astype(np.float64)
        diff = np.abs(y.astype(np.float64) - ref64)
        denom = np.abs(ref64).max()
        rel = float(diff.max() / denom) if denom > 0 else float(diff.max())
        res["rel"] = rel
        res["refstat"] = f"maxabs {denom:.3g}, std {ref64.std():.3g}"
        if not np.all(np.isfinite(y)):
            res["status"] = "NONFINITE"
        else:
            res["status"] = "OK" if rel <= args.tol else "MISMATCH"
        if ref.ndim == 2 and ref.shape[1] > 1:
            agree = float(np.mean(ref.argmax(1) == y.argmax(1)))
            res["msg"] += f"argmax agree {agree:.2f}"
    except Exception as e:  # ORT or IO failure
        res["status"] = "ERROR"
        res["msg"] = f"{type(e).__name__}: {e}"
    return res


def parse_spec(s):
    if ":" in s and not os.path.exists(s):
        path, shp = s.rsplit(":", 1)
        return path, [int(v) for v in shp.replace("x", ",").split(",")]
    return s, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--ferrolite", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "ferrolite"))
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dist", choices=["normal", "uniform"], default="uniform")
    ap.add_argument("--work", default=os.path.join(os.path.dirname(__file__), "..", "target", "unseen-io"))
    ap.add_argument("--no-shape-flag", action="store_true",
                    help="do not pass --input-shape to ferrolite even if a shape is given")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for spec in args.models:
        path, shape = parse_spec(spec)
        r = check(path, shape, args)
        rows.append(r)
        rel = "-" if r["rel"] is None else f"{r['rel']:.2e}"
        secs = "-" if r["secs"] is None else f"{r['secs']:.1f}s"
        print(f"{r['model']:<50} {r['status']:<9} {rel:>9} {secs:>7}  {r['msg'].splitlines()[0] if r['msg'] else ''}",
              flush=True)
    print()
    print("| model | input | status | rel err | ref stats | ferrolite time | note |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        rel = "-" if r["rel"] is None else f"{r['rel']:.2e}"
        secs = "-" if r["secs"] is None else f"{r['secs']:.1f}s"
        note = r["msg"].replace("\n", " ⏎ ").replace("|", "\\|")
        shp = "x".join(map(str, r["shape"])) if r["shape"] else "-"
        print(f"| {r['model']} | {shp} | {r['status']} | {rel} | {r['refstat']} | {secs} | {note} |")
    bad = [r for r in rows if r["status"] != "OK"]
    if bad:
        print("\nFull ferrolite messages for failures:")
        for r in bad:
            print(f"--- {r['model']} [{r['status']}]\n{r['msg']}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
