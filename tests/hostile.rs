//! Hostile and broken inputs, as a new user met them: each must end in a named error
//! (`error: …`, exit code 1) — or, for the long chain, a result — quickly and in little
//! memory, never a panic, a hang or an out-of-memory kill; and nothing the user had is
//! overwritten. Every case here once failed one of those.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, s, scratch, small_cnn, values};
use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};

/// Longest a hostile case may take (the acceptance line is 1 s on an idle machine; tests
/// run in parallel here, so this leaves room).
const LIMIT: Duration = Duration::from_secs(5);

/// Largest resident memory any child of this test binary may reach.
const MAX_RSS_BYTES: i64 = 200 << 20;

/// Run `ferrolite args`, kill it if it outlives [`LIMIT`], and return (exit code, stderr).
fn run_bounded(args: &[&str]) -> (Option<i32>, String) {
    run_bounded_with(args, &[])
}

/// [`run_bounded`] with environment variables set.
fn run_bounded_with(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferrolite starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert_max_rss();
            return (status.code(), err);
        }
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ferrolite {args:?} ran over {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The largest child so far stayed under [`MAX_RSS_BYTES`] (getrusage of waited children).
fn assert_max_rss() {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    let rss = usage.max_rss() * 1024;
    assert!(
        rss < MAX_RSS_BYTES,
        "a ferrolite child reached {} MB of resident memory",
        rss >> 20
    );
}

/// Expect exit code 1 with `error:` and `expect` on stderr, and no panic.
fn refused(args: &[&str], expect: &str) -> String {
    let (code, err) = run_bounded(args);
    assert_eq!(
        code,
        Some(1),
        "ferrolite {args:?}: exit code {code:?}: {err}"
    );
    assert!(err.starts_with("error: "), "ferrolite {args:?}: {err}");
    assert!(
        err.contains(expect),
        "ferrolite {args:?}: expected {expect:?} in {err}"
    );
    assert!(!err.contains("panicked"), "ferrolite {args:?}: {err}");
    err
}

/// A 16x16 JPEG whose frame header is patched to claim `width` x `height` pixels.
fn lying_jpeg(path: &Path, width: u16, height: u16, progressive: bool) {
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([120, 30, 200]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .encode_image(&img)
        .unwrap();
    let mut i = 2;
    while i + 9 < bytes.len() {
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xC0 || marker == 0xC2 {
            bytes[i + 5..i + 7].copy_from_slice(&height.to_be_bytes());
            bytes[i + 7..i + 9].copy_from_slice(&width.to_be_bytes());
            if progressive {
                bytes[i + 1] = 0xC2;
            }
            std::fs::write(path, &bytes).unwrap();
            return;
        }
        i += 2 + len;
    }
    panic!("the encoder wrote no frame header");
}

/// A one-node ONNX model on a 1x3x4x4 input (plus constants made by `extra`).
fn one_node(
    dir: &Path,
    name: &str,
    op: &str,
    attrs: &[(&str, Attr)],
    extra: impl FnOnce(&mut OnnxBuilder) -> Vec<String>,
) -> PathBuf {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 4, 4]);
    let mut inputs = vec![x];
    inputs.extend(extra(&mut b));
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let y = b.node(op, &refs, attrs);
    b.output(&y);
    let path = dir.join(format!("{name}.onnx"));
    b.save(&path).unwrap();
    path
}

#[test]
fn images_claiming_huge_sizes_are_refused_before_decoding() {
    let dir = scratch("hostile_images");
    for (name, w, h, progressive) in [
        ("huge.jpg", 65000, 65000, false),
        ("huge-progressive.jpg", 65000, 65000, true),
        ("big.jpg", 20000, 20000, false),
    ] {
        let p = dir.join(name);
        lying_jpeg(&p, w, h, progressive);
        assert!(std::fs::metadata(&p).unwrap().len() < 1000);
        let err = refused(&["classify", s(&p)], "megapixels");
        assert!(err.contains("FERROLITE_MAX_IMAGE_PIXELS"), "{err}");
    }
}

