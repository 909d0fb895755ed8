//! int8 post-training quantization: the scheme's arithmetic on hand-worked values, and a
//! small MobileNet-like network converted, calibrated, quantized and run on every kernel
//! tier — outputs byte-identical across tiers and close to the fp32 model.

mod common;

use std::sync::Arc;

use common::{ferrolite_run_tier, random, runnable_tiers, scratch};
use ferrolite_quantize::calibrate::{calibrate, CalibMethod};
use ferrolite_quantize::int8::{
    activation_quant, quantize_model, quantize_rows, split_activations,
};
use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};
use ferrolite_quantize::{convert_onnx, ConvertOptions};
use ferrolite_runtime::ir::{DType, Quant};
use ferrolite_runtime::{bundle, Model};

#[test]
fn weights_round_per_row_to_symmetric_int8() {
    let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0];
    let (q, scales) = quantize_rows(&w, 2);
    // Row 0: scale 1/127; 0.5*127 = 63.5 rounds to even 64, 0.25*127 = 31.75 rounds to 32.
    assert_eq!(scales[0], 1.0 / 127.0);
    assert_eq!(&q[..4], &[64, -127, 32, 0]);
    // An all-zero row keeps a valid (positive, finite) scale.
    assert_eq!(scales[1], 1.0);
    assert_eq!(&q[4..], &[0, 0, 0, 0]);
}

#[test]
fn activation_ranges_include_zero() {
    // [-1, 3]: scale 4/255, zero point round(1 / (4/255)) = round(63.75) = 64.
    assert_eq!(
        activation_quant(-1.0, 3.0),
        Quant::PerTensor {
            scale: 4.0 / 255.0,
            zero_point: 64
        }
    );
    // A positive-only range still represents zero exactly (zero point 0).
    assert_eq!(
        activation_quant(0.5, 6.0),
        Quant::PerTensor {
            scale: 6.0 / 255.0,
            zero_point: 0
        }
    );
}

/// A convolution `cin -> cout`, kernel `k` ("same" padding), `stride`, `groups`, with seeded
/// weights and bias.
fn conv(
    b: &mut OnnxBuilder,
    x: &str,
    [cin, cout, k, stride, groups]: [usize; 5],
    seed: u64,
) -> String {
    let fan_in = cin / groups * k * k;
    let w: Vec<f32> = random(cout * fan_in, seed)
        .iter()
        .map(|v| v / (fan_in as f32).sqrt())
        .collect();
    let w = b.constant(&format!("w{seed}"), &[cout, cin / groups, k, k], w);
    let bias = b.constant(&format!("b{seed}"), &[cout], random(cout, seed + 100));
    let p = (k / 2) as i64;
    b.node(
        "Conv",
        &[x, &w, &bias],
        &[
            ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
            ("strides", Attr::Ints(vec![stride as i64, stride as i64])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
            ("group", Attr::Int(groups as i64)),
        ],
    )
}

fn relu6(b: &mut OnnxBuilder, x: &str) -> String {
    let lo = b.constant(&format!("{x}_lo"), &[], vec![0.0]);
    let hi = b.constant(&format!("{x}_hi"), &[], vec![6.0]);
    b.node("Clip", &[x, &lo, &hi], &[])
}

/// Stem conv, an inverted residual block (expand, depthwise, project + skip), a grouped
/// conv, a squeeze-excite gate (global average, 1x1 convs, hard-sigmoid, multiply), a SiLU,
/// the sum of two branches, a 3x3 average pool, max pool, global average pool and a
/// classifier; `softmax` adds a softmax, which has no int8 kernel.
fn small_net(tag: &str, softmax: bool) -> Model {
    let mut b = OnnxBuilder::new();
    let x = b.input("input", &[1, 3, 33, 31]);
    let s = conv(&mut b, &x, [3, 16, 3, 2, 1], 1);
    let s = relu6(&mut b, &s);
    let e = conv(&mut b, &s, [16, 48, 1, 1, 1], 2);
    let e = relu6(&mut b, &e);
    let d = conv(&mut b, &e, [48, 48, 3, 1, 48], 3);
    let d = relu6(&mut b, &d);
    let p = conv(&mut b, &d, [48, 16, 1, 1, 1], 4);
    let r = b.node("Add", &[&p, &s], &[]);
    let g = conv(&mut b, &r, [16, 24, 3, 1, 4], 5);
    let g = b.node("Relu", &[&g], &[]);
    let sq = b.node("GlobalAveragePool", &[&g], &[]);
    let sq = conv(&mut b, &sq, [24, 8, 1, 1, 1], 10);
    let sq = b.node("Relu", &[&sq], &[]);
    let sq = conv(&mut b, &sq, [8, 24, 1, 1, 1], 11);
    let gate = b.node("HardSigmoid", &[&sq], &[("alpha", Attr::Float(1.0 / 6.0))]);
    let g = b.node("Mul", &[&gate, &g], &[]);
    let h = conv(&mut b, &g, [24, 24, 1, 1, 1], 12);
    let sig = b.node("Sigmoid", &[&h], &[]);
    let h = b.node("Mul", &[&h, &sig], &[]);
    let g = b.node("Add", &[&g, &h], &[]);
    let g = b.node(
        "AveragePool",
        &[&g],
        &[
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ],
    );
    let m = b.node(
        "MaxPool",
        &[&g],
        &[
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("strides", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ],
    );
    let a = b.node("GlobalAveragePool", &[&m], &[]);
    let f = b.node("Flatten", &[&a], &[]);
    let w = b.constant("fc_w", &[10, 24], random(240, 7));
    let bias = b.constant("fc_b", &[10], random(10, 8));
    let y = b.node("Gemm", &[&f, &w, &bias], &[("transB", Attr::Int(1))]);
    let y = if softmax {
        b.node("Softmax", &[&y], &[("axis", Attr::Int(1))])
    } else {
        y
    };
    b.output(&y);
    let path = scratch(&format!("int8_{tag}")).join("net.onnx");
    b.save(&path).expect("save onnx");
    convert_onnx(&path, &ConvertOptions::default()).expect("convert")
}

fn inputs(n: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| random(3 * 33 * 31, seed + i as u64))
        .collect()
}

fn reload(m: &Model) -> Model {
    let bytes = bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).expect("bundle");
    bundle::from_bytes(&bytes).expect("reload")
}

