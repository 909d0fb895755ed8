#!/usr/bin/env python3
"""Random mutation sweep of small ONNX models through `ferrolite convert`.

Builds a few small seed graphs (convolution, pooling, dense, transpose, slice, reshape,
concat, TopK, Expand ...), then mutates them at random — integer attributes, initializer
dimensions and integer values, node inputs, op types, raw bytes of the file — and runs
`ferrolite convert` on each under a time and memory watch. Every run must end in success or
a named error (exit code 1, stderr starting `error:`); a panic (exit 101), a signal, a run
over --timeout seconds or over --max-rss-mb is reported and its file kept under --keep.

    python3 tools/mutate_onnx.py --count 2000 --seed 1
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def model(nodes, inits, in_shape, name):
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def seeds():
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    yield model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Conv", ["r", "dw"], ["d"], group=4, strides=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("MaxPool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("GlobalAveragePool", ["p"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1),
        ],
        [const("w", r(4, 3, 3, 3)), const("b", r(4)), const("dw", r(4, 1, 3, 3)), const("fw", r(5, 4))],
        [1, 3, 8, 8],
        "cnn",
    )
    yield model(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Slice", ["t", "st", "en", "ax", "sp"], ["s"]),
            helper.make_node("Reshape", ["s", "shape"], ["y"]),
        ],
        [
            const("st", [0], np.int64),
            const("en", [4], np.int64),
            const("ax", [1], np.int64),
            const("sp", [2], np.int64),
            const("shape", [1, -1], np.int64),
        ],
        [1, 3, 8, 8],
        "moves",
    )
    yield model(
        [
            helper.make_node("Expand", ["x", "es"], ["e"]),
            helper.make_node("Concat", ["e", "e"], ["c"], axis=1),
            helper.make_node("Softmax", ["c"], ["y"], axis=1),
        ],
        [const("es", [2, 4, 1, 6], np.int64)],
        [1, 4, 1, 6],
        "broadcast",
    )
    yield model(
        [
            helper.make_node("Mul", ["x", "k"], ["m"]),
            helper.make_node("HardSigmoid", ["m"], ["h"], alpha=0.2, beta=0.5),
            helper.make_node("AveragePool", ["h"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Pad", ["a", "pads"], ["y"], mode="reflect"),
        ],
        [const("k", r(1, 3, 1, 1)), const("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)],
        [1, 3, 8, 8],
        "eltwise",
    )
    yield model(
        [
            helper.make_node("Flatten", ["x"], ["f"]),
            helper.make_node("TopK", ["f", "k"], ["y", "i"]),
        ],
        [const("k", [3], np.int64)],
        [1, 3, 2, 2],
        "topk",
    )


INTS = [-(2**31), -(2**40), -7, -2, -1, 0, 1, 2, 3, 5, 7, 64, 1 << 16, 1 << 31, 1 << 40]
OPS = ["Conv", "Relu", "Transpose", "Slice", "Reshape", "Expand", "Gather", "TopK",
       "Concat", "Split", "Squeeze", "Unsqueeze", "Tile", "Resize", "MatMul", "Pad",
       "ConstantOfShape", "Range", "ReduceMean", "Cast"]


def mutate(m, rng):
    """Apply 1-3 random structured mutations in place."""
    g = m.graph
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        if kind == 0 and g.node:
            n = rng.choice(g.node)
            ints = [a for a in n.attribute if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS)]
            if ints:
                a = rng.choice(ints)
                if a.type == onnx.AttributeProto.INT:
                    a.i = rng.choice(INTS)
                elif a.ints:
                    a.ints[rng.randrange(len(a.ints))] = rng.choice(INTS)
                    if rng.random() < 0.3:
                        a.ints.append(rng.choice(INTS))
        elif kind == 1 and g.initializer:
            t = rng.choice(g.initializer)
            if t.dims:
                t.dims[rng.randrange(len(t.dims))] = rng.choice(INTS)
        elif kind == 2 and g.initializer:
            t = rng.choice(g.initializer)
            if t.data_type == TensorProto.INT64 and t.raw_data:
                a = np.frombuffer(t.raw_data, dtype=np.int64).copy()
                if a.size:
                    a[rng.randrange(a.size)] = rng.choice(INTS)
                    t.raw_data = a.tobytes()
        elif kind == 3 and g.node:
            n = rng.choice(g.node)
            names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for x in g.node for o in x.output] + ["ghost"]
            if n.input:
                n.input[rng.randrange(len(n.input))] = rng.choice(names)
        elif kind == 4 and g.node:
            rng.choice(g.node).op_type = rng.choice(OPS)
        elif kind == 5:
            d = g.input[0].type.tensor_type.shape.dim
            if d:
                d[rng.randrange(len(d))].dim_value = rng.choice([0, 1, 2, 3, 100000, 1 << 31])
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ferrolite", default="target/release/ferrolite")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--max-rss-mb", type=int, default=2048)
    ap.add_argument("--keep", default="target/mutations")
    ap.add_argument("--write-seeds", metavar="DIR", help="write the seed models to DIR and stop")
    a = ap.parse_args()
    if a.write_seeds:
        os.makedirs(a.write_seeds, exist_ok=True)
        for m in seeds():
            onnx.save(m, os.path.join(a.write_seeds, m.graph.name + ".onnx"))
        return
    rng = random.Random(a.seed)
    base = list(seeds())
    os.makedirs(a.keep, exist_ok=True)
    tally, slowest, biggest = {}, 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.count):
            m = onnx.ModelProto()
            m.CopyFrom(rng.choice(base))
            data = mutate(m, rng).SerializeToString()
            if rng.random() < 0.15 and data:
                b = bytearray(data)
                for _ in range(rng.randint(1, 4)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                data = bytes(b)
            path = os.path.join(tmp, "m.onnx")
            with open(path, "wb") as f:
                f.write(data)
            cmd = ["/usr/bin/time", "-f", "%M", a.ferrolite, "convert", path, "-o", os.path.join(tmp, "m.flb")]
            start = time.time()
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
                took = time.time() - start
                lines = p.stderr.strip().splitlines()
                rss_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
                err = "\n".join(lines[:-1])
                rc = p.returncode
                if rc == 0:
                    outcome = "ok"
                elif rc == 1 and err.startswith("error: ") and "panicked" not in err:
                    outcome = "error"
                elif rc == 101 or "panicked" in err:
                    outcome = "PANIC"
                else:
                    outcome = f"EXIT {rc}"
            except subprocess.TimeoutExpired:
                took, rss_kb, err, outcome = a.timeout, 0, "", "TIMEOUT"
            if rss_kb > a.max_rss_mb * 1024:
                outcome = "RSS"
            slowest, biggest = max(slowest, took), max(biggest, rss_kb)
            tally[outcome] = tally.get(outcome, 0) + 1
            if outcome not in ("ok", "error"):
                keep = os.path.join(a.keep, f"{outcome.lower().replace(' ', '')}-{a.seed}-{i}.onnx")
                with open(keep, "wb") as f:
                    f.write(data)
                print(f"{outcome}: {keep}: {err[:300]}", file=sys.stderr)
    print(f"{a.count} mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    print(f"slowest {slowest:.2f} s, largest RSS {biggest / 1024:.0f} MB")
    bad = sum(v for k, v in tally.items() if k not in ("ok", "error"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
