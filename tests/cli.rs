//! End-to-end tests of the `ferrolite` command line: every command, and bad inputs that
//! must fail with a clear message and a non-zero exit code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, ok, read_npy, s, scratch, small_cnn, values, write_npy};
use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};
use tract_onnx::prelude::*;

#[test]
fn classify_default_model_finds_the_panda() {
    let out = ok(&["classify", "models/samples/n02510455_7939_giant_panda.jpg"]);
    let first = out.lines().nth(1).expect("a ranked line");
    assert!(first.contains("giant panda"), "{out}");
}

#[test]
fn classify_json_lines() {
    let out = ok(&[
        "classify",
        "--json",
        "--top",
        "3",
        "models/samples/n02510455_7939_giant_panda.jpg",
        "models/samples/n07753592_862_banana.jpg",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for v in &lines {
        let top = v["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
        let scores: Vec<f64> = top.iter().map(|t| t["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }
    assert_eq!(
        lines[0]["top"][0]["index"], 388,
        "giant panda is ImageNet class 388"
    );
    assert!(lines[1]["top"][0]["label"]
        .as_str()
        .unwrap()
        .contains("banana"));
}

#[test]
fn classify_bad_inputs() {
    let dir = scratch("classify_bad_inputs");
    let text = dir.join("not_an_image.jpg");
    std::fs::write(&text, "hello").unwrap();
    fails(&["classify", s(&text)], "cannot decode image");
    fails(&["classify", "does/not/exist.jpg"], "cannot open image");
    let model = dir.join("classify-small.flb");
    ok(&["convert", s(&small_cnn(&dir)), "-o", s(&model)]);
    fails(
        &[
            "classify",
            "--model",
            s(&model),
            "models/samples/n07753592_862_banana.jpg",
        ],
        "no image preprocessing",
    );
}

#[test]
fn convert_inspect_run_match_tract() {
    let dir = scratch("convert_inspect_run_match_tract");
    let onnx = small_cnn(&dir);
    let bundle = dir.join("small.flb");
    let out = ok(&[
        "convert",
        s(&onnx),
        "-o",
        s(&bundle),
        "--mean",
        "127",
        "--std",
        "128",
    ]);
    assert!(out.contains("wrote"), "{out}");

    let info = ok(&["inspect", s(&bundle)]);
    for needle in [
        "Conv2d",
        "FullyConnected",
        "arena bytes",
        "MACs",
        "cpu tier",
    ] {
        assert!(info.contains(needle), "inspect lacks {needle}: {info}");
    }
    let info_onnx = ok(&["inspect", s(&onnx)]);
    assert!(info_onnx.contains("Conv2d"));

    let input = values(3 * 64);
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 3, 8, 8], &input);
    for model in [&bundle, &onnx] {
        let y = dir.join("y.npy");
        ok(&["run", s(model), "--input", s(&x), "--output", s(&y)]);
        let (shape, ours) = read_npy(&y);
        assert_eq!(shape, vec![1, 3]);
        let reference = tract_run(&onnx, &[1, 3, 8, 8], &input);
        let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in ours.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-4 * max_ref, "{ours:?} vs {reference:?}");
        }
    }
}

#[test]
fn run_bad_inputs() {
    let dir = scratch("run_bad_inputs");
    let onnx = small_cnn(&dir);
    let x = dir.join("wrong.npy");
    write_npy(&x, &[1, 3, 9, 8], &values(3 * 72));
    let y = dir.join("never.npy");
    fails(
        &["run", s(&onnx), "--input", s(&x), "--output", s(&y)],
        "expects 1x3x8x8",
    );
    assert!(!y.exists());
    let garbage = dir.join("garbage.npy");
    std::fs::write(&garbage, "not numpy").unwrap();
    fails(
        &["run", s(&onnx), "--input", s(&garbage), "--output", s(&y)],
        "not a valid .npy",
    );
    fails(
        &["run", "missing.flb", "--input", s(&x), "--output", s(&y)],
        "cannot open model",
    );
}

#[test]
fn corrupt_and_unsupported_models() {
    let dir = scratch("corrupt_and_unsupported_models");
    let onnx = small_cnn(&dir);
    let bundle = dir.join("corrupt.flb");
    ok(&["convert", s(&onnx), "-o", s(&bundle)]);
    let mut bytes = std::fs::read(&bundle).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&bundle, &bytes).unwrap();
    fails(&["inspect", s(&bundle)], "invalid bundle");
    std::fs::write(&bundle, &bytes[..100]).unwrap();
    fails(&["inspect", s(&bundle)], "invalid bundle");

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 4, 4]);
    let y = b.node("Cos", &[&x], &[]);
    b.output(&y);
    let bad = dir.join("cos.onnx");
    b.save(&bad).unwrap();
    fails(&["convert", s(&bad), "-o", s(&dir.join("cos.flb"))], "Cos");
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, "definitely not protobuf").unwrap();
    fails(&["inspect", s(&junk)], "cannot parse ONNX model");
}

