#!/usr/bin/env python3
"""Make the LiteRT (.tflite) peers of the ferrolite benchmark models with onnx2tf, and check them.

  python3 bench/peers/make_tflite.py [--models all|lite0,mnv2,mnv3s,shufflenet,mnv3l]
      [--out target/peers] [--calib ../shared/images/calib] [--count 100]
      [--ferrolite target/release/ferrolite] [--force] [--keep-work] [--no-check]

Writes, for each model NAME (efficientnet_lite0, mobilenet_v2, mobilenet_v3_small,
shufflenet_v2_x1_0, mobilenet_v3_large) into --out (default target/peers/, git-ignored):

  NAME.fp32.tflite       float32 model (NHWC input 1x224x224x3)
  NAME.int8.tflite       onnx2tf `full_integer_quant`: int8 weights (per-channel) and
                         activations, int8 input and int8 output. This is the one the benchmark
                         times: a deployed int8 classifier feeds the camera pixels straight into
                         the int8 input (the input scale/zero-point fold the normalisation), so
                         LiteRT's own benchmark_model of such a deployment runs this variant.
  NAME.int8-fio.tflite   onnx2tf `integer_quant`: the same int8 graph with float input/output
                         (QUANTIZE/DEQUANTIZE at the ends), kept for comparison.
  make_tflite.json       what was checked: fp32 parity with ONNX Runtime, XNNPACK coverage,
                         int8 agreement with fp32 ONNX Runtime on labeled images, timings.

It is re-runnable: models whose .tflite files are newer than their ONNX source are not
converted again (--force redoes them); the checks run every time (--no-check skips them).

How each model is converted (in a fresh temporary folder under --out/work/, removed after
unless --keep-work):
  1. onnxsim simplifies a copy of the ONNX model (onnx2tf fails on ShuffleNetV2 and
     EfficientNet-Lite0 without it: Shape/Gather/Reshape channel shuffle, Pad sub-graphs).
  2. MobileNetV3 only: HardSigmoid (and HardSwish) nodes are rewritten into the exact
     relu6 form, hsig(x) = relu6(6a*x + 6b) * (1/6) (a=1/6, b=1/2: relu6(x+3)/6); left as is,
     onnx2tf emits RELU_0_TO_1, which XNNPACK does not take, so LiteRT splits the graph into
     ~29 XNNPACK partitions with reference kernels in between. For fp32 the constant is exactly
     f32(1/6), so the TFLite converter fuses x*relu6(x+3)/6 into HARD_SWISH (XNNPACK has an
     fp32 HARD_SWISH). For int8 XNNPACK has no HARD_SWISH, so there the constant is the next
     float32 below 1/6 (1 ulp, relative 6e-8: below the rounding of 1/6 itself), which the
     converter's hard-swish pattern (it matches the literal 0.166666666f) does not fuse: the
     int8 graph keeps ADD(+relu6)/MUL/MUL, all of which XNNPACK runs in int8.
     Known exception: mobilenet_v3_large from `ferrolite zoo export` has seeded random
     weights whose activations reach |x| ~ 1000-3000, so the int8 ADD of hsig (input scale
     up to ~15, output [0,6] at scale 6/255) exceeds XNNPACK's input/output scale ratio limit
     (< 256) and ~19 of those ADDs stay outside XNNPACK (20 partitions); the check reports it.
  3. onnx2tf converts it (`-oiqt -qt per-channel -iqd int8 -oqd int8`), calibrating the
     int8 models on the first --count images of --calib with the model's own preprocessing
     (resize shorter side 256 bilinear, center crop 224, NHWC; Lite0: (x-127)/128;
     torchvision models: ImageNet mean/std on x/255), given with `-cind` as a NumPy file.
     onnx2tf also loads a sample file `calibration_image_sample_data_20x128x128x3_float32.npy`
     from its working folder for its own output checks, downloading it when absent; we write
     our own (20 calibration images, 128x128, 0..1) there, and run it with HTTP(S)_PROXY
     pointing at a closed local port so that nothing can be downloaded.

Checks (--no-check skips): fp32 .tflite vs ONNX Runtime on the original ONNX, same seeded
random input (NCHW for ORT, transposed to NHWC for LiteRT): max|diff| / max|ref|; XNNPACK
coverage: with LiteRT's default delegate (XNNPACK) the interpreter must hold exactly one
DELEGATE node, fed only by the graph input (and constants) and producing the graph output,
which means every node of the model runs inside XNNPACK (a node left out would show up as a
second partition or as an intermediate tensor crossing the delegate boundary); plus the time of
one inference with and without XNNPACK (`BUILTIN_WITHOUT_DEFAULT_DELEGATES`); int8: top-1
agreement and logit error vs fp32 ONNX Runtime on the first 10 labeled images.

Needs: pip install --no-deps -r bench/peers/requirements.txt (onnx2tf, tensorflow-cpu,
tf_keras, onnx, onnxsim, onnx_graphsurgeon, sng4onnx, ai-edge-litert, onnxruntime, pillow,
numpy, ...); for mobilenet_v3_large the ferrolite binary (`ferrolite zoo export`).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_models as pm  # noqa: E402

SAMPLE_NPY = "calibration_image_sample_data_20x128x128x3_float32.npy"


def drop_untyped_value_info(model):
    """`ferrolite zoo export` writes its graph output with a name only (no type); onnx's
    checker (and so onnxsim) rejects that. Give such outputs the type shape inference finds,
    and drop untyped value_info entries (they carry nothing)."""
    import onnx
    g = model.graph
    keep = [v for v in g.value_info if v.type.WhichOneof("value") is not None]
    del g.value_info[:]
    g.value_info.extend(keep)
    untyped = [o for o in g.output if o.type.WhichOneof("value") is None]
    if untyped:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        inferred = onnx.shape_inference.infer_shapes(probe).graph.value_info
        types = {v.name: v.type for v in inferred}
        for o in untyped:
            if o.name in types:
                o.type.CopyFrom(types[o.name])


def simplify(src, dst):
    import onnx
    import onnxsim
    model = onnx.load(src)
    drop_untyped_value_info(model)
    simp, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.save(simp, dst)


def rewrite_hard_activations(src, dst, fusable):
    """HardSigmoid(x; a, b) -> Mul(Clip(Add(x*6a, 6b), 0, 6), c) and, unless fusable,
    HardSwish(x) -> Mul(x, that with a=1/6, b=1/2). c = f32(1/6) when fusable (the TFLite
    converter then makes HARD_SWISH of x*hsig(x)), else the next float32 below it (no fusion).
    Returns how many nodes were rewritten."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(src)
    g = model.graph
    sixth = np.float32(1.0 / 6.0)
    if not fusable:
        sixth = np.nextafter(sixth, np.float32(0.0))
    nodes, count = [], 0

    def const(base, tag, value):
        name = f"{base}/{tag}"
        g.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def hsig(base, x, a, b, out):
        if abs(6.0 * a - 1.0) > 1e-6:
            nodes.append(helper.make_node("Mul", [x, const(base, "scale", 6.0 * a)],
                                          [base + "/scaled"], name=base + "/scale"))
            x = base + "/scaled"
        nodes.append(helper.make_node("Add", [x, const(base, "shift", 6.0 * b)],
                                      [base + "/shifted"], name=base + "/shift"))
        nodes.append(helper.make_node("Clip", [base + "/shifted", const(base, "lo", 0.0),
                                               const(base, "hi", 6.0)],
                                      [base + "/relu6"], name=base + "/relu6"))
        nodes.append(helper.make_node("Mul", [base + "/relu6", const(base, "sixth", sixth)],
                                      [out], name=base + "/sixth"))

    for i, n in enumerate(g.node):
        base = f"{n.name or n.output[0]}_hx{i}"
        if n.op_type == "HardSigmoid":
            a = next((at.f for at in n.attribute if at.name == "alpha"), 0.2)
            b = next((at.f for at in n.attribute if at.name == "beta"), 0.5)
            hsig(base, n.input[0], a, b, n.output[0])
            count += 1
        elif n.op_type == "HardSwish" and not fusable:
            hsig(base, n.input[0], 1.0 / 6.0, 0.5, base + "/hsig")
            nodes.append(helper.make_node("Mul", [n.input[0], base + "/hsig"], list(n.output),
                                          name=base + "/hswish"))
            count += 1
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    drop_untyped_value_info(model)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return count