#[test]
fn a_batch_goes_on_past_a_bad_file_and_fails_at_the_end() {
    let dir = scratch("hostile_batch");
    let good = dir.join("good.png");
    image::RgbImage::from_pixel(40, 30, image::Rgb([10, 200, 30]))
        .save(&good)
        .unwrap();
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).unwrap();
    let again = dir.join("again.png");
    std::fs::copy(&good, &again).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(["classify", s(&good), s(&broken), s(&again)])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("good.png") && stdout.contains("again.png"),
        "{stdout}"
    );
    assert!(
        stderr.contains("broken.jpg") && stderr.contains("1 of 3 images"),
        "{stderr}"
    );
    let strict = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(["classify", "--strict", s(&good), s(&broken), s(&again)])
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&strict.stdout).contains("again.png"));
}

#[test]
fn onnx_attributes_tract_would_choke_on_are_named_errors() {
    let dir = scratch("hostile_onnx");
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            one_node(
                &dir,
                "perm",
                "Transpose",
                &[("perm", Attr::Ints(vec![0, 0, 1, 2]))],
                |_| vec![],
            ),
            "perm [0, 0, 1, 2] is not a permutation",
        ),
        (
            one_node(
                &dir,
                "strides",
                "Conv",
                &[("strides", Attr::Ints(vec![0, 0]))],
                |b| vec![b.constant("w", &[2, 3, 1, 1], values(6))],
            ),
            "strides [0, 0] must be positive",
        ),
        (
            one_node(&dir, "slice", "Slice", &[], |b| {
                vec![
                    b.constant_i64("starts", vec![0]),
                    b.constant_i64("ends", vec![2]),
                    b.constant_i64("axes", vec![3]),
                    b.constant_i64("steps", vec![0]),
                ]
            }),
            "steps [0] contain 0",
        ),
        (
            one_node(&dir, "expand", "Expand", &[], |b| {
                vec![b.constant_i64("shape", vec![1 << 31, 1 << 31, 4, 4])]
            }),
            "over the memory limit",
        ),
        (
            // Found by the onnx fuzz target: empty, but with a 2^58 dimension tract walks
            // through when it folds the model (3.5 s for 188 bytes).
            one_node(&dir, "expand_empty", "Expand", &[], |b| {
                vec![b.constant_i64("shape", vec![1 << 58, 0, 4, 4])]
            }),
            "an empty dimension counted as 1",
        ),
    ];
    for (model, expect) in &cases {
        let out = dir.join("out.flb");
        refused(&["convert", s(model), "-o", s(&out)], expect);
        assert!(!out.exists());
    }
}

#[test]
fn unsupported_operators_are_named_as_the_onnx_file_names_them() {
    let dir = scratch("hostile_unsupported");
    let resize = one_node(
        &dir,
        "resize",
        "Resize",
        &[("mode", Attr::Str("nearest".into()))],
        |b| {
            vec![
                String::new(),
                b.constant("scales", &[4], vec![1.0, 1.0, 2.0, 2.0]),
            ]
        },
    );
    let err = refused(
        &["convert", s(&resize), "-o", s(&dir.join("r.flb"))],
        "ONNX node \"resize_1\" (Resize, input shapes 1x3x4x4): not supported",
    );
    assert!(!err.contains("scales"), "no tract internals: {err}");
    assert_eq!(
        err.matches("resize.onnx").count(),
        1,
        "the file named once: {err}"
    );
}

#[test]
fn an_input_shape_that_does_not_fit_names_the_node() {
    let dir = scratch("hostile_input_shape");
    let reshape = one_node(&dir, "reshape", "Reshape", &[], |b| {
        vec![b.constant_i64("to", vec![1, 48])]
    });
    let err = refused(
        &[
            "convert",
            s(&reshape),
            "-o",
            s(&dir.join("r.flb")),
            "--input-shape",
            "1,3,5,5",
        ],
        "--input-shape 1,3,5,5 does not fit this model: ONNX node \"reshape_1\" (Reshape)",
    );
    assert!(!err.contains("Val("), "{err}");
}

