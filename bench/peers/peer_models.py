"""The models of the peer harness (bench/threads.py, bench/peers/make_tflite.py) and their
preprocessing, in one place. Imported by those scripts; not run on its own.

Each model has a short name (used on the command line), the ONNX file it comes from and the
per-channel mean/std in pixel units (0..255), as `ferrolite convert --mean/--std` takes them:
the model input is (pixel - mean) / std after resizing the shorter side to 256 (bilinear) and
center-cropping 224 (see ../shared/models/README.md).
"""
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("FERROLITE_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
MODELS_DIR = os.path.join(SHARED, "models")
CALIB_DIR = os.path.join(SHARED, "images", "calib")
LABELED_DIR = os.path.join(SHARED, "images", "labeled")
LABELS = os.path.join(SHARED, "data", "imagenet_classes.tsv")
OUT_DIR = os.path.join(REPO, "target", "peers")
FERROLITE = os.path.join(REPO, "target", "release", "ferrolite")

LITE0_MEAN, LITE0_STD = (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)
TV_MEAN, TV_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
RESIZE, CROP = 256, 224

# short name -> (full name, mean, std, where the ONNX comes from: "shared" or "zoo")
MODELS = {
    "lite0": ("efficientnet_lite0", LITE0_MEAN, LITE0_STD, "shared"),
    "mnv2": ("mobilenet_v2", TV_MEAN, TV_STD, "shared"),
    "mnv3s": ("mobilenet_v3_small", TV_MEAN, TV_STD, "shared"),
    "shufflenet": ("shufflenet_v2_x1_0", TV_MEAN, TV_STD, "shared"),
    "mnv3l": ("mobilenet_v3_large", TV_MEAN, TV_STD, "zoo"),
}
ALIASES = {full: short for short, (full, *_rest) in MODELS.items()}
ALIASES.update({"efficientnet-lite0": "lite0", "shufflenet_v2": "shufflenet",
                "mnv3_small": "mnv3s", "mnv3_large": "mnv3l"})


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def resolve(names):
    """'lite0,mobilenet_v2,all' -> list of short names (order kept, duplicates dropped)."""
    out = []
    for n in (v.strip() for v in names.split(",")):
        if not n:
            continue
        if n == "all":
            keys = list(MODELS)
        elif n in MODELS:
            keys = [n]
        elif n in ALIASES:
            keys = [ALIASES[n]]
        else:
            raise SystemExit(f"unknown model {n!r}; known: {', '.join(MODELS)} (or their full "
                             f"names: {', '.join(m[0] for m in MODELS.values())}, or 'all')")
        out += [k for k in keys if k not in out]
    return out


def full_name(short):
    return MODELS[short][0]


def onnx_path(short, ferrolite=FERROLITE, out_dir=OUT_DIR, wait_s=1800):
    """The fp32 ONNX file of a model. Shared models are read in place; mobilenet_v3_large is
    exported once with `ferrolite zoo export` into out_dir (waiting up to wait_s for the binary,
    which may be being rebuilt). Returns None (and says why on stderr) when it cannot be had."""
    name, _, _, src = MODELS[short]
    if src == "shared":
        p = os.path.join(MODELS_DIR, name + ".onnx")
        if not os.path.isfile(p):
            log(f"{name}: {p} not found")
            return None
        return p
    p = os.path.join(out_dir, name + ".onnx")
    if os.path.isfile(p) and os.path.getsize(p) > 0:
        return p
    os.makedirs(out_dir, exist_ok=True)
    deadline = time.time() + wait_s
    while True:
        if os.path.isfile(ferrolite) and os.access(ferrolite, os.X_OK):
            tmp = p + ".tmp.onnx"
            r = subprocess.run([ferrolite, "zoo", "export", name, "-o", tmp],
                               capture_output=True, text=True)
            if r.returncode == 0 and os.path.isfile(tmp):
                os.replace(tmp, p)
                return p
            why = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            why = f"`{ferrolite} zoo export {name}` failed: {why[0]}"
        else:
            why = f"{ferrolite} is not there (yet)"
        if time.time() >= deadline:
            log(f"{name}: {why}")
            return None
        log(f"{name}: {why}; retrying in 30 s")
        time.sleep(30)


def calib_files(calib_dir=CALIB_DIR, count=100):
    """The first `count` images of calib_dir in path order (the same set `ferrolite convert
    --calib` and ort_quantize.py take)."""
    files = []
    for root, _dirs, names in os.walk(calib_dir):
        files += [os.path.join(root, f) for f in names
                  if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    return sorted(files)[:count]


def load_pixels(path, resize=RESIZE, crop=CROP):
    """HWC float32 RGB pixels 0..255: bilinear resize of the shorter side, center crop (the
    calibration images of make_tflite.py and ort_quantize.py)."""
    import numpy as np
    from PIL import Image
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - crop) // 2, (h - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    return np.asarray(img, dtype=np.float32)


def time_runs(run, warmup, runs):
    """Call `run()` `warmup` times untimed, then `runs` times timed: the latency figures (ms)
    every peer script prints (ort_bench.py, litert_bench.py)."""
    import numpy as np
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return {
        "median_ms": float(np.median(times)),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, int(np.ceil(0.9 * len(times))) - 1)],
        "runs": len(times),
    }


def which(cmd):
    return shutil.which(cmd)