def write_calibration(work, short, calib_dir, count):
    """calib.npy (N,224,224,3 in 0..1) + mean/std literals in 0..1 units for -cind, and our own
    copy of onnx2tf's sample file so that it downloads nothing."""
    import numpy as np
    from PIL import Image
    files = pm.calib_files(calib_dir, count)
    if len(files) < count:
        pm.log(f"note: only {len(files)} calibration images in {calib_dir}")
    if not files:
        raise RuntimeError(f"no calibration images in {calib_dir}")
    data = np.stack([pm.load_pixels(f) / 255.0 for f in files]).astype(np.float32)
    np.save(os.path.join(work, "calib.npy"), data)
    sample = []
    for f in files[:20]:
        img = Image.open(f).convert("RGB").resize((128, 128), Image.BILINEAR)
        sample.append(np.asarray(img, dtype=np.float32) / 255.0)
    while len(sample) < 20:
        sample.append(sample[len(sample) % len(files)])
    np.save(os.path.join(work, SAMPLE_NPY), np.stack(sample).astype(np.float32))
    _, mean, std, _ = pm.MODELS[short]
    lit = lambda v: "[[[[" + ",".join(repr(round(c / 255.0, 8)) for c in v) + "]]]]"
    return lit(mean), lit(std), len(files)


