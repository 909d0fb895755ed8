"""The ferrolite Python package against the ferrolite CLI on the same bundles (the CLI's
output bytes are the reference), plus threads, concurrency, image kinds and every error.

Needs the CLI binary: FERROLITE_BIN, else target/release/ferrolite of this checkout (the
tests that need it skip, saying so, when neither exists).
"""
import json
import os
import subprocess
import threading

import numpy as np
import pytest

import ferrolite

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LITE0_INT8 = os.path.join(ROOT, "models", "efficientnet_lite0.flb")
PANDA = os.path.join(ROOT, "models", "samples", "n02510455_7939_giant_panda.jpg")
DRAGONFLY = os.path.join(ROOT, "models", "samples", "n02268443_604_dragonfly.jpg")


def cli_path():
    path = os.environ.get("FERROLITE_BIN") or os.path.join(ROOT, "target", "release", "ferrolite")
    if not os.path.exists(path):
        pytest.skip(f"the ferrolite CLI is not built ({path}): cargo build --release")
    return path


def cli(*args):
    return subprocess.run([cli_path(), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def fp32_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo") / "mobilenet_v3_small.flb"
    cli("zoo", "export", "mobilenet_v3_small", "-o", str(out))
    return str(out)


def seeded_input(shape, seed=7):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("which", ["int8", "fp32"])
def test_run_equals_the_cli_byte_for_byte(which, fp32_bundle, tmp_path):
    bundle = LITE0_INT8 if which == "int8" else fp32_bundle
    model = ferrolite.Model(bundle)
    x = seeded_input(model.inputs[0].shape)
    np.save(tmp_path / "x.npy", x)
    cli("run", bundle, "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    want = np.load(tmp_path / "y.npy")
    got = model.run(x)
    assert got.dtype == np.float32 and got.shape == tuple(model.outputs[0].shape)
    assert got.tobytes() == want.tobytes()
    named = model.run({model.inputs[0].name: x})
    assert named[model.outputs[0].name].tobytes() == want.tobytes()


def test_classify_equals_the_cli():
    model = ferrolite.Model(LITE0_INT8)
    line = json.loads(cli("classify", "--model", LITE0_INT8, "--json", PANDA).splitlines()[0])
    top = model.classify(PANDA)
    assert [i for i, _, _ in top] == [c["index"] for c in line["top"]]
    assert [label for _, label, _ in top] == [c["label"] for c in line["top"]]
    for (_, _, score), c in zip(top, line["top"]):
        assert np.float32(score) == np.float32(c["score"])
    assert top[0][0] == 388 and top[0][1].startswith("giant panda")


def test_images_as_path_pil_and_array_agree():
    pil = pytest.importorskip("PIL.Image")
    model = ferrolite.Model(LITE0_INT8)
    by_path = model.classify(DRAGONFLY, top=3)
    img = pil.open(DRAGONFLY)
    by_pil = model.classify(img, top=3)
    arr = np.asarray(img.convert("RGB"))
    by_array = model.classify(arr, top=3)
    # PIL decodes JPEG with libjpeg as the path does: the same pixels, the same scores.
    assert by_path == by_pil == by_array
    strided = np.ascontiguousarray(arr[:, ::-1])[:, ::-1]  # a non-contiguous view
    assert model.classify(strided, top=3) == by_path
    assert model.classify_batch([PANDA, DRAGONFLY], top=2) == [
        model.classify(PANDA, top=2),
        model.classify(DRAGONFLY, top=2),
    ]


def test_bytes_dtypes_and_strides_give_the_same_outputs():
    from_path = ferrolite.Model(LITE0_INT8)
    with open(LITE0_INT8, "rb") as f:
        from_bytes = ferrolite.Model(f.read())
    x = seeded_input(from_path.inputs[0].shape)
    y = from_path.run(x)
    assert from_bytes.run(x).tobytes() == y.tobytes()
    assert from_path.run(x.astype(np.float64)).tobytes() == y.tobytes()
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    assert from_path.run(fortran).tobytes() == y.tobytes()


def test_thread_counts_and_python_threads_give_the_same_bytes(fp32_bundle):
    for bundle in (LITE0_INT8, fp32_bundle):
        models = [ferrolite.Model(bundle, threads=n) for n in (1, 2, 3)]
        assert [m.threads for m in models] == [1, 2, 3]
        xs = [seeded_input(models[0].inputs[0].shape, seed) for seed in range(4)]
        want = [models[0].run(x).tobytes() for x in xs]
        for m in models[1:]:
            assert [m.run(x).tobytes() for x in xs] == want
        shared = models[1]
        failures = []

        def worker(k):
            for r in range(10):
                i = (k + r) % len(xs)
                if shared.run(xs[i]).tobytes() != want[i]:
                    failures.append((k, r))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []


def test_properties():
    m = ferrolite.Model(LITE0_INT8, threads=1, cpus="0")
    assert m.precision == "int8" and m.threads == 1
    assert m.isa in ("scalar", "avx2", "avx512", "neon")
    assert len(m.labels) == 1000 and m.labels[388].startswith("giant panda")
    assert m.preprocess["crop"] == [224, 224]
    assert m.inputs[0].shape == [1, 3, 224, 224] and m.outputs[0].shape == [1, 1000]
    assert "efficientnet_lite0" in repr(m)
    assert ferrolite.Model.__doc__ and ferrolite.Model.run.__doc__


def test_errors_are_ferrolite_errors(tmp_path):
    with pytest.raises(ferrolite.NotFoundError) as e:
        ferrolite.Model(str(tmp_path / "missing.flb"))
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ferrolite.Error)
    with pytest.raises(ferrolite.ModelError):
        ferrolite.Model(b"not a bundle")
    bad = tmp_path / "bad.flb"
    bad.write_bytes(open(LITE0_INT8, "rb").read()[:5000])
    with pytest.raises(ferrolite.ModelError):
        ferrolite.Model(str(bad))
    with pytest.raises(ferrolite.InputError, match="threads"):
        ferrolite.Model(LITE0_INT8, threads=0)
    with pytest.raises(ferrolite.InputError, match="cpus|CPU"):
        ferrolite.Model(LITE0_INT8, cpus="zero")
    m = ferrolite.Model(LITE0_INT8)
    with pytest.raises(ferrolite.InputError, match=r"\[1, 3, 224, 224\]"):
        m.run(np.zeros((1, 3, 100, 100), np.float32))
    with pytest.raises(ferrolite.InputError):
        m.run({"wrong name": np.zeros((1, 3, 224, 224), np.float32)})
    with pytest.raises(ferrolite.InputError):
        m.run("a string")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ferrolite.InputError, match="notes.jpg"):
        m.classify(str(text))
    with pytest.raises(ferrolite.NotFoundError):
        m.classify(str(tmp_path / "none.jpg"))
    with pytest.raises(ferrolite.InputError, match="HxWx3"):
        m.classify(np.zeros((10, 10), np.uint8))
    with pytest.raises(ferrolite.InputError):
        m.classify(42)


def test_bench_returns_the_cli_json_keys():
    model = ferrolite.Model(LITE0_INT8, threads=1)
    r = model.bench(runs=3, warmup=1)
    want = json.loads(cli("bench", LITE0_INT8, "--runs", "3", "--warmup", "1", "--threads", "1", "--json"))
    assert list(r) == list(want)
    assert r["runs"] == 3 and r["threads"] == 1 and r["isa"] == model.isa == want["isa"]
    assert r["model"] == want["model"] == model.name
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["max_ms"]
    with pytest.raises(ferrolite.InputError, match="at least one timed run"):
        model.bench(runs=0)


def test_zoo_list_matches_the_cli():
    listed = ferrolite.zoo.list()
    assert listed == json.loads(cli("zoo", "list", "--json"))
    assert {"mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0"} <= {a["name"] for a in listed}


def test_zoo_export_writes_the_cli_onnx_bytes(tmp_path):
    ours, theirs = tmp_path / "py.onnx", tmp_path / "cli.onnx"
    params = ferrolite.zoo.export("mobilenet_v2?width=0.5", ours)
    cli("zoo", "export", "mobilenet_v2?width=0.5", "-o", str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
    full = next(a for a in ferrolite.zoo.list() if a["name"] == "mobilenet_v2")["params"]
    assert 0 < params < full  # width 0.5 has fewer parameters than the reference width
    with pytest.raises(ferrolite.InputError, match="nosuchnet"):
        ferrolite.zoo.export("nosuchnet", tmp_path / "x.onnx")
    with pytest.raises(ferrolite.InputError, match=".onnx"):
        ferrolite.zoo.export("mobilenet_v2", tmp_path / "x.flb")
    with pytest.raises(ferrolite.Error):
        ferrolite.zoo.export("mobilenet_v2", tmp_path / "no" / "such" / "dir" / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


SAMPLES = os.path.join(ROOT, "models", "samples")
# The zoo's preprocessing (ImageNet mean/std), as CLI flags and as keywords.
ZOO_MEAN, ZOO_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
ZOO_FLAGS = ["--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375", "--resize", "73", "--crop", "64"]
ZOO_KEYWORDS = dict(mean=ZOO_MEAN, std=ZOO_STD, resize=73, crop=64)


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "mnv3s.onnx"
    ferrolite.zoo.export("mobilenet_v3_small?resolution=64", path)
    return str(path)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_convert_writes_the_cli_bundle_bytes(precision, small_onnx, tmp_path):
    ours, theirs = tmp_path / "py.flb", tmp_path / "cli.flb"
    extra = dict(calib=SAMPLES, calib_method="minmax", eval=SAMPLES) if precision == "int8" else {}
    seen = []
    report = ferrolite.convert(
        small_onnx, ours, precision=precision, name="net", progress=lambda *a: seen.append(a),
        **ZOO_KEYWORDS, **extra,
    )
    flags = ["--calib", SAMPLES, "--calib-method", "minmax", "--eval", SAMPLES] if precision == "int8" else []
    said = cli("convert", small_onnx, "-o", str(theirs), "--precision", precision, "--name", "net", *ZOO_FLAGS, *flags)
    assert ours.read_bytes() == theirs.read_bytes()
    assert report["precision"] == precision and report["bytes"] == ours.stat().st_size
    assert report["skipped"] == [] and report["path"] == str(ours)
    # The report lines are the CLI's, before its final "wrote ..." line.
    assert report["notes"] == said.splitlines()[:-1]
    model = ferrolite.Model(str(ours))
    assert model.precision == precision and model.preprocess["crop"] == [64, 64]
    if precision == "int8":
        assert report["records"]["calibration"] == {"method": "minmax", "images": 4, "folder": SAMPLES}
        assert report["records"]["int8_vs_fp32"]["images"] == 4
        # minmax is one pass: 4 images loaded then 4 calibrated; the comparison 4 loaded, 8 runs.
        assert [s[0] for s in seen].count("calibrate") == 8 and seen[7] == ("calibrate", 8, 8)
        assert seen[-1] == ("compare", 8, 8)
    else:
        assert seen == []


def test_model_from_onnx_runs_like_the_cli(small_onnx, tmp_path):
    model = ferrolite.Model(small_onnx)
    assert model.precision == "fp32" and model.inputs[0].shape == [1, 3, 64, 64]
    x = seeded_input(model.inputs[0].shape)
    np.save(tmp_path / "x.npy", x)
    cli("run", small_onnx, "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    want = np.load(tmp_path / "y.npy")
    assert model.run(x).tobytes() == want.tobytes()
    from_bytes = ferrolite.Model(open(small_onnx, "rb").read())
    assert from_bytes.run(x).tobytes() == want.tobytes()


def test_convert_skips_unreadable_images_or_stops_when_strict(small_onnx, tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for name in sorted(os.listdir(SAMPLES))[:2]:
        (calib / name).write_bytes(open(os.path.join(SAMPLES, name), "rb").read())
    (calib / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    args = dict(precision="int8", calib=calib, calib_method="minmax", **ZOO_KEYWORDS)
    with pytest.warns(RuntimeWarning, match="1 of 3 images"):
        report = ferrolite.convert(small_onnx, tmp_path / "a.flb", **args)
    assert len(report["skipped"]) == 1 and "broken.jpg" in report["skipped"][0]
    assert report["records"]["calibration"]["images"] == 2
    with pytest.raises(ferrolite.InputError, match="broken.jpg"):
        ferrolite.convert(small_onnx, tmp_path / "b.flb", strict=True, **args)
    assert not (tmp_path / "b.flb").exists()


def test_convert_errors_name_the_keyword(small_onnx, tmp_path):
    out = tmp_path / "out.flb"
    cases = [
        (dict(mean=127.5), ferrolite.InputError, "mean= and std= go together"),
        (dict(mean=[1, 2], std=1), ferrolite.InputError, "mean= takes 1 or 3 values"),
        (dict(mean=0, std=0), ferrolite.InputError, "std= values must be finite"),
        (dict(crop=[1, 2, 3]), ferrolite.InputError, "crop= takes 1 or 2 values"),
        (dict(precision="int4"), ferrolite.InputError, "precision="),
        (dict(precision="int8"), ferrolite.InputError, "calib=DIR is required with precision=int8"),
        (dict(precision="int8", calib=SAMPLES), ferrolite.InputError, "int8 calibration feeds images"),
        (dict(precision="int8", calib=SAMPLES, calib_count=0, **ZOO_KEYWORDS), ferrolite.InputError, "calib_count=0"),
        (dict(precision="int8", calib=SAMPLES, calib_method="best", **ZOO_KEYWORDS), ferrolite.InputError, "minmax"),
        (dict(precision="int8", calib=tmp_path, **ZOO_KEYWORDS), ferrolite.Error, "no JPEG or PNG"),
        (dict(precision="int8", calib=tmp_path / "none", **ZOO_KEYWORDS), ferrolite.NotFoundError, "none"),
        (dict(labels=tmp_path / "labels.txt"), ferrolite.NotFoundError, "labels.txt"),
    ]
    for kwargs, kind, message in cases:
        with pytest.raises(kind, match=message):
            ferrolite.convert(small_onnx, out, **kwargs)
        assert not out.exists()
    with pytest.raises(ferrolite.NotFoundError, match="missing.onnx"):
        ferrolite.convert(tmp_path / "missing.onnx", out)
    with pytest.raises(ferrolite.InputError, match="destroy the input"):
        ferrolite.convert(small_onnx, small_onnx)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 this is no protobuf \xff\xff\xff")
    with pytest.raises(ferrolite.ModelError, match="garbage.onnx"):
        ferrolite.convert(garbage, out)
    with pytest.raises(ferrolite.ModelError, match="read as ONNX"):
        ferrolite.Model(garbage.read_bytes())

    class Stop(Exception):
        pass

    def stop(stage, done, total):
        raise Stop(stage)

    with pytest.raises(Stop, match="calibrate"):
        ferrolite.convert(small_onnx, out, precision="int8", calib=SAMPLES, progress=stop, **ZOO_KEYWORDS)
    assert not out.exists()