#[test]
fn dangling_outputs_negative_k_and_cycles_are_named_errors() {
    let dir = scratch("hostile_graphs");
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 4, 4]);
    let y = b.node("Relu", &[&x], &[]);
    b.output(&y);
    b.output("nowhere");
    let dangling = dir.join("dangling.onnx");
    b.save(&dangling).unwrap();
    refused(
        &["convert", s(&dangling), "-o", s(&dir.join("d.flb"))],
        "\"nowhere\" is not computed",
    );

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 10]);
    let k = b.constant_i64("k", vec![-3]);
    let outs = b.node_n("TopK", &[&x, &k], &[], 2);
    b.output(&outs[0]);
    let topk = dir.join("topk.onnx");
    b.save(&topk).unwrap();
    refused(
        &["convert", s(&topk), "-o", s(&dir.join("t.flb"))],
        "k is -3",
    );

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 4]);
    // Add reads the output of the Neg that (through Relu) reads the Add: a cycle.
    let a = b.node("Add", &[&x, "neg_3_out0"], &[]);
    let r = b.node("Relu", &[&a], &[]);
    let n = b.node("Neg", &[&r], &[]);
    assert_eq!(n, "neg_3_out0");
    b.output(&n);
    let cyclic = dir.join("cyclic.onnx");
    b.save(&cyclic).unwrap();
    refused(
        &["convert", s(&cyclic), "-o", s(&dir.join("c.flb"))],
        "the graph has a cycle",
    );

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 100000, 100000]);
    let y = b.node("Relu", &[&x], &[]);
    b.output(&y);
    let wide = dir.join("wide.onnx");
    b.save(&wide).unwrap();
    refused(
        &["convert", s(&wide), "-o", s(&dir.join("w.flb"))],
        "memory limit",
    );
}

#[test]
fn a_4096_node_chain_converts_and_runs() {
    let dir = scratch("hostile_chain");
    let mut b = OnnxBuilder::new();
    let mut t = b.input("x", &[1, 8]);
    for i in 0..4096 {
        t = b.node(if i % 2 == 0 { "Relu" } else { "Neg" }, &[&t], &[]);
    }
    b.output(&t);
    let chain = dir.join("chain.onnx");
    b.save(&chain).unwrap();
    let bundle = dir.join("chain.flb");
    let start = Instant::now();
    let (code, err) = run_bounded(&["convert", s(&chain), "-o", s(&bundle)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(start.elapsed() < LIMIT);
    ok(&["inspect", s(&bundle)]);
}

#[test]
fn commands_refuse_to_overwrite_their_input_or_guess() {
    let dir = scratch("hostile_flags");
    let onnx = small_cnn(&dir);
    let before = std::fs::read(&onnx).unwrap();
    refused(
        &["convert", s(&onnx), "-o", s(&onnx)],
        "would destroy the input",
    );
    let same = dir.join(".").join(onnx.file_name().unwrap());
    refused(
        &["convert", s(&onnx), "-o", s(&same)],
        "would destroy the input",
    );
    assert_eq!(std::fs::read(&onnx).unwrap(), before);
    let out = dir.join("m.flb");
    refused(
        &["convert", s(&onnx), "-o", s(&out), "--mean", "127"],
        "--mean and --std go together",
    );
    refused(
        &[
            "convert",
            s(&onnx),
            "-o",
            s(&out),
            "--precision",
            "int8",
            "--calib",
            s(&dir),
            "--calib-count",
            "0",
        ],
        "--calib-count 0",
    );
    assert!(!out.exists());
}

#[test]
fn a_model_over_the_memory_limit_is_refused_naming_the_bytes() {
    let dir = scratch("hostile_memory");
    let onnx = small_cnn(&dir);
    let bundle = dir.join("small.flb");
    ok(&["convert", s(&onnx), "-o", s(&bundle)]);
    let (code, err) = run_bounded_with(&["inspect", s(&bundle)], &[("FERROLITE_MAX_MEMORY", "1K")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("of working memory") && err.contains("over the limit of 1.0 kB"),
        "{err}"
    );
    assert!(err.contains("FERROLITE_MAX_MEMORY"), "{err}");
    let (code, err) = run_bounded_with(
        &["inspect", s(&bundle)],
        &[("FERROLITE_MAX_MEMORY", "lots")],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("FERROLITE_MAX_MEMORY=\"lots\" is not a size"),
        "{err}"
    );
    let (code, err) = run_bounded_with(
        &["convert", s(&onnx), "-o", s(&dir.join("again.flb"))],
        &[("FERROLITE_MAX_MEMORY", "200")],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("over the memory limit of 200 bytes"), "{err}");
}

#[test]
fn mutation_sweep_finds_stay_fixed() {
    // Found by tools/mutate_onnx.py: a Pad of a constant that tract folds into a 77 GB
    // tensor while typing (an abort, not an error), and a zero-sized input dimension that
    // took tract seconds to reject obscurely.
    let dir = scratch("hostile_sweep_finds");
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 8, 8]);
    let k = b.constant("k", &[1, 3, 1, 1], vec![1.0, 2.0, 3.0]);
    let pads = b.constant_i64("pads", vec![1 << 31, 0, 1, 1, 0, 0, 1, 1]);
    let p = b.node(
        "Pad",
        &[&k, &pads],
        &[("mode", Attr::Str("reflect".into()))],
    );
    let y = b.node("Add", &[&x, &p], &[]);
    b.output(&y);
    let pad = dir.join("pad.onnx");
    b.save(&pad).unwrap();
    refused(
        &["convert", s(&pad), "-o", s(&dir.join("p.flb"))],
        "pads [2147483648, 0, 1, 1",
    );

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1 << 31, 3, 0, 8]);
    let y = b.node("Relu", &[&x], &[]);
    b.output(&y);
    let empty = dir.join("empty.onnx");
    b.save(&empty).unwrap();
    refused(
        &["convert", s(&empty), "-o", s(&dir.join("e.flb"))],
        "empty tensors are not supported",
    );
}