def run_onnx2tf(work, onnx_file, out_sub, extra, logname):
    env = dict(os.environ)
    # Nothing may be downloaded: any HTTP(S) request goes to a closed local port and fails.
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[k] = "http://127.0.0.1:9"
    for k in ("NO_PROXY", "no_proxy"):
        env.pop(k, None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "onnx2tf", "-i", onnx_file, "-o", out_sub, "-n"] + extra
    logf = os.path.join(work, logname)
    with open(logf, "w") as lf:
        lf.write(" ".join(cmd) + "\n")
        lf.flush()
        r = subprocess.run(cmd, cwd=work, env=env, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = open(logf, errors="replace").read().strip().splitlines()[-15:]
        raise RuntimeError(f"onnx2tf failed (exit {r.returncode}); log {logf}:\n  "
                           + "\n  ".join(tail))


def convert(short, src, out_dir, calib_dir, count, keep_work):
    import onnx
    name = pm.full_name(short)
    os.makedirs(os.path.join(out_dir, "work"), exist_ok=True)
    work = tempfile.mkdtemp(prefix=name + "-", dir=os.path.join(out_dir, "work"))
    t0 = time.time()
    info = {}
    try:
        sim = os.path.join(work, "sim.onnx")
        simplify(src, sim)
        mean, std, n_calib = write_calibration(work, short, calib_dir, count)
        info["calib_images"] = n_calib
        in_name = onnx.load(sim, load_external_data=False).graph.input[0].name
        quant = ["-oiqt", "-qt", "per-channel", "-iqd", "int8", "-oqd", "int8",
                 "-cind", in_name, "calib.npy", mean, std]
        ops = {n.op_type for n in onnx.load(sim, load_external_data=False).graph.node}
        if ops & {"HardSigmoid", "HardSwish"}:
            os.makedirs(os.path.join(work, "fp32"))
            os.makedirs(os.path.join(work, "int8"))
            nf = rewrite_hard_activations(sim, os.path.join(work, "fp32", name + ".onnx"), True)
            nq = rewrite_hard_activations(sim, os.path.join(work, "int8", name + ".onnx"), False)
            info["hard_activation_rewrites"] = {"fp32": nf, "int8": nq}
            run_onnx2tf(work, os.path.join("fp32", name + ".onnx"), "tf_fp32", [],
                        "onnx2tf-fp32.log")
            run_onnx2tf(work, os.path.join("int8", name + ".onnx"), "tf_int8", quant,
                        "onnx2tf-int8.log")
            fp32_dir, int8_dir = "tf_fp32", "tf_int8"
        else:
            shutil.copy(sim, os.path.join(work, name + ".onnx"))
            run_onnx2tf(work, name + ".onnx", "tf", quant, "onnx2tf.log")
            fp32_dir = int8_dir = "tf"
        for sub, suffix, dst in ((fp32_dir, "float32", "fp32"),
                                 (int8_dir, "full_integer_quant", "int8"),
                                 (int8_dir, "integer_quant", "int8-fio")):
            f = os.path.join(work, sub, f"{name}_{suffix}.tflite")
            if not os.path.isfile(f):
                raise RuntimeError(f"onnx2tf wrote no {os.path.basename(f)} (see logs in {work})")
            tmp = os.path.join(out_dir, f"{name}.{dst}.tflite.tmp")
            shutil.copy(f, tmp)
            os.replace(tmp, os.path.join(out_dir, f"{name}.{dst}.tflite"))
    except Exception:
        keep_work = True
        raise
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            pm.log(f"{name}: work folder kept: {work}")
    info["convert_s"] = round(time.time() - t0, 1)
    return info


# ---------------------------------------------------------------- checks

def interpreter(path, xnnpack=True, threads=1):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kw = {} if xnnpack else {
        "experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = Interpreter(model_path=path, num_threads=threads, **kw)
    it.allocate_tensors()
    return it


def run_tflite(it, x_float):
    """Feeds float NHWC data (quantized with the input's parameters for int8 inputs) and
    returns the float (dequantized) output."""
    import numpy as np
    d = it.get_input_details()[0]
    if d["dtype"] != np.float32:
        scale, zp = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x_float / scale + zp), info.min, info.max).astype(d["dtype"])
    else:
        x = x_float.astype(np.float32)
    it.set_tensor(d["index"], x)
    it.invoke()
    o = it.get_output_details()[0]
    y = it.get_tensor(o["index"])
    if o["dtype"] != np.float32:
        scale, zp = o["quantization"]
        y = (y.astype(np.float32) - zp) * scale
    return y.reshape(y.shape[0], -1)


