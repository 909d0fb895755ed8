//! Import of ONNX QDQ models (ONNX Runtime's static quantizer format) to the int8 IR: a
//! small QDQ network written with the ONNX builder (no Python needed) imports with exactly
//! its int8 weights, biases and activation parameters, runs bit-identically on every kernel
//! tier and stays within about one output quantization step of tract running the same QDQ
//! file; bad QDQ inputs fail with clear messages.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{ferrolite_run_tier, random, runnable_tiers, scratch, tract_run};
use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};
use ferrolite_quantize::qdq::{import_qdq, is_qdq};
use ferrolite_quantize::{convert_onnx, ConvertOptions};
use ferrolite_runtime::ir::{DType, Quant};
use ferrolite_runtime::{bundle, Model};

/// Adds QDQ pieces to a builder, remembering what it gave so the test can check the import.
struct Qdq {
    b: OnnxBuilder,
    n: usize,
    /// `(int8 values, per-output-channel scales)` of every weight, output channel first.
    weights: Vec<(Vec<i8>, Vec<f32>)>,
    /// int32 values of every bias.
    biases: Vec<Vec<i32>>,
}

impl Qdq {
    fn new() -> Qdq {
        Qdq {
            b: OnnxBuilder::new(),
            n: 0,
            weights: Vec::new(),
            biases: Vec::new(),
        }
    }

    fn name(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}", self.n)
    }

    /// QuantizeLinear -> DequantizeLinear of `x` with u8 parameters.
    fn qdq(&mut self, x: &str, scale: f32, zero_point: u8) -> String {
        let s = self.name("s");
        let s = self.b.constant(&s, &[], vec![scale]);
        let z = self.name("z");
        let z = self.b.constant_u8(&z, &[], vec![zero_point]);
        let q = self.b.node("QuantizeLinear", &[x, &s, &z], &[]);
        self.b.node("DequantizeLinear", &[&q, &s, &z], &[])
    }

    /// A DequantizeLinear'd int8 weight of `shape`, per channel along `axis`, seeded.
    fn weight(&mut self, shape: &[usize], axis: usize, seed: u64) -> (String, Vec<f32>) {
        let n: usize = shape.iter().product();
        let channels = shape[axis];
        let values: Vec<i8> = random(n, seed)
            .iter()
            .map(|v| (v * 127.0).round() as i8)
            .collect();
        let fan_in = (n / channels) as f32;
        let scales: Vec<f32> = random(channels, seed + 1)
            .iter()
            .map(|v| (1.5 + v) / (127.0 * fan_in.sqrt()))
            .collect();
        // Remember the weight output channel first (a [K, O] FC weight transposed).
        let given = if axis == 0 {
            values.clone()
        } else {
            let (k, o) = (shape[0], shape[1]);
            (0..o * k).map(|i| values[(i % k) * o + i / k]).collect()
        };
        self.weights.push((given, scales.clone()));
        let q = self.name("wq");
        let q = self.b.constant_i8(&q, shape, values);
        let s = self.name("ws");
        let s = self.b.constant(&s, &[channels], scales.clone());
        let z = self.name("wz");
        let z = self.b.constant_i8(&z, &[channels], vec![0; channels]);
        let w = self.b.node(
            "DequantizeLinear",
            &[&q, &s, &z],
            &[("axis", Attr::Int(axis as i64))],
        );
        (w, scales)
    }

    /// A DequantizeLinear'd int32 bias at scale `input scale * weight scale[c]` (as ONNX
    /// Runtime computes it, in f32), seeded.
    fn bias(&mut self, input_scale: f32, weight_scales: &[f32], seed: u64) -> String {
        let o = weight_scales.len();
        let values: Vec<i32> = random(o, seed)
            .iter()
            .map(|v| (v * 3000.0).round() as i32)
            .collect();
        self.biases.push(values.clone());
        let scales: Vec<f32> = weight_scales.iter().map(|s| input_scale * s).collect();
        let q = self.name("bq");
        let q = self.b.constant_i32(&q, &[o], values);
        let s = self.name("bs");
        let s = self.b.constant(&s, &[o], scales);
        let z = self.name("bz");
        let z = self.b.constant_i32(&z, &[o], vec![0; o]);
        self.b
            .node("DequantizeLinear", &[&q, &s, &z], &[("axis", Attr::Int(0))])
    }

    /// A convolution `cin -> cout` with kernel `k` ("same" padding) and `groups` on a tensor
    /// quantized at `input_scale`.
    fn conv(&mut self, x: &str, input_scale: f32, [cin, cout, k, groups]: [usize; 4]) -> String {
        let seed = 10 * self.n as u64 + 1;
        let (w, scales) = self.weight(&[cout, cin / groups, k, k], 0, seed);
        let bias = self.bias(input_scale, &scales, seed + 5);
        let p = (k / 2) as i64;
        self.b.node(
            "Conv",
            &[x, &w, &bias],
            &[
                ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("group", Attr::Int(groups as i64)),
            ],
        )
    }
}