#[test]
fn npy_headers_numpy_would_not_write_are_refused_at_once() {
    // Found by the `npy` fuzz target: npyz's Python-literal parser takes seconds on 64
    // nested `[`, and half a second on a 118-byte header of braces and string escapes
    // (tests/fixtures/npy_slow_header.npy, kept as the fuzzer wrote it).
    let dir = scratch("hostile_npy");
    let onnx = small_cnn(&dir);
    let npy_with = |header: &str| {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 4 * 3 * 8 * 8]);
        bytes
    };
    let nested = format!(
        "{{'descr': '<f4',{} 'fortran_order': False, 'shape': (1, 3, 8, 8), }}",
        "[".repeat(64)
    );
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy_slow_header.npy");
    let cases = [
        ("nested", npy_with(&nested), "no quoted name at byte 16"),
        (
            "slow",
            std::fs::read(fixture).unwrap(),
            "its header is not the dictionary NumPy writes",
        ),
        (
            "key",
            npy_with("{'descr': '<f4', 'order': False, 'shape': (1, 3, 8, 8), }"),
            "unknown key \"order\"",
        ),
        (
            "escape",
            npy_with("{'descr': '<\\N{f4}', 'fortran_order': False, 'shape': (), }"),
            "inside a name",
        ),
    ];
    for (name, bytes, expect) in cases {
        let npy = dir.join(format!("{name}.npy"));
        std::fs::write(&npy, &bytes).unwrap();
        let out = s(&dir.join("o.npy")).to_string();
        refused(
            &["run", s(&onnx), "--input", s(&npy), "--output", &out],
            expect,
        );
    }
    // What NumPy writes still reads (padded to 64 bytes, spaces and a newline).
    let good = dir.join("good.npy");
    common::write_npy(&good, &[1, 3, 8, 8], &common::values(192));
    let out = dir.join("o.npy");
    let (code, err) = run_bounded(&["run", s(&onnx), "--input", s(&good), "--output", s(&out)]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn an_extreme_aspect_ratio_image_costs_only_its_crop() {
    // Found by the `image` fuzz target: a 16x15116 image resized to shorter side 256 is
    // 62 M pixels; resizing all of it before the 224x224 crop took 0.7 s and 226 MB.
    let dir = scratch("hostile_aspect");
    let tall = dir.join("tall.png");
    image::RgbImage::from_fn(16, 15116, |x, y| {
        image::Rgb([(x * 9) as u8, (y % 251) as u8, 77])
    })
    .save(&tall)
    .unwrap();
    let (code, err) = run_bounded(&["classify", s(&tall)]);
    assert_eq!(code, Some(0), "{err}");
}
