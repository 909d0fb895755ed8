//! Top-1 of the default EfficientNet-Lite0 bundle on the 50 labeled images of
//! `../shared/images/labeled` (ONNX Runtime with PIL preprocessing: 38/50). Skips, saying
//! why, when the shared images are not beside the repo.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repo root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` paths the test needs, or `None` after saying why it skips when one is missing
/// (shared data exists only in the project workplace).
fn shared<const N: usize>(paths: [&str; N]) -> Option<[PathBuf; N]> {
    let full = paths.map(|p| root().join("../shared").join(p));
    match full.iter().find(|p| !p.exists()) {
        Some(missing) => {
            eprintln!(
                "SKIP: {} not found (shared data exists only in the project workplace)",
                missing.display()
            );
            None
        }
        None => Some(full),
    }
}

/// Run the CLI, assert it succeeded, and return its stdout.
fn ferrolite<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> String {
    let args: Vec<S> = args.into_iter().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ferrolite {:?}: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn default_bundle_top1_on_labeled_images() {
    let Some([images, classes]) = shared(["images/labeled", "data/imagenet_classes.tsv"]) else {
        return;
    };
    let wnid_index: HashMap<String, usize> = std::fs::read_to_string(&classes)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some((f.get(1)?.to_string(), f.first()?.parse().ok()?))
        })
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jpg" || e == "jpeg" || e == "png")
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 50);
    let bundle = root().join("models/efficientnet_lite0.flb");
    let mut args = vec!["classify", "--json", "--model", s(&bundle)];
    args.extend(files.iter().map(|f| s(f)));
    let stdout = ferrolite(args);
    let mut top1 = 0;
    let mut top5 = 0;
    for (line, file) in stdout.lines().zip(&files) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let wnid = file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('_')
            .next()
            .unwrap();
        let truth = wnid_index[wnid];
        let ranked: Vec<usize> = v["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["index"].as_u64().unwrap() as usize)
            .collect();
        top1 += usize::from(ranked[0] == truth);
        top5 += usize::from(ranked.contains(&truth));
    }
    eprintln!("top-1 {top1}/50, top-5 {top5}/50");
    // The shipped bundle is the int8 one (issue line: top-1 at least 38/50).
    assert!(top1 >= 38, "top-1 {top1}/50 < 38");
}

/// Convert the shared EfficientNet-Lite0 with its model-card preprocessing and the given
/// extra flags into a temporary bundle named after `tag`.
fn convert_lite0(onnx: &Path, classes: &Path, tag: &str, extra: &[&str]) -> PathBuf {
    let out = std::env::temp_dir().join(format!("ferrolite-{tag}-{}.flb", std::process::id()));
    let mut args = vec![
        "convert",
        s(onnx),
        "-o",
        s(&out),
        "--resize",
        "256",
        "--crop",
        "224",
        "--mean",
        "127,127,127",
        "--std",
        "128,128,128",
        "--labels",
        s(classes),
    ];
    args.extend_from_slice(extra);
    ferrolite(args);
    out
}

/// `ferrolite eval MODEL --json` on the 300 shared images against `reference`.
fn eval_300(
    model: &Path,
    reference: &Path,
    labeled: &Path,
    calib: &Path,
    classes: &Path,
) -> serde_json::Value {
    let out = ferrolite([
        "eval",
        s(model),
        "--images",
        s(labeled),
        s(calib),
        "--classes",
        s(classes),
        "--reference",
        s(reference),
        "--json",
    ]);
    eprintln!("{}: {out}", model.display());
    serde_json::from_str(out.trim()).unwrap()
}

/// The fp16 EfficientNet-Lite0 bundle: at most 52 % of the fp32 bundle and the same top-1
/// as it on at least 99.5 % of the 300 shared images. Skips, saying why, without `../shared`.
#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn fp16_bundle_is_half_the_size_and_agrees_with_fp32() {
    let Some([onnx, labeled, calib, classes]) = shared([
        "models/efficientnet_lite0.onnx",
        "images/labeled",
        "images/calib",
        "data/imagenet_classes.tsv",
    ]) else {
        return;
    };
    let fp32 = convert_lite0(&onnx, &classes, "fp16-ref", &[]);
    let fp16 = convert_lite0(&onnx, &classes, "fp16", &["--precision", "fp16"]);
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(&fp16) / size(&fp32);
    let v = eval_300(&fp16, &fp32, &labeled, &calib, &classes);
    std::fs::remove_file(&fp16).ok();
    std::fs::remove_file(&fp32).ok();
    eprintln!("fp16: {:.1} % of the fp32 bundle", ratio * 100.0);
    assert_eq!(v["images"], 300);
    assert!(
        ratio <= 0.52,
        "fp16 bundle is {:.1} % of fp32",
        ratio * 100.0
    );
    let agreement = v["agreement"].as_f64().unwrap();
    assert!(agreement >= 0.995, "top-1 agreement {agreement}");
    assert!(v["top1"].as_f64().unwrap() >= 37.0 / 50.0, "{v}");
}

/// The int8 EfficientNet-Lite0 bundle calibrated on the first 100 calibration images (the
/// README's workflow, default method): at most 5.0 MB, top-1 at least 38/50 on the labeled
/// images and the same top-1 as the fp32 bundle on at least 95 % of the 300 shared images.
/// Skips, saying why, without `../shared`.
#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn int8_bundle_meets_size_and_accuracy_lines() {
    let Some([onnx, labeled, calib, classes]) = shared([
        "models/efficientnet_lite0.onnx",
        "images/labeled",
        "images/calib",
        "data/imagenet_classes.tsv",
    ]) else {
        return;
    };
    let fp32 = convert_lite0(&onnx, &classes, "int8-ref", &[]);
    let int8 = convert_lite0(
        &onnx,
        &classes,
        "int8",
        &["--precision", "int8", "--calib", s(&calib)],
    );
    let size = std::fs::metadata(&int8).unwrap().len();
    let v = eval_300(&int8, &fp32, &labeled, &calib, &classes);
    std::fs::remove_file(&int8).ok();
    std::fs::remove_file(&fp32).ok();
    eprintln!("int8: {size} bytes");
    assert!(size <= 5_000_000, "int8 bundle is {size} bytes");
    assert_eq!(v["images"], 300);
    assert!(v["top1"].as_f64().unwrap() >= 38.0 / 50.0, "{v}");
    assert!(v["agreement"].as_f64().unwrap() >= 0.95, "{v}");
}
