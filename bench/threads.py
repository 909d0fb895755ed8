#!/usr/bin/env python3
"""Ferrolite against ONNX Runtime and LiteRT (XNNPACK), fp32 and int8, at 1 and 2 threads.

  python3 bench/threads.py [--models lite0,mnv2,mnv3s,shufflenet,mnv3l] [--precisions fp32,int8]
      [--threads 1,2] [--rounds 7] [--runs 30] [--warmup 5]
      [--ferrolite target/release/ferrolite] [--skip-convert] [--json]

Models (short or full names, or `all`, the default): lite0 = efficientnet_lite0, mnv2 =
mobilenet_v2, mnv3s = mobilenet_v3_small, shufflenet = shufflenet_v2_x1_0 (from
../shared/models) and mnv3l = mobilenet_v3_large (`ferrolite zoo export`, seeded weights).

What it prepares under target/peers/ (reused while newer than their sources; --skip-convert
uses what is there and makes nothing):
  NAME.fp32.flb / NAME.int8.flb  `ferrolite convert` with the model's preprocessing
                                 (--resize 256 --crop 224 --mean/--std in pixel units, --labels;
                                 int8: --precision int8 --calib ../shared/images/calib, first 100)
  NAME.ort-int8.onnx             ONNX Runtime's own static int8 QDQ model (bench/peers/ort_quantize.py,
                                 the same 100 images)
  NAME.fp32.tflite / NAME.int8.tflite   bench/peers/make_tflite.py (onnx2tf; the int8 one has
                                 int8 input and output)

For each (model, precision, threads N) it runs --rounds interleaved rounds (the order of the
three engines rotates from round to round); in each round every engine is a separate process
pinned with taskset (N=1: `taskset -c 1`, the second core; N=2: `taskset -c 0,1`):
  ferrolite    `ferrolite bench X.flb --threads N --runs R --warmup W --json` (plus --cpus with
               the same list when the binary has that option, so it keeps to those cores)
  ONNX Runtime bench/peers/ort_bench.py on the fp32 ONNX (fp32) or the QDQ model (int8)
  LiteRT       bench/peers/litert_bench.py on the matching .tflite
Each prints one JSON line with its median_ms over R timed runs. Table times are the medians over
rounds of those per-round medians; ratios are medians over rounds of the per-round ratios; the
2-thread speedup is (median 1-thread time) / (median 2-thread time) of the same engine.
A cell whose engine cannot run (package missing, file absent, the command fails — e.g. a
ferrolite without multi-threading) reads "n/a", with one "error: ..." or "n/a: ..." line on
stderr saying why, and the run goes on.

Output: the exact command line and the machine (lscpu model name) first, then one markdown table
per precision; with --json one JSON object instead (the same header, every cell with its
per-round values). Needs python3 with numpy; the peers need bench/peers/requirements.txt
(`pip install --no-deps -r bench/peers/requirements.txt`), taskset (util-linux) for pinning.
"""
import argparse
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import peer_models as pm  # noqa: E402

ENGINES = ("ferrolite", "ort", "litert")
ENGINE_NAMES = {"ferrolite": "ferrolite", "ort": "ONNX Runtime", "litert": "LiteRT"}
warned = set()


def warn(msg):
    if msg not in warned:
        warned.add(msg)
        pm.log(msg)


def last_line(text):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"


def newer(path, *sources):
    return os.path.isfile(path) and all(
        not s or not os.path.exists(s) or os.path.getmtime(path) >= os.path.getmtime(s)
        for s in sources)


def lscpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# ---------------------------------------------------------------- preparation