const INPUT: [usize; 4] = [1, 3, 9, 9];

/// Activation parameters of the test network.
struct Params {
    input: (f32, u8),
    stem: (f32, u8),
    dw: (f32, u8),
    project: (f32, u8),
    residual: (f32, u8),
    branch_a: (f32, u8),
    branch_b: (f32, u8),
    concat: (f32, u8),
    pool: (f32, u8),
    logits: (f32, u8),
}

const P: Params = Params {
    input: (2.0 / 255.0, 128),
    stem: (3.0 / 255.0, 0), // a ReLU the quantizer removed: the range starts at 0
    dw: (4.0 / 255.0, 100),
    project: (6.0 / 255.0, 120),
    residual: (7.0 / 255.0, 90),
    branch_a: (6.0 / 255.0, 128),
    branch_b: (5.0 / 255.0, 100),
    concat: (8.0 / 255.0, 128), // covers both branches: the shared class keeps it
    pool: (2.0 / 255.0, 128),
    logits: (3.0 / 255.0, 128),
};

/// Stem conv, depthwise, pointwise projection with a residual add, max pool, two 1x1
/// branches concatenated (with their own parameters), global average pool, flatten and a
/// `[K, O]` Gemm quantized along axis 1 — every activation in a QDQ pair, as ONNX Runtime
/// writes them.
fn qdq_net(dir: &Path) -> (PathBuf, Qdq) {
    let mut q = Qdq::new();
    let x = q.b.input("input", &INPUT);
    let x = q.qdq(&x, P.input.0, P.input.1);
    let s = q.conv(&x, P.input.0, [3, 8, 3, 1]);
    let s = q.qdq(&s, P.stem.0, P.stem.1);
    let d = q.conv(&s, P.stem.0, [8, 8, 3, 8]);
    let d = q.qdq(&d, P.dw.0, P.dw.1);
    let p = q.conv(&d, P.dw.0, [8, 8, 1, 1]);
    let p = q.qdq(&p, P.project.0, P.project.1);
    let r = q.b.node("Add", &[&p, &s], &[]);
    let r = q.qdq(&r, P.residual.0, P.residual.1);
    let m = q.b.node(
        "MaxPool",
        &[&r],
        &[
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    );
    let m = q.qdq(&m, P.residual.0, P.residual.1);
    let a = q.conv(&m, P.residual.0, [8, 4, 1, 1]);
    let a = q.qdq(&a, P.branch_a.0, P.branch_a.1);
    let b = q.conv(&m, P.residual.0, [8, 4, 1, 1]);
    let b = q.qdq(&b, P.branch_b.0, P.branch_b.1);
    let c = q.b.node("Concat", &[&a, &b], &[("axis", Attr::Int(1))]);
    let c = q.qdq(&c, P.concat.0, P.concat.1);
    let g = q.b.node("GlobalAveragePool", &[&c], &[]);
    let g = q.qdq(&g, P.pool.0, P.pool.1);
    let f = q.b.node("Flatten", &[&g], &[]);
    let f = q.qdq(&f, P.pool.0, P.pool.1);
    let (w, scales) = q.weight(&[8, 5], 1, 77);
    let bias = q.bias(P.pool.0, &scales, 78);
    let y = q.b.node("Gemm", &[&f, &w, &bias], &[]);
    let y = q.qdq(&y, P.logits.0, P.logits.1);
    q.b.output(&y);
    let path = dir.join("qdq_net.onnx");
    q.b.save(&path).expect("save onnx");
    (path, q)
}

fn reload(m: &Model) -> Model {
    let bytes = bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).expect("bundle");
    bundle::from_bytes(&bytes).expect("reload")
}

fn per_tensor(p: (f32, u8)) -> Quant {
    Quant::PerTensor {
        scale: p.0,
        zero_point: p.1 as i32,
    }
}