def xnnpack_coverage(path):
    import collections
    plain = interpreter(path, xnnpack=False)
    ops = plain._get_ops_details()
    produced = {t for o in ops for t in o["outputs"]}
    deleg = interpreter(path, xnnpack=True)
    dnodes = [o for o in deleg._get_ops_details() if o["op_name"] == "DELEGATE"]
    g_in = {d["index"] for d in deleg.get_input_details()}
    g_out = {d["index"] for d in deleg.get_output_details()}
    whole = False
    if len(dnodes) == 1:
        d_in = {t for t in dnodes[0]["inputs"] if t in produced or t in g_in}
        whole = d_in == g_in and set(dnodes[0]["outputs"]) == g_out
    return {
        "nodes": len(ops),
        "ops": dict(collections.Counter(o["op_name"] for o in ops)),
        "xnnpack_partitions": len(dnodes),
        "whole_graph_in_xnnpack": whole,
    }


def time_invoke(it, runs=20, warmup=3):
    import numpy as np
    for _ in range(warmup):
        it.invoke()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def check(short, src, out_dir):
    import numpy as np
    import onnxruntime as ort
    name = pm.full_name(short)
    _, mean, std, _ = pm.MODELS[short]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    res = {}
    # fp32 parity on a seeded random input
    x = np.random.RandomState(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = sess.run(None, {in_name: x})[0].reshape(1, -1)
    f32 = os.path.join(out_dir, f"{name}.fp32.tflite")
    got = run_tflite(interpreter(f32), x.transpose(0, 2, 3, 1))
    diff = float(np.abs(got - ref).max())
    res["fp32_parity"] = {"max_abs_diff": diff, "max_abs_ref": float(np.abs(ref).max()),
                          "rel": diff / float(np.abs(ref).max())}
    # int8 vs fp32 ONNX Runtime on labeled images
    files = sorted(os.path.join(pm.LABELED_DIR, f) for f in os.listdir(pm.LABELED_DIR)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))[:10]
    for variant in ("int8", "int8-fio"):
        p = os.path.join(out_dir, f"{name}.{variant}.tflite")
        it = interpreter(p)
        agree, rels = 0, []
        for f in files:
            xh = (pm.load_pixels(f) - np.array(mean, np.float32)) / np.array(std, np.float32)
            r = sess.run(None, {in_name: xh.transpose(2, 0, 1)[None]})[0].reshape(1, -1)
            q = run_tflite(it, xh[None])
            agree += int(r.argmax() == q.argmax())
            rels.append(float(np.abs(q - r).max() / np.abs(r).max()))
        d = it.get_input_details()[0]
        res[variant] = {"input_dtype": np.dtype(d["dtype"]).name,
                        "top1_agree_vs_ort_fp32": f"{agree}/{len(files)}",
                        "median_rel_logit_err": float(np.median(rels))}
    # XNNPACK coverage and its effect on time
    for variant in ("fp32", "int8", "int8-fio"):
        p = os.path.join(out_dir, f"{name}.{variant}.tflite")
        cov = xnnpack_coverage(p)
        cov["ms_xnnpack"] = round(time_invoke(interpreter(p, True)), 3)
        cov["ms_without_xnnpack"] = round(time_invoke(interpreter(p, False), runs=5, warmup=1), 3)
        res.setdefault("xnnpack", {})[variant] = cov
    return res