#[test]
fn convert_never_clobbers_on_error() {
    let dir = scratch("convert_never_clobbers_on_error");
    let target = dir.join("keep.flb");
    std::fs::write(&target, "precious").unwrap();
    let junk = dir.join("junk2.onnx");
    std::fs::write(&junk, "nope").unwrap();
    fails(
        &["convert", s(&junk), "-o", s(&target)],
        "cannot parse ONNX model",
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn bench_reports_statistics_profile_and_peer() {
    let dir = scratch("bench_reports_statistics_profile_and_peer");
    let onnx = small_cnn(&dir);
    let out = ok(&[
        "bench",
        s(&onnx),
        "--runs",
        "5",
        "--warmup",
        "1",
        "--json",
        "--compare",
        "tract",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "median_ms",
        "p90_ms",
        "min_ms",
        "tract_median_ms",
        "ratio_vs_tract",
    ] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key} in {out}");
    }
    assert_eq!(v["runs"], 5);
    // By default one thread per big core, on those cores.
    let threads = v["threads"].as_u64().unwrap();
    let cpus = v["cpus"].as_array().unwrap();
    assert!(threads >= 1 && cpus.len() as u64 >= threads, "{out}");
    assert!(v["pinned"].is_boolean(), "{out}");
    assert_eq!(
        v["tract_threads"], threads,
        "tract runs on as many threads: {out}"
    );
    assert!(v["isa"].is_string());
    let min = v["min_ms"].as_f64().unwrap();
    assert!(
        min <= v["median_ms"].as_f64().unwrap()
            && v["median_ms"].as_f64().unwrap() <= v["p90_ms"].as_f64().unwrap()
    );
    let prof = ok(&[
        "bench",
        s(&onnx),
        "--runs",
        "3",
        "--warmup",
        "0",
        "--profile",
    ]);
    for needle in ["Conv2d", "FullyConnected", "GFLOP/s", "share", "median"] {
        assert!(prof.contains(needle), "profile lacks {needle}: {prof}");
    }
    let bundle = dir.join("bench.flb");
    ok(&["convert", s(&onnx), "-o", s(&bundle)]);
    fails(
        &["bench", s(&bundle), "--compare", "tract"],
        "needs the ONNX model",
    );
}

/// `bench --threads N` runs (and reports) N threads, and says where they run.
#[test]
fn bench_reports_its_threads_and_cores() {
    let dir = scratch("bench_reports_its_threads_and_cores");
    let onnx = small_cnn(&dir);
    let json = quick_bench(&["bench", s(&onnx), "--json", "--threads", "2"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["threads"], 2, "{json}");
    assert!(!v["cpus"].as_array().unwrap().is_empty(), "{json}");
    assert!(v["pinned"].is_boolean(), "{json}");
    let text = quick_bench(&["bench", s(&onnx), "--threads", "2", "--cpus", "0"]);
    assert!(
        text.contains("threads: 2 on CPUs 0 (unpinned); topology: "),
        "{text}"
    );
    assert!(text.contains("big core"), "{text}");
    let prof = quick_bench(&["bench", s(&onnx), "--threads", "1", "--profile"]);
    assert!(prof.contains("parts"), "{prof}");
    assert!(prof.contains("threads: 1 on CPUs "), "{prof}");
    let json = quick_bench(&[
        "bench",
        "--zoo",
        "mobilenet_v3_small?resolution=96",
        "--threads",
        "2",
        "--compare",
        "tract",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["threads"], 2, "{json}");
    assert_eq!(v["tract_threads"], 2, "{json}");
    assert!(
        v["models"][0]["tract_median_ms"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    let info = ok(&["inspect", s(&onnx), "--threads", "2", "--cpus", "0"]);
    assert!(info.contains("threads    2 on CPUs 0 (unpinned)"), "{info}");
    assert!(info.contains("parts"), "{info}");
    assert!(info.contains("split steps"), "{info}");
}

/// A bad `--threads` / `--cpus` is an `error:` line (the CPU list parser's own words), not a
/// panic, on every command that runs a model.
#[test]
fn bad_thread_options_fail_clearly() {
    let dir = scratch("bad_thread_options_fail_clearly");
    let onnx = small_cnn(&dir);
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 3, 8, 8], &values(3 * 64));
    let y = dir.join("never.npy");
    let image = "models/samples/n07753592_862_banana.jpg";
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", s(&onnx), "--input", s(&x), "--output", s(&y)],
        vec!["bench", s(&onnx), "--runs", "1"],
        vec!["bench", "--zoo", "mobilenet_v3_small", "--runs", "1"],
        vec!["inspect", s(&onnx)],
        vec!["classify", image],
        vec![
            "eval",
            "models/efficientnet_lite0.flb",
            "--images",
            "models/samples",
        ],
    ];
    for cmd in &commands {
        for (opt, value, expect) in [
            (
                "--threads",
                "0",
                "error: --threads 0: at least one thread is needed",
            ),
            (
                "--cpus",
                "99999",
                "error: --cpus \"99999\": CPU 99999 is above the highest supported CPU",
            ),
            (
                "--cpus",
                "x",
                "error: --cpus \"x\": \"x\" is not a CPU number",
            ),
            ("--cpus", "3-1", "descending range"),
            ("--cpus", "4095", "CPU 4095 is not online"),
        ] {
            let mut args = cmd.clone();
            args.extend([opt, value]);
            fails(&args, expect);
        }
    }
    assert!(!y.exists());
}

/// `run --threads N` writes the same bytes for every N, on an fp32 and an int8 model.
#[test]
fn run_outputs_do_not_depend_on_the_thread_count() {
    let dir = scratch("run_outputs_do_not_depend_on_the_thread_count");
    for (name, model, side) in [
        ("fp32", "zoo:mobilenet_v3_small", 224u64),
        ("int8", "models/efficientnet_lite0.flb", 224),
    ] {
        let x = dir.join(format!("{name}-x.npy"));
        let n = (3 * side * side) as usize;
        write_npy(&x, &[1, 3, side, side], &values(n));
        let mut first: Option<Vec<u8>> = None;
        for threads in ["1", "2", "3", "4"] {
            let y = dir.join(format!("{name}-y{threads}.npy"));
            let args = [
                "run",
                model,
                "--input",
                s(&x),
                "--output",
                s(&y),
                "--threads",
                threads,
            ];
            ok(&args);
            let bytes = std::fs::read(&y).unwrap();
            match &first {
                None => {
                    let (_, v) = read_npy(&y);
                    assert!(v.iter().any(|&v| v != 0.0), "{name}: all zero");
                    first = Some(bytes);
                }
                Some(want) => assert!(
                    &bytes == want,
                    "{name}: --threads {threads} writes other bytes than --threads 1"
                ),
            }
        }
    }
}

/// The numbers of a `bench --zoo` table row: min, median, max ms and GMAC/s.
fn zoo_row_numbers(table: &str, model: &str) -> [f64; 4] {
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(model))
        .unwrap_or_else(|| panic!("no row for {model} in {table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.len(), 9, "row {row:?}");
    assert_eq!(cols[1], "224x224", "input of {row:?}");
    for units in &cols[2..4] {
        let (number, unit) = units.split_at(units.len() - 1);
        assert!(["K", "M", "G"].contains(&unit), "{units} in {row:?}");
        assert!(number.parse::<f64>().unwrap() > 0.0, "{units} in {row:?}");
    }
    let n: Vec<f64> = cols[4..8].iter().map(|c| c.parse().unwrap()).collect();
    [n[0], n[1], n[2], n[3]]
}

/// Run `ferrolite ARGS --runs 1 --warmup 0`: a benchmark smoke run.
fn quick_bench(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--runs", "1", "--warmup", "0"]);
    ok(&all)
}

#[test]
fn bench_zoo_prints_a_table_and_charts_it() {
    let dir = scratch("bench_zoo_prints_a_table_and_charts_it");
    let chart = dir.join("x.svg");
    let models = ["mobilenet_v3_small", "resnet18"];
    let table = quick_bench(&["bench", "--zoo", models[0], models[1], "--plot", s(&chart)]);
    assert!(table.contains("GMAC/s"), "{table}");
    for m in models {
        let [min, median, max, gmacs] = zoo_row_numbers(&table, m);
        assert!(0.0 < min && min <= median && median <= max, "{m}: {table}");
        assert!(gmacs > 0.0, "{m}: {table}");
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    for needle in [
        "<svg",
        "mobilenet_v3_small",
        "resnet18",
        "median latency",
        "fp32",
    ] {
        assert!(svg.contains(needle), "the chart lacks {needle}");
    }

    let json = quick_bench(&[
        "bench",
        "--zoo",
        "mobilenet_v3_small",
        "--precision",
        "int8",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["precision"], "int8");
    assert_eq!(v["models"][0]["model"], "mobilenet_v3_small");
    assert_eq!(v["models"][0]["params"], 2_542_856);
    assert!(v["models"][0]["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["failed"].as_array().unwrap().len(), 0);
}

#[test]
fn bench_profile_plot_and_zoo_peer() {
    let dir = scratch("bench_profile_plot_and_zoo_peer");
    let onnx = small_cnn(&dir);
    let chart = dir.join("profile.svg");
    let out = quick_bench(&["bench", s(&onnx), "--profile", "--plot", s(&chart)]);
    assert!(out.contains("GFLOP/s"), "{out}");
    let svg = std::fs::read_to_string(&chart).unwrap();
    for needle in [
        "time per op kind",
        "time per kernel",
        "Conv2d",
        "FullyConnected",
        "ms per run",
    ] {
        assert!(svg.contains(needle), "the profile chart lacks {needle}");
    }
    let json = quick_bench(&[
        "bench",
        "zoo:mobilenet_v3_small",
        "--compare",
        "tract",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["model"], "zoo:mobilenet_v3_small");
    assert!(v["tract_median_ms"].as_f64().unwrap() > 0.0, "{json}");
}

#[test]
fn bench_zoo_refuses_bad_requests() {
    let dir = scratch("bench_zoo_refuses_bad_requests");
    let onnx = small_cnn(&dir);
    let bundle = dir.join("small.flb");
    ok(&["convert", s(&onnx), "-o", s(&bundle)]);
    let quick = ["--runs", "1", "--warmup", "0"];
    let bench = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["bench".into()];
        v.extend(extra.iter().map(|a| a.to_string()));
        v.extend(quick.iter().map(|a| a.to_string()));
        v
    };
    let fails_with = |extra: &[&str], expect: &str| {
        let args = bench(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, expect);
    };
    fails_with(&["--zoo", s(&bundle)], "is a model file");
    fails_with(&["--zoo", "no_such_net"], "no zoo model named");
    fails_with(&["--zoo", "no_such_net"], "mobilenet_v3_small");
    fails_with(&[s(&bundle), "--zoo"], "not both");
    fails_with(&[], "nothing to benchmark");
    fails_with(
        &["--zoo", "resnet18", "--profile"],
        "--profile measures one model",
    );
    fails_with(
        &[s(&bundle), "--precision", "fp16"],
        "applies to zoo models",
    );
    let unwritable = dir.join("no/such/folder/x.svg");
    fails_with(
        &["--zoo", "mobilenet_v3_small", "--plot", s(&unwritable)],
        "cannot write the chart",
    );
    let png = dir.join("x.png");
    fails_with(&["--zoo", "--plot", s(&png)], "name the file *.svg");
    let chart = dir.join("refused.svg");
    fails_with(&[s(&onnx), "--plot", s(&chart)], "add --profile");
    assert!(
        !chart.exists(),
        "a refused benchmark leaves no chart behind"
    );
    fails_with(&["--zoo", "--threads", "0"], "at least one thread");
    fails_with(&["--zoo", "--cpus", ""], "the CPU list is empty");
}

/// `zoo list` lists the whole zoo with counts; `zoo export` writes ONNX that tract runs and a
/// bundle that `run`-style commands load; `summary` adds up to the zoo's own counts.
#[test]
fn zoo_list_export_and_summary() {
    let dir = scratch("zoo_list_export_and_summary");
    let list = ok(&["zoo", "list"]);
    for name in [
        "alexnet",
        "mobilenet_v2",
        "shufflenet_v1_g8",
        "efficientnet_lite4",
        "vit_tiny_16",
    ] {
        assert!(list.contains(name), "{name} missing from:\n{list}");
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["zoo", "list", "--json"])).unwrap();
    assert_eq!(rows.len(), ferrolite_models::zoo::architectures().len());
    let v3s = rows
        .iter()
        .find(|r| r["name"] == "mobilenet_v3_small")
        .unwrap();
    assert_eq!(v3s["params"], 2_542_856);

    let onnx = dir.join("v3s.onnx");
    ok(&[
        "zoo",
        "export",
        "mobilenet_v3_small?resolution=96",
        "-o",
        s(&onnx),
    ]);
    let input: Vec<f32> = (0..3 * 96 * 96)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    let reference = tract_run(&onnx, &[1, 3, 96, 96], &input);
    assert_eq!(reference.len(), 1000);
    let bundle = dir.join("v3s.flb");
    ok(&[
        "zoo",
        "export",
        "mobilenet_v3_small?resolution=96",
        "-o",
        s(&bundle),
    ]);
    let inspect = ok(&["inspect", s(&bundle)]);
    assert!(inspect.contains("zoo:mobilenet_v3_small?resolution=96"));
    // One count everywhere: inspect and summary of the bundle print the zoo's figures.
    let zoo96 = ferrolite_models::zoo::find("mobilenet_v3_small?resolution=96")
        .unwrap()
        .count();
    let summary_text = ok(&["summary", s(&bundle)]);
    for (what, n) in [("parameters", zoo96.params), ("MACs", zoo96.macs)] {
        let line = |text: &str| {
            text.lines()
                .find(|l| l.starts_with(what))
                .map(str::to_string)
                .unwrap_or_default()
        };
        for (command, text) in [("inspect", &inspect), ("summary", &summary_text)] {
            assert!(
                line(text).contains(&format!("({n})")),
                "{command}: {what} {n} not in {:?}",
                line(text)
            );
        }
    }

    let summary: serde_json::Value =
        serde_json::from_str(&ok(&["summary", "zoo:squeezenet1_1", "--json"])).unwrap();
    let counted = ferrolite_models::zoo::find("squeezenet1_1")
        .unwrap()
        .count();
    assert_eq!(summary["params"], counted.params);
    assert_eq!(summary["macs"], counted.macs);
    assert!(summary["peak_arena_bytes"].as_u64().unwrap() > 0);
    let text = ok(&["summary", s(&bundle)]);
    assert!(
        text.contains("peak arena") && text.contains("Conv2d"),
        "{text}"
    );

    fails(
        &["zoo", "export", "nope", "-o", s(&onnx)],
        "no zoo model named",
    );
    fails(
        &["zoo", "export", "resnet18", "-o", s(&dir.join("x.txt"))],
        ".onnx or .flb",
    );
    fails(
        &["zoo", "export", "resnet18?width=2", "-o", s(&onnx)],
        "fixed width",
    );
    fails(&["summary", "zoo:vgg16?resolution=160"], "fixed resolution");
}

/// A pointwise-heavy model whose weights have large fan-ins (so fp16 stores them as half).
fn wide_pointwise(dir: &Path, name: &str, round: fn(f32) -> f32) -> PathBuf {
    let w: Vec<f32> = values(128 * 64).into_iter().map(round).collect();
    let fw: Vec<f32> = values(10 * 128).into_iter().map(round).collect();
    let mut b = OnnxBuilder::new();
    let x = b.input("image", &[1, 64, 6, 6]);
    let w = b.constant("w", &[128, 64, 1, 1], w);
    let c = b.node("Conv", &[&x, &w], &[]);
    let r = b.node("Relu", &[&c], &[]);
    let p = b.node("GlobalAveragePool", &[&r], &[]);
    let f = b.node("Flatten", &[&p], &[]);
    let fw = b.constant("fw", &[10, 128], fw);
    let y = b.node("Gemm", &[&f, &fw], &[("transB", Attr::Int(1))]);
    b.output(&y);
    let path = dir.join(name);
    b.save(&path).unwrap();
    path
}

fn tract_run(onnx: &Path, shape: &[usize], input: &[f32]) -> Vec<f32> {
    tract_onnx::onnx()
        .model_for_path(onnx)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap()
        .run(tvec![Tensor::from_shape(shape, input).unwrap().into()])
        .unwrap()[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn convert_fp16_halves_the_weights_and_matches_rounded_weights() {
    let dir = scratch("convert_fp16_halves_the_weights_and_matches_rounded_weights");
    let onnx = wide_pointwise(&dir, "wide.onnx", |v| v);
    // The same network with every weight rounded to half precision: what an fp16 bundle
    // must compute exactly (up to f32 summation order).
    let rounded = wide_pointwise(&dir, "wide_rounded.onnx", |v| {
        half::f16::from_f32(v).to_f32()
    });
    let (b32, b16) = (dir.join("w32.flb"), dir.join("w16.flb"));
    ok(&["convert", s(&onnx), "-o", s(&b32)]);
    let out = ok(&["convert", s(&onnx), "-o", s(&b16), "--precision", "fp16"]);
    assert!(out.contains("precision fp16"), "{out}");
    let (n32, n16) = (
        std::fs::metadata(&b32).unwrap().len(),
        std::fs::metadata(&b16).unwrap().len(),
    );
    // 9472 weights: 37.9 KB as f32, 18.9 KB as f16; the rest of the bundle is shared.
    assert!(n32 - n16 >= 18_000, "fp32 {n32} B, fp16 {n16} B");
    assert!(ok(&["inspect", s(&b16)]).contains("precision  fp16"));

    let input = values(64 * 36);
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 64, 6, 6], &input);
    let y = dir.join("y.npy");
    ok(&["run", s(&b16), "--input", s(&x), "--output", s(&y)]);
    let (_, ours) = read_npy(&y);
    let exact = tract_run(&rounded, &[1, 64, 6, 6], &input);
    let fp32 = tract_run(&onnx, &[1, 64, 6, 6], &input);
    let max_ref = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in ours.iter().zip(&exact) {
        assert!((a - b).abs() <= 1e-5 * max_ref, "{ours:?} vs {exact:?}");
    }
    assert_ne!(exact, fp32, "rounding to f16 must change something");
    fails(
        &["convert", s(&onnx), "-o", s(&b16), "--precision", "int4"],
        "invalid value 'int4'",
    );
}

#[test]
fn eval_reports_accuracy_and_agreement() {
    let dir = scratch("eval_reports_accuracy_and_agreement");
    let classes = dir.join("classes.tsv");
    std::fs::write(
        &classes,
        "index\twnid\tname\n319\tn02268443\tdragonfly\n388\tn02510455\tgiant panda\n\
         920\tn06874185\ttraffic light\n954\tn07753592\tbanana\n",
    )
    .unwrap();
    let samples = "models/samples";
    // Independent count: classify's top-1 index against the class list.
    let truth = [
        ("n02268443", 319),
        ("n02510455", 388),
        ("n06874185", 920),
        ("n07753592", 954),
    ];
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(samples))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    files.sort();
    let mut args = vec!["classify", "--json", "--top", "1"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let mut hits = 0;
    for (line, file) in ok(&args).lines().zip(&files) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        let want = truth.iter().find(|(w, _)| name.starts_with(w)).unwrap().1;
        hits += usize::from(v["top"][0]["index"] == want);
    }

    let bundle = "models/efficientnet_lite0.flb";
    let out = ok(&[
        "eval",
        bundle,
        "--images",
        samples,
        "--classes",
        s(&classes),
        "--reference",
        bundle,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["images"], 4, "{out}");
    assert_eq!(v["labeled"], 4, "{out}");
    assert_eq!(v["top1"].as_f64().unwrap(), hits as f64 / 4.0, "{out}");
    assert!(v["top5"].as_f64().unwrap() >= v["top1"].as_f64().unwrap());
    assert_eq!(v["agreement"].as_f64(), Some(1.0), "{out}");

    // Sub-folder labels matched to the class list, images without a known label.
    let folders = dir.join("folders");
    std::fs::create_dir_all(folders.join("banana")).unwrap();
    std::fs::create_dir_all(folders.join("unknown")).unwrap();
    let banana = files
        .iter()
        .find(|f| f.to_str().unwrap().contains("banana"))
        .unwrap();
    std::fs::copy(banana, folders.join("banana/a.jpg")).unwrap();
    std::fs::copy(banana, folders.join("unknown/b.jpg")).unwrap();
    let text = ok(&[
        "eval",
        bundle,
        "--images",
        s(&folders),
        "--classes",
        s(&classes),
    ]);
    assert!(text.contains("2 images, 1 with a known label"), "{text}");
    assert!(!text.contains("agreement"), "{text}");

    // Bad inputs.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &["eval", bundle, "--images", s(&empty)],
        "no JPEG or PNG images",
    );
    fails(
        &["eval", bundle, "--images", s(&dir.join("missing"))],
        "cannot read image folder",
    );
    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("n07753592_1.jpg"), b"not a jpeg").unwrap();
    fails(&["eval", bundle, "--images", s(&broken)], "n07753592_1.jpg");
    fails(
        &[
            "eval",
            bundle,
            "--images",
            samples,
            "--classes",
            s(&dir.join("none.tsv")),
        ],
        "cannot read class list",
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    // A reader that goes away at once (`ferrolite inspect m.flb | head -0`): the write
    // fails with a broken pipe, which must end the command quietly, not in a panic.
    for args in [
        &["inspect", "models/efficientnet_lite0.flb"][..],
        &["classify", "models/samples/n07753592_862_banana.jpg"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {stderr}");
    }
}

#[test]
fn convert_int8_calibrates_on_images_and_records_it() {
    let dir = scratch("convert_int8_calibrates_on_images_and_records_it");
    let onnx = small_cnn(&dir);
    let bundle = dir.join("small-int8.flb");
    let pre = [
        "--resize", "8", "--crop", "8", "--mean", "127", "--std", "128",
    ];
    let mut args = vec!["convert", s(&onnx), "-o", s(&bundle), "--precision", "int8"];
    args.extend_from_slice(&pre);
    args.extend_from_slice(&["--calib", "models/samples", "--eval", "models/samples"]);
    let out = ok(&args);
    assert!(out.contains("int8 vs fp32 on 4 images"), "{out}");
    assert!(out.contains("precision int8"), "{out}");
    let text = ok(&["inspect", s(&bundle)]);
    for want in [
        "precision  int8",
        "qs8_gemm::",
        "qs8_dwconv::",
        "calibration: folder models/samples, images 4, method percentile",
        "int8_sqnr_db:",
        "int8_vs_fp32: agreement",
    ] {
        assert!(text.contains(want), "{want:?} missing from\n{text}");
    }
    let out = ok(&[
        "classify",
        "--model",
        s(&bundle),
        "--json",
        "models/samples/n07753592_862_banana.jpg",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["top"].as_array().unwrap().len(), 3);

    // Calibration needs --calib, only with int8, and a folder with images in it.
    let mut no_calib = vec!["convert", s(&onnx), "-o", s(&bundle), "--precision", "int8"];
    no_calib.extend_from_slice(&pre);
    fails(&no_calib, "--calib DIR is required");
    fails(
        &[
            "convert",
            s(&onnx),
            "-o",
            s(&bundle),
            "--calib",
            "models/samples",
        ],
        "only used with it",
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut args = vec!["convert", s(&onnx), "-o", s(&bundle), "--precision", "int8"];
    args.extend_from_slice(&pre);
    args.extend_from_slice(&["--calib", s(&empty)]);
    fails(&args, "no JPEG or PNG images");
    // Without preprocessing there is no way to feed calibration images.
    fails(
        &[
            "convert",
            s(&onnx),
            "-o",
            s(&bundle),
            "--precision",
            "int8",
            "--calib",
            "models/samples",
        ],
        "give the preprocessing",
    );
}

/// A small QDQ model as ONNX Runtime's quantizer writes them: u8 activation pairs, an int8
/// per-channel convolution weight, an int32 bias.
fn small_qdq(dir: &Path) -> PathBuf {
    let mut b = OnnxBuilder::new();
    let x = b.input("image", &[1, 3, 8, 8]);
    let s = b.constant("s_in", &[], vec![2.0 / 255.0]);
    let z = b.constant_u8("z_in", &[], vec![128]);
    let xq = b.node("QuantizeLinear", &[&x, &s, &z], &[]);
    let x = b.node("DequantizeLinear", &[&xq, &s, &z], &[]);
    let wq = b.constant_i8(
        "wq",
        &[4, 3, 3, 3],
        (0..108)
            .map(|i: i32| ((i * 37) % 255 - 127) as i8)
            .collect(),
    );
    let ws = b.constant("ws", &[4], vec![0.001, 0.002, 0.003, 0.004]);
    let wz = b.constant_i8("wz", &[4], vec![0; 4]);
    let w = b.node(
        "DequantizeLinear",
        &[&wq, &ws, &wz],
        &[("axis", Attr::Int(0))],
    );
    let bq = b.constant_i32("bq", &[4], vec![100, -200, 300, -400]);
    let bs = b.constant(
        "bs",
        &[4],
        [0.001f32, 0.002, 0.003, 0.004]
            .iter()
            .map(|w| w * (2.0 / 255.0))
            .collect(),
    );
    let bz = b.constant_i32("bz", &[4], vec![0; 4]);
    let bias = b.node(
        "DequantizeLinear",
        &[&bq, &bs, &bz],
        &[("axis", Attr::Int(0))],
    );
    let c = b.node(
        "Conv",
        &[&x, &w, &bias],
        &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
    );
    let so = b.constant("s_out", &[], vec![0.01]);
    let zo = b.constant_u8("z_out", &[], vec![0]);
    let cq = b.node("QuantizeLinear", &[&c, &so, &zo], &[]);
    let c = b.node("DequantizeLinear", &[&cq, &so, &zo], &[]);
    let p = b.node("GlobalAveragePool", &[&c], &[]);
    let pq = b.node("QuantizeLinear", &[&p, &so, &zo], &[]);
    let p = b.node("DequantizeLinear", &[&pq, &so, &zo], &[]);
    let f = b.node("Flatten", &[&p], &[]);
    b.output(&f);
    let path = dir.join("small_qdq.onnx");
    b.save(&path).unwrap();
    path
}

#[test]
fn convert_imports_qdq_models_to_int8() {
    let dir = scratch("convert_imports_qdq_models_to_int8");
    let onnx = small_qdq(&dir);
    let flb = dir.join("q.flb");
    let out = ok(&[
        "convert",
        s(&onnx),
        "-o",
        s(&flb),
        "--mean",
        "127",
        "--std",
        "128",
    ]);
    assert!(
        out.contains("QDQ model: 3 activation quantizations and 1 int8 weights"),
        "{out}"
    );
    assert!(out.contains("precision int8"), "{out}");
    let info = ok(&["inspect", s(&flb)]);
    assert!(
        info.contains("precision  int8") && info.contains("source onnx qdq"),
        "{info}"
    );
    // Same as --precision int8 (which needs no --calib here).
    let flb8 = dir.join("q8.flb");
    ok(&["convert", s(&onnx), "-o", s(&flb8), "--precision", "int8"]);
    let input = values(3 * 64);
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 3, 8, 8], &input);
    let y = dir.join("y.npy");
    ok(&["run", s(&flb), "--input", s(&x), "--output", s(&y)]);
    let (shape, ours) = read_npy(&y);
    assert_eq!(shape, [1, 4]);
    // tract runs the QDQ model in float; the pooled output is rounded to 8 bits there only.
    let reference = tract_run(&onnx, &[1, 3, 8, 8], &input);
    for (a, b) in ours.iter().zip(&reference) {
        assert!((a - b).abs() <= 0.015, "{ours:?} vs {reference:?}");
    }
    for p in ["fp32", "fp16"] {
        fails(
            &["convert", s(&onnx), "-o", s(&flb), "--precision", p],
            "quantized (QDQ) ONNX model",
        );
    }
    fails(
        &["convert", s(&onnx), "-o", s(&flb), "--calib", s(&dir)],
        "--calib would be ignored",
    );
    fails(
        &["convert", s(&onnx), "-o", s(&flb), "--eval", s(&dir)],
        "--eval feeds images",
    );
}

#[test]
fn eval_matches_wordnet_ids_kept_from_a_labels_tsv_and_warns_when_none_match() {
    let dir = scratch("eval_wordnet_ids");
    let onnx = small_cnn(&dir);
    let tsv = dir.join("classes.tsv");
    std::fs::write(
        &tsv,
        "index\twnid\tname\n0\tn00000001\tcat\n1\tn00000002\tdog\n2\tn00000003\tbird\n",
    )
    .unwrap();
    let bundle = dir.join("labeled.flb");
    ok(&[
        "convert",
        s(&onnx),
        "-o",
        s(&bundle),
        "--labels",
        s(&tsv),
        "--resize",
        "8",
        "--crop",
        "8",
        "--mean",
        "127",
        "--std",
        "128",
    ]);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for (i, name) in ["n00000001_1.png", "n00000002_7.png", "unlabeled.png"]
        .iter()
        .enumerate()
    {
        image::RgbImage::from_pixel(9, 9, image::Rgb([40 * i as u8, 90, 200]))
            .save(images.join(name))
            .unwrap();
    }
    let out = ok(&["eval", s(&bundle), "--images", s(&images)]);
    assert!(out.contains("3 images, 2 with a known label"), "{out}");
    let plain = dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::copy(images.join("unlabeled.png"), plain.join("x.png")).unwrap();
    let run = common::ferrolite(&["eval", s(&bundle), "--images", s(&plain)]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("warning: no image has a label"), "{err}");
}