#[test]
fn qdq_model_imports_with_its_own_int8_parameters() {
    let dir = scratch("qdq_exact");
    let (path, given) = qdq_net(&dir);
    assert!(is_qdq(&path).expect("read"));
    let r = import_qdq(&path, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(r.kept_float.is_empty(), "{:?}", r.kept_float);
    assert!(r.requantized.is_empty(), "{:?}", r.requantized);
    let m = reload(&r.int8);
    assert_eq!(m.meta.precision, ferrolite_runtime::Precision::Int8);
    assert_eq!(m.meta.records["quantization"]["source"], "onnx qdq");
    let g = &m.graph;

    // Weights: exactly the given int8 values and per-channel scales.
    let mut weights: Vec<(Vec<i8>, Vec<f32>)> = Vec::new();
    for t in g.tensors.iter().filter(|t| t.dtype == DType::I8) {
        let values: Vec<i8> = m
            .weights
            .get(t.data.unwrap())
            .unwrap()
            .iter()
            .map(|&b| b as i8)
            .collect();
        let Some(Quant::PerChannel { scales, .. }) = &t.quant else {
            panic!("weight {} lacks per-channel scales", t.name)
        };
        weights.push((values, scales.clone()));
    }
    assert_eq!(weights.len(), given.weights.len());
    for w in &given.weights {
        assert!(
            weights.contains(w),
            "given weight {w:?} not imported exactly"
        );
    }

    // Biases: re-deriving round(b / (s_x * s_w)) gives back the given int32 values.
    let mut biases: Vec<Vec<i32>> = g
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::I32)
        .map(|t| {
            m.weights
                .get(t.data.unwrap())
                .unwrap()
                .chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    let mut expect = given.biases.clone();
    biases.sort();
    expect.sort();
    assert_eq!(biases, expect);

    // Activations: the given parameters; the concat class keeps the concat's (which covers
    // both branches), the projection before the fused residual add vanishes.
    let quants: Vec<Quant> = g
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::U8)
        .filter_map(|t| t.quant.clone())
        .collect();
    for p in [P.input, P.stem, P.dw, P.residual, P.concat, P.pool] {
        assert!(quants.contains(&per_tensor(p)), "{p:?} missing: {quants:?}");
    }
    for p in [P.branch_a, P.branch_b, P.project] {
        assert!(!quants.contains(&per_tensor(p)), "{p:?} should not remain");
    }
    let input_quant = g
        .nodes
        .iter()
        .find(|n| n.op.name() == "Quantize")
        .map(|n| g.tensors[n.outputs[0]].quant.clone());
    assert_eq!(input_quant, Some(Some(per_tensor(P.input))));
}

#[test]
fn qdq_model_is_identical_on_every_tier_and_close_to_tract() {
    let dir = scratch("qdq_tiers");
    let (path, _) = qdq_net(&dir);
    let r = import_qdq(&path, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let int8 = Arc::new(reload(&r.int8));
    let step = P.logits.0;
    let mut worst = 0f32;
    for seed in 0..8 {
        let input = random(INPUT.iter().product(), 900 + seed);
        let feed = [(INPUT.to_vec(), input.clone())];
        let mut first: Option<Vec<f32>> = None;
        for isa in runnable_tiers() {
            let out = ferrolite_run_tier(int8.clone(), isa, &feed).remove(0);
            match &first {
                None => first = Some(out),
                Some(f) => assert!(
                    f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} differs from scalar",
                    isa.name()
                ),
            }
        }
        let ours = first.expect("at least the scalar tier");
        // tract runs the QDQ model in float with the same rounding points (its logits are
        // rounded to 8 bits, ours are not).
        let reference = tract_run(&path, &feed).remove(0);
        for (a, b) in ours.iter().zip(&reference) {
            worst = worst.max((a - b).abs() / step);
        }
    }
    assert!(
        worst <= 1.5,
        "int8 import differs from tract's QDQ run by {worst} output steps"
    );
}

#[test]
fn qdq_model_is_refused_by_the_fp32_converter() {
    let dir = scratch("qdq_refused");
    let (path, _) = qdq_net(&dir);
    let e = convert_onnx(&path, &ConvertOptions::default()).unwrap_err();
    assert!(format!("{e:#}").contains("QDQ"), "{e:#}");
    let opts = ConvertOptions {
        precision: ferrolite_runtime::Precision::Fp16,
        ..Default::default()
    };
    let e = import_qdq(&path, &opts).err().expect("fp16 refused");
    assert!(format!("{e:#}").contains("fp16"), "{e:#}");
}

/// One convolution between QDQ pairs, with the given weight zero points and activation
/// parameters: `(int8 zero point of the weights, second pair's dequantize scale)`.
fn one_conv(dir: &Path, weight_zp: i8, dq_scale: f32, signed: bool) -> PathBuf {
    let mut q = Qdq::new();
    let x = q.b.input("input", &INPUT);
    let s = q.b.constant("s_in", &[], vec![2.0 / 255.0]);
    let z = if signed {
        q.b.constant_i8("z_in", &[], vec![0])
    } else {
        q.b.constant_u8("z_in", &[], vec![128])
    };
    let xq = q.b.node("QuantizeLinear", &[&x, &s, &z], &[]);
    let x = q.b.node("DequantizeLinear", &[&xq, &s, &z], &[]);
    let wq = q.b.constant_i8(
        "wq",
        &[4, 3, 1, 1],
        (0..12).map(|i: i32| (120 - 20 * i) as i8).collect(),
    );
    let ws = q.b.constant("ws", &[4], vec![0.01, 0.02, 0.03, 0.04]);
    let wz = q.b.constant_i8("wz", &[4], vec![weight_zp; 4]);
    let w = q.b.node(
        "DequantizeLinear",
        &[&wq, &ws, &wz],
        &[("axis", Attr::Int(0))],
    );
    let y = q.b.node("Conv", &[&x, &w], &[]);
    let so = q.b.constant("s_out", &[], vec![0.05]);
    let sd = q.b.constant("s_dq", &[], vec![dq_scale]);
    let zo = q.b.constant_u8("z_out", &[], vec![128]);
    let yq = q.b.node("QuantizeLinear", &[&y, &so, &zo], &[]);
    let y = q.b.node("DequantizeLinear", &[&yq, &sd, &zo], &[]);
    q.b.output(&y);
    let path = dir.join(format!("one_conv_{weight_zp}_{dq_scale}_{signed}.onnx"));
    q.b.save(&path).expect("save onnx");
    path
}

#[test]
fn int8_activations_become_the_same_u8_values() {
    let dir = scratch("qdq_signed");
    let r = import_qdq(&one_conv(&dir, 0, 0.05, true), &ConvertOptions::default())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let g = &r.int8.graph;
    let q = g
        .nodes
        .iter()
        .find(|n| n.op.name() == "Quantize")
        .map(|n| g.tensors[n.outputs[0]].quant.clone());
    // int8 zero point 0 at scale s is u8 zero point 128 at scale s: the same real values.
    assert_eq!(q, Some(Some(per_tensor((2.0 / 255.0, 128)))));
}

#[test]
fn weights_the_scheme_cannot_hold_are_requantized_and_reported() {
    let dir = scratch("qdq_asym");
    // The weights run from 120 down to -100; with zero point -30, 120 - (-30) = 150 leaves
    // [-127, 127].
    let r = import_qdq(
        &one_conv(&dir, -30, 0.05, false),
        &ConvertOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.requantized.len(), 1, "{:?}", r.requantized);
    assert!(r.requantized[0].reason.contains("[-127, 127]"));
    assert!(r.params.fixed_weights.is_empty());
    let out = ferrolite_run_tier(
        Arc::new(reload(&r.int8)),
        runnable_tiers()[0],
        &[(INPUT.to_vec(), random(243, 5))],
    );
    assert!(out[0].iter().all(|v| v.is_finite()));
    // A weight zero point that keeps every value in range is exact.
    let r = import_qdq(&one_conv(&dir, 5, 0.05, false), &ConvertOptions::default())
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(r.requantized.is_empty(), "{:?}", r.requantized);
    let w = r.params.fixed_weights.values().next().expect("one weight");
    assert_eq!(w.values[0], 115);
}

#[test]
fn mismatched_quantize_dequantize_pair_is_a_clear_error() {
    let dir = scratch("qdq_mismatch");
    let e = import_qdq(&one_conv(&dir, 0, 0.07, false), &ConvertOptions::default())
        .err()
        .expect("mismatched pair refused");
    let msg = format!("{e:#}");
    assert!(msg.contains("other parameters"), "{msg}");
}

#[test]
fn weight_only_quantized_model_is_not_qdq() {
    let dir = scratch("qdq_weight_only");
    let mut b = OnnxBuilder::new();
    let x = b.input("input", &INPUT);
    let wq = b.constant_i8("wq", &[4, 3, 1, 1], vec![1; 12]);
    let ws = b.constant("ws", &[], vec![0.5]);
    let w = b.node("DequantizeLinear", &[&wq, &ws], &[]);
    let y = b.node("Conv", &[&x, &w], &[]);
    b.output(&y);
    let path = dir.join("weight_only.onnx");
    b.save(&path).unwrap();
    assert!(!is_qdq(&path).unwrap());
    let e = import_qdq(&path, &ConvertOptions::default())
        .err()
        .expect("not QDQ");
    assert!(format!("{e:#}").contains("not a QDQ model"));
    // It converts as fp32, weights dequantized.
    let m = convert_onnx(&path, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(m.meta.precision, ferrolite_runtime::Precision::Fp32);
}

/// The `../shared` file `rel`, or `None` after saying why the test skips.
fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} not found (shared data exists only in the project workplace)",
            p.display()
        );
        None
    }
}