def prepare_ours(short, onnx, precision, ferrolite, out_dir, skip):
    name, mean, std, _ = pm.MODELS[short]
    flb = os.path.join(out_dir, f"{name}.{precision}.flb")
    if not (os.path.isfile(ferrolite) and os.access(ferrolite, os.X_OK)):
        return None, f"{ferrolite} not found (cargo build --release -p ferrolite)"
    if skip or newer(flb, onnx, ferrolite):
        if os.path.isfile(flb):
            return flb, None
        return None, f"{flb} absent (--skip-convert)"
    cmd = [ferrolite, "convert", onnx, "-o", flb, "--resize", str(pm.RESIZE), "--crop",
           str(pm.CROP), "--mean", ",".join(f"{v:g}" for v in mean),
           "--std", ",".join(f"{v:g}" for v in std), "--labels", pm.LABELS]
    if precision == "int8":
        cmd += ["--precision", "int8", "--calib", pm.CALIB_DIR, "--calib-count", "100"]
    pm.log(f"{name}: {' '.join(shlex.quote(c) for c in cmd)}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if os.path.isfile(flb):
            os.remove(flb)
        return None, f"ferrolite convert failed: {last_line(r.stderr or r.stdout)}"
    return flb, None


def prepare_ort(short, onnx, precision, out_dir, skip):
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnxruntime is not installed (pip install -r bench/peers/requirements.txt)"
    if precision == "fp32":
        return onnx, None
    name, mean, std, _ = pm.MODELS[short]
    q = os.path.join(out_dir, f"{name}.ort-int8.onnx")
    if skip or newer(q, onnx):
        return (q, None) if os.path.isfile(q) else (None, f"{q} absent (--skip-convert)")
    cmd = [sys.executable, os.path.join(HERE, "peers", "ort_quantize.py"), onnx, q,
           "--calib", pm.CALIB_DIR, "--count", "100",
           "--mean", ",".join(f"{v:g}" for v in mean), "--std", ",".join(f"{v:g}" for v in std),
           "--resize", str(pm.RESIZE), "--crop", str(pm.CROP)]
    pm.log(f"{name}: ONNX Runtime int8 (QDQ) model -> {q}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not os.path.isfile(q):
        return None, f"ort_quantize.py failed: {last_line(r.stderr or r.stdout)}"
    return q, None


def prepare_litert(short, onnx, precision, ferrolite, out_dir, skip):
    if importlib.util.find_spec("ai_edge_litert") is None:
        return None, "ai-edge-litert is not installed (pip install -r bench/peers/requirements.txt)"
    name = pm.full_name(short)
    f = os.path.join(out_dir, f"{name}.{precision}.tflite")
    if os.path.isfile(f) and (skip or newer(f, onnx)):
        return f, None
    if skip:
        return None, f"{f} absent (--skip-convert; bench/peers/make_tflite.py makes it)"
    if importlib.util.find_spec("onnx2tf") is None:
        return None, f"{f} absent and onnx2tf is not installed"
    pm.log(f"{name}: making the .tflite files (bench/peers/make_tflite.py --models {short})")
    r = subprocess.run([sys.executable, os.path.join(HERE, "peers", "make_tflite.py"),
                        "--models", short, "--out", out_dir, "--ferrolite", ferrolite],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not os.path.isfile(f):
        return None, f"make_tflite.py failed: {last_line(r.stderr)}"
    return f, None


# ---------------------------------------------------------------- running

def run_json(cmd):
    """Runs cmd; returns (parsed last JSON line, None) or (None, why)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "timed out after 900 s"
    except OSError as e:
        return None, str(e)
    if r.returncode != 0:
        return None, f"exit {r.returncode}: {last_line(r.stderr or r.stdout)}"
    for line in reversed(r.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v.get("median_ms"), (int, float)):
                return v, None
    return None, f"printed no JSON with median_ms: {last_line(r.stdout or r.stderr)}"


def median(v):
    return statistics.median(v) if v else None


def fmt(v, digits=2):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="all")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--ferrolite", default=pm.FERROLITE)
    ap.add_argument("--out", default=pm.OUT_DIR, help="where prepared models go")
    ap.add_argument("--skip-convert", action="store_true",
                    help="make no model files: use those already under --out")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = ap.parse_args()
    models = pm.resolve(args.models)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for p in precisions:
        if p not in ("fp32", "int8"):
            ap.error(f"unknown precision {p!r} (fp32, int8)")
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if any(t < 1 for t in threads) or args.rounds < 1 or args.runs < 1:
        ap.error("threads, rounds and runs must be positive")
    ferrolite = os.path.abspath(args.ferrolite)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    ncpu = os.cpu_count() or 1
    taskset = shutil.which("taskset")
    if not taskset:
        warn("n/a: taskset not found (apt-get install util-linux): processes run unpinned")

    def cpus_for(n):
        if n == 1:
            return "1" if ncpu > 1 else "0"
        return ",".join(str(c) for c in range(min(n, ncpu)))

    ours_has_cpus = False
    ours_version = "n/a"
    if os.path.isfile(ferrolite):
        h = subprocess.run([ferrolite, "bench", "--help"], capture_output=True, text=True)
        ours_has_cpus = "--cpus" in h.stdout
        v = subprocess.run([ferrolite, "--version"], capture_output=True, text=True)
        ours_version = v.stdout.strip() or "unknown"

    command = " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable)] + sys.argv)
    machine = lscpu_model()
    header = {"command": command, "machine": machine, "cpus": ncpu,
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "ferrolite": ours_version}
    if not args.json:
        print(f"Command: `{command}`\n")
        print(f"Machine: {machine} ({ncpu} CPUs); {header['date']}\n", flush=True)

    # Prepare every model file first (conversion would disturb the timings otherwise).
    files = {}  # (short, precision, engine) -> (path or None, why)
    for short in models:
        onnx = pm.onnx_path(short, ferrolite, out_dir)
        for prec in precisions:
            if onnx is None:
                for e in ENGINES:
                    files[(short, prec, e)] = (None, "no ONNX model")
                continue
            files[(short, prec, "ferrolite")] = prepare_ours(
                short, onnx, prec, ferrolite, out_dir, args.skip_convert)
            files[(short, prec, "ort")] = prepare_ort(short, onnx, prec, out_dir,
                                                      args.skip_convert)
            files[(short, prec, "litert")] = prepare_litert(
                short, onnx, prec, ferrolite, out_dir, args.skip_convert)
    for (short, prec, e), (path, why) in files.items():
        if path is None:
            warn(f"n/a: {pm.full_name(short)} {prec} {ENGINE_NAMES[e]}: {why}")

    def command_for(engine, path, n):
        pin = [taskset, "-c", cpus_for(n)] if taskset else []
        common = ["--runs", str(args.runs), "--warmup", str(args.warmup)]
        if engine == "ferrolite":
            cmd = pin + [ferrolite, "bench", path, "--threads", str(n)] + common + ["--json"]
            if ours_has_cpus:
                cmd += ["--cpus", cpus_for(n)]
            return cmd
        script = "ort_bench.py" if engine == "ort" else "litert_bench.py"
        return pin + [sys.executable, os.path.join(HERE, "peers", script), path,
                      "--threads", str(n)] + common

    results = []
    versions = {"ferrolite": ours_version}
    for short in models:
        for prec in precisions:
            for n in threads:
                cell = {"model": pm.full_name(short), "precision": prec, "threads": n,
                        "cpus": cpus_for(n), "rounds": {e: [] for e in ENGINES}, "errors": {}}
                live = [e for e in ENGINES if files[(short, prec, e)][0] is not None]
                for e in ENGINES:
                    if e not in live:
                        cell["errors"][e] = "n/a: " + files[(short, prec, e)][1]
                for r in range(args.rounds):
                    order = live[r % len(live):] + live[:r % len(live)] if live else []
                    per_round = {}
                    for e in order:
                        if e in cell["errors"]:
                            continue
                        v, why = run_json(command_for(e, files[(short, prec, e)][0], n))
                        if v is None:
                            cell["errors"][e] = "error: " + why
                            pm.log(f"error: {pm.full_name(short)} {prec} {n}T "
                                   f"{ENGINE_NAMES[e]}: {why}")
                            continue
                        per_round[e] = v["median_ms"]
                        if e != "ferrolite" and "version" in v:
                            versions[e] = v["version"]
                    for e in ENGINES:
                        cell["rounds"][e].append(per_round.get(e))
                ms = {e: median([t for t in cell["rounds"][e] if t is not None]) for e in ENGINES}
                ratios = {}
                for peer in ("ort", "litert"):
                    rr = [a / b for a, b in zip(cell["rounds"]["ferrolite"], cell["rounds"][peer])
                          if a is not None and b is not None]
                    ratios[peer] = median(rr)
                cell["median_ms"] = ms
                cell["ours_over"] = ratios
                results.append(cell)
                if not args.json:
                    pm.log(f"{cell['model']} {prec} {n}T: " + ", ".join(
                        f"{ENGINE_NAMES[e]} {fmt(ms[e])}" for e in ENGINES))

    speedups = []
    for short in models:
        for prec in precisions:
            one = next((c for c in results if c["model"] == pm.full_name(short)
                        and c["precision"] == prec and c["threads"] == 1), None)
            two = next((c for c in results if c["model"] == pm.full_name(short)
                        and c["precision"] == prec and c["threads"] == 2), None)
            if one and two:
                s = {}
                for e in ENGINES:
                    a, b = one["median_ms"][e], two["median_ms"][e]
                    s[e] = a / b if a is not None and b is not None else None
                speedups.append({"model": pm.full_name(short), "precision": prec, "speedup": s})

    if args.json:
        print(json.dumps({**header, "versions": versions, "rounds": args.rounds,
                          "runs": args.runs, "warmup": args.warmup, "results": results,
                          "speedup_2t": speedups}))
        return
    print(f"Versions: ferrolite {versions.get('ferrolite')}, ONNX Runtime "
          f"{versions.get('ort', 'n/a')}, LiteRT {versions.get('litert', 'n/a')} (XNNPACK). "
          f"{args.rounds} interleaved rounds x {args.runs} runs (+{args.warmup} warm-up); "
          f"1 thread pinned to CPU {cpus_for(1)}, N threads to CPUs {cpus_for(2)}.\n")
    for prec in precisions:
        rows = [c for c in results if c["precision"] == prec]
        if not rows:
            continue
        print(f"### {prec}" + (" (ferrolite int8 bundle; ONNX Runtime QDQ; LiteRT full-integer, "
                               "int8 in/out)" if prec == "int8" else "") + "\n")
        print("| model | threads | ferrolite ms | ONNX Runtime ms | LiteRT ms | ours/ORT | ours/LiteRT |")
        print("|---|---|---|---|---|---|---|")
        for c in rows:
            m, q = c["median_ms"], c["ours_over"]
            print(f"| {c['model']} | {c['threads']} | {fmt(m['ferrolite'])} | {fmt(m['ort'])} | "
                  f"{fmt(m['litert'])} | {fmt(q['ort'])} | {fmt(q['litert'])} |")
        sp = [s for s in speedups if s["precision"] == prec]
        if sp:
            print("\n2-thread speedup (1-thread ms / 2-thread ms):\n")
            print("| model | ferrolite | ONNX Runtime | LiteRT |")
            print("|---|---|---|---|")
            for s in sp:
                v = s["speedup"]
                print(f"| {s['model']} | {fmt(v['ferrolite'])} | {fmt(v['ort'])} | "
                      f"{fmt(v['litert'])} |")
        print()


if __name__ == "__main__":
    main()