def up_to_date(short, src, out_dir):
    name = pm.full_name(short)
    outs = [os.path.join(out_dir, f"{name}.{v}.tflite") for v in ("fp32", "int8", "int8-fio")]
    return all(os.path.isfile(o) and os.path.getmtime(o) >= os.path.getmtime(src) for o in outs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="all")
    ap.add_argument("--out", default=pm.OUT_DIR)
    ap.add_argument("--calib", default=pm.CALIB_DIR)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--ferrolite", default=pm.FERROLITE)
    ap.add_argument("--force", action="store_true", help="convert again even if up to date")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary folders")
    ap.add_argument("--no-check", action="store_true", help="skip parity/XNNPACK checks")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    report_path = os.path.join(out_dir, "make_tflite.json")
    try:
        report = json.load(open(report_path))
    except (OSError, ValueError):
        report = {}
    failed = []
    t_all = time.time()
    for short in pm.resolve(args.models):
        name = pm.full_name(short)
        src = pm.onnx_path(short, os.path.abspath(args.ferrolite), out_dir)
        if src is None:
            failed.append(name)
            continue
        entry = report.get(name, {})
        try:
            if args.force or not up_to_date(short, src, out_dir):
                pm.log(f"{name}: converting {src}")
                entry.update(convert(short, src, out_dir, args.calib, args.count,
                                     args.keep_work))
                pm.log(f"{name}: converted in {entry['convert_s']} s")
            else:
                pm.log(f"{name}: .tflite files up to date (--force converts again)")
            if not args.no_check:
                entry.update(check(short, src, out_dir))
        except Exception as e:  # one model failing does not stop the others
            pm.log(f"{name}: error: {e}")
            failed.append(name)
            continue
        entry["source"] = src
        report[name] = entry
        json.dump(report, open(report_path, "w"), indent=1)
        if "fp32_parity" in entry:
            p, x8 = entry["fp32_parity"], entry["xnnpack"]
            print(f"{name}: fp32 max|diff|/max|ref| = {p['rel']:.2e} "
                  f"(max|diff| {p['max_abs_diff']:.2e}); int8 top-1 vs ORT fp32 "
                  f"{entry['int8']['top1_agree_vs_ort_fp32']}; XNNPACK partitions "
                  + ", ".join(f"{v} {c['xnnpack_partitions']}"
                              f"{' (whole graph)' if c['whole_graph_in_xnnpack'] else ' (NOT whole)'}"
                              f" {c['ms_xnnpack']} ms vs {c['ms_without_xnnpack']} ms without"
                              for v, c in x8.items()), flush=True)
    pm.log(f"done in {time.time() - t_all:.0f} s; report: {report_path}")
    if failed:
        pm.log(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