/// The int8 and int32 initializers a QDQ ONNX file dequantizes, as sorted lists.
fn onnx_integers(path: &Path) -> (Vec<Vec<i8>>, Vec<Vec<i32>>) {
    use prost::Message;
    use tract_onnx::pb;
    let model = pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let graph = model.graph.unwrap();
    let inits: std::collections::HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let (mut i8s, mut i32s) = (Vec::new(), Vec::new());
    for n in graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
    {
        let Some(t) = inits.get(n.input[0].as_str()) else {
            continue;
        };
        if t.data_type == pb::tensor_proto::DataType::Int8 as i32 {
            i8s.push(if t.raw_data.is_empty() {
                t.int32_data.iter().map(|&v| v as i8).collect()
            } else {
                t.raw_data.iter().map(|&b| b as i8).collect()
            });
        } else if t.data_type == pb::tensor_proto::DataType::Int32 as i32 {
            i32s.push(if t.raw_data.is_empty() {
                t.int32_data.clone()
            } else {
                t.raw_data
                    .chunks(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            });
        }
    }
    i8s.sort();
    i32s.sort();
    (i8s, i32s)
}

/// EfficientNet-Lite0 quantized by ONNX Runtime itself (`bench/peers/ort_quantize.py`, 8
/// calibration images): every weight and bias imports as ONNX Runtime's integers, nothing
/// stays fp32, and the result is bit-identical on every tier. Skips, saying why, without
/// the shared models or Python with onnxruntime.
#[test]
#[cfg_attr(
    no_shared,
    ignore = "needs ../shared (the project's models and images beside the repository): not found"
)]
fn onnx_runtime_qdq_efficientnet_lite0_imports_exactly() {
    let (Some(fp32), Some(calib)) = (
        shared("models/efficientnet_lite0.onnx"),
        shared("images/calib"),
    ) else {
        return;
    };
    let python = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, PIL, numpy"])
        .output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: python3 with onnxruntime, pillow and numpy is not available");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/peers/ort_quantize.py");
    let qdq = scratch("qdq_ort_lite0").join("lite0_qdq.onnx");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([fp32.as_os_str(), qdq.as_os_str()])
        .arg("--calib")
        .arg(&calib)
        .args([
            "--count",
            "8",
            "--mean",
            "127,127,127",
            "--std",
            "128,128,128",
        ])
        .output()
        .expect("python3 starts");
    assert!(
        out.status.success(),
        "ort_quantize.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = import_qdq(&qdq, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(r.kept_float.is_empty(), "{:?}", r.kept_float);
    assert!(r.requantized.is_empty(), "{:?}", r.requantized);
    let m = reload(&r.int8);
    let bytes = |t: &ferrolite_runtime::ir::Tensor| m.weights.get(t.data.unwrap()).unwrap();
    let mut i8s: Vec<Vec<i8>> = m
        .graph
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::I8)
        .map(|t| bytes(t).iter().map(|&b| b as i8).collect())
        .collect();
    let mut i32s: Vec<Vec<i32>> = m
        .graph
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::I32)
        .map(|t| {
            bytes(t)
                .chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    i8s.sort();
    i32s.sort();
    let (ort_i8, ort_i32) = onnx_integers(&qdq);
    assert_eq!(i8s.len(), 50);
    assert!(i8s == ort_i8, "int8 weights differ from ONNX Runtime's");
    assert!(i32s == ort_i32, "int32 biases differ from ONNX Runtime's");
    let model = Arc::new(m);
    let feed = [(vec![1, 3, 224, 224], random(3 * 224 * 224, 3))];
    let mut first: Option<Vec<f32>> = None;
    for isa in runnable_tiers() {
        let out = ferrolite_run_tier(model.clone(), isa, &feed).remove(0);
        match &first {
            None => first = Some(out),
            Some(f) => assert!(
                f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} differs from scalar",
                isa.name()
            ),
        }
    }
}
