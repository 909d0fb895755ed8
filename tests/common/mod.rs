//! Helpers of the command-line tests: run the binary, expect success or a named error,
//! scratch folders and a small ONNX model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};

/// Run the `ferrolite` binary from the repository root.
pub fn ferrolite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("ferrolite starts")
}

/// Run `ferrolite`, expect success and return its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = ferrolite(args);
    assert!(
        out.status.success(),
        "ferrolite {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run `ferrolite`, expect a failure whose stderr names `expect`, and no panic.
pub fn fails(args: &[&str], expect: &str) {
    let out = ferrolite(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ferrolite {args:?} should fail");
    assert!(
        stderr.contains(expect),
        "ferrolite {args:?}: expected {expect:?} in {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "ferrolite {args:?} panicked: {stderr}"
    );
}

/// A scratch folder of its own for each test (tests run in parallel threads).
pub fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrolite-cli-{}/{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` deterministic values in [-1, 1).
pub fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 97) as f32 / 48.5 - 1.0)
        .collect()
}

/// A small CNN: conv + relu + depthwise + global pool + dense.
pub fn small_cnn(dir: &Path) -> PathBuf {
    let mut b = OnnxBuilder::new();
    let x = b.input("image", &[1, 3, 8, 8]);
    let w = b.constant("w", &[4, 3, 3, 3], values(108));
    let c = b.node("Conv", &[&x, &w], &[("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let r = b.node("Relu", &[&c], &[]);
    let dw = b.constant("dw", &[4, 1, 3, 3], values(36));
    let d = b.node(
        "Conv",
        &[&r, &dw],
        &[("group", Attr::Int(4)), ("strides", Attr::Ints(vec![2, 2]))],
    );
    let p = b.node("GlobalAveragePool", &[&d], &[]);
    let f = b.node("Flatten", &[&p], &[]);
    let fw = b.constant("fw", &[3, 4], values(12));
    let y = b.node("Gemm", &[&f, &fw], &[("transB", Attr::Int(1))]);
    b.output(&y);
    let path = dir.join("small.onnx");
    b.save(&path).unwrap();
    path
}

/// Write `data` of `shape` as an f32 .npy file.
pub fn write_npy(path: &Path, shape: &[u64], data: &[f32]) {
    use npyz::WriterBuilder;
    let f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(shape)
        .writer(f)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Read an f32 .npy file: its shape and values.
pub fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec::<f32>().unwrap())
}