#[test]
fn int8_network_is_identical_on_every_tier_and_close_to_fp32() {
    let fp32 = small_net("tiers", false);
    for method in [
        CalibMethod::MinMax,
        CalibMethod::Percentile,
        CalibMethod::Mse,
        CalibMethod::Kl,
    ] {
        let split = split_activations(&fp32);
        let calib = calibrate(&split, &inputs(16, 1000), method, || Ok(())).expect("calibrate");
        let q = quantize_model(&split, &calib).expect("quantize");
        assert!(q.kept_float.is_empty(), "{:?}", q.kept_float);
        let int8 = Arc::new(reload(&q.model));
        let conv_weights = int8
            .graph
            .tensors
            .iter()
            .filter(|t| t.dtype == DType::I8)
            .count();
        assert_eq!(
            conv_weights, 9,
            "8 convolutions and the FC carry int8 weights"
        );
        let ops: Vec<&str> = int8.graph.nodes.iter().map(|n| n.op.name()).collect();
        for op in ["Unary", "Binary", "Pool2d"] {
            assert!(ops.contains(&op), "no int8 {op} in {ops:?}");
        }
        assert_eq!(
            ops.iter().filter(|o| **o == "Quantize").count(),
            1,
            "{ops:?}"
        );
        let fp32 = Arc::new(reload(&fp32));
        let test = inputs(4, 5000);
        for input in &test {
            let feed = [(vec![1, 3, 33, 31], input.clone())];
            let reference = ferrolite_run_tier(fp32.clone(), runnable_tiers()[0], &feed);
            let mut first: Option<Vec<f32>> = None;
            for isa in runnable_tiers() {
                let out = ferrolite_run_tier(int8.clone(), isa, &feed).remove(0);
                match &first {
                    None => first = Some(out),
                    Some(f) => assert!(
                        f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{} differs from scalar ({method:?})",
                        isa.name()
                    ),
                }
            }
            let out = first.expect("at least the scalar tier");
            let peak = reference[0].iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = out
                .iter()
                .zip(&reference[0])
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            // KL clips hardest (it is meant for large calibration sets; 16 inputs here).
            let bound = if method == CalibMethod::Kl {
                0.25
            } else {
                0.08
            };
            assert!(
                err <= bound * peak,
                "{method:?}: int8 differs from fp32 by {err} (peak {peak})"
            );
        }
    }
}

#[test]
fn ops_without_int8_kernels_stay_fp32_and_are_reported() {
    let fp32 = split_activations(&small_net("kept", true));
    let calib =
        calibrate(&fp32, &inputs(4, 77), CalibMethod::MinMax, || Ok(())).expect("calibrate");
    let q = quantize_model(&fp32, &calib).expect("quantize");
    assert_eq!(q.kept_float.len(), 1, "{:?}", q.kept_float);
    assert!(q.kept_float[0].reason.contains("no int8 kernel"));
    let ops: Vec<&str> = q.model.graph.nodes.iter().map(|n| n.op.name()).collect();
    assert!(ops.contains(&"Dequantize") && ops.iter().filter(|o| **o == "Quantize").count() == 1);
    let int8 = Arc::new(reload(&q.model));
    let out = ferrolite_run_tier(
        int8,
        runnable_tiers()[0],
        &[(vec![1, 3, 33, 31], inputs(1, 9)[0].clone())],
    );
    assert!(out[0].iter().all(|v| v.is_finite()));
}

#[test]
fn calibration_needs_inputs() {
    let fp32 = small_net("empty", false);
    let e = calibrate(&fp32, &[], CalibMethod::MinMax, || Ok(())).unwrap_err();
    assert!(e.to_string().contains("at least one input"));
}

/// The shipped int8 EfficientNet-Lite0 (3x3 and 5x5 depthwise at strides 1 and 2, the
/// im2col stem, residual projections, a dequantizing classifier) gives the same bits on
/// every tier.
#[test]
fn shipped_int8_bundle_is_identical_on_every_tier() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/efficientnet_lite0.flb");
    let model = Arc::new(bundle::load(&path).expect("load the shipped bundle"));
    assert_eq!(model.meta.precision, ferrolite_runtime::Precision::Int8);
    for seed in [1, 2] {
        let feed = [(vec![1, 3, 224, 224], random(3 * 224 * 224, seed))];
        let mut first: Option<Vec<f32>> = None;
        for isa in runnable_tiers() {
            let out = ferrolite_run_tier(model.clone(), isa, &feed).remove(0);
            match &first {
                None => first = Some(out),
                Some(f) => {
                    let same = f
                        .iter()
                        .zip(&out)
                        .filter(|(a, b)| a.to_bits() == b.to_bits())
                        .count();
                    assert_eq!(same, f.len(), "{} differs from scalar", isa.name());
                }
            }
        }
    }
}
