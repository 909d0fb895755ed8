//! Per-operator parity: small generated ONNX graphs, run by tract and by Ferrolite
//! (converted, fused, bundled, reloaded), must agree within 1e-4 relative error.

mod common;

use common::{check_parity, random, scratch};
use ferrolite_quantize::onnx_builder::{Attr, OnnxBuilder};
use ferrolite_runtime::ir::{Activation, Graph, Op};

const TOL: f32 = 1e-4;

/// (test name, ONNX op, attributes).
type OpCase = (&'static str, &'static str, Vec<(&'static str, Attr)>);

fn run_case(name: &str, b: &OnnxBuilder, inputs: &[Vec<usize>]) -> Graph {
    let path = scratch("ops").join(format!("{name}.onnx"));
    b.save(&path).unwrap();
    let data: Vec<(Vec<usize>, Vec<f32>)> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), random(s.iter().product(), 7 + i as u64)))
        .collect();
    check_parity(&path, &data, TOL).graph
}

fn ops(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

struct ConvCase {
    name: &'static str,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    groups: usize,
    bias: bool,
}

fn conv_graph(c: &ConvCase) -> OnnxBuilder {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, c.cin, c.hw[0], c.hw[1]]);
    let wlen = c.cout * (c.cin / c.groups) * c.kernel[0] * c.kernel[1];
    let w = b.constant(
        "w",
        &[c.cout, c.cin / c.groups, c.kernel[0], c.kernel[1]],
        random(wlen, 1),
    );
    let mut ins = vec![x.clone(), w];
    if c.bias {
        ins.push(b.constant("b", &[c.cout], random(c.cout, 2)));
    }
    let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
    let y = b.node(
        "Conv",
        &refs,
        &[
            (
                "kernel_shape",
                Attr::Ints(c.kernel.iter().map(|&v| v as i64).collect()),
            ),
            (
                "strides",
                Attr::Ints(c.strides.iter().map(|&v| v as i64).collect()),
            ),
            (
                "dilations",
                Attr::Ints(c.dilations.iter().map(|&v| v as i64).collect()),
            ),
            (
                "pads",
                Attr::Ints(c.pads.iter().map(|&v| v as i64).collect()),
            ),
            ("group", Attr::Int(c.groups as i64)),
        ],
    );
    b.output(&y);
    b
}

#[test]
fn conv_variants() {
    let cases = [
        ConvCase {
            name: "dense3x3",
            cin: 3,
            cout: 8,
            hw: [9, 11],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "first_s2",
            cin: 3,
            cout: 16,
            hw: [17, 15],
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "pointwise",
            cin: 13,
            cout: 7,
            hw: [5, 6],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "pointwise_nobias",
            cin: 17,
            cout: 33,
            hw: [3, 3],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 1,
            bias: false,
        },
        ConvCase {
            name: "pointwise_s2",
            cin: 5,
            cout: 4,
            hw: [7, 7],
            kernel: [1, 1],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "depthwise3x3",
            cin: 19,
            cout: 19,
            hw: [10, 9],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 19,
            bias: true,
        },
        ConvCase {
            name: "depthwise3x3s2",
            cin: 17,
            cout: 17,
            hw: [11, 12],
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 17,
            bias: true,
        },
        ConvCase {
            name: "depthwise5x5s2",
            cin: 9,
            cout: 9,
            hw: [13, 13],
            kernel: [5, 5],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [2, 2, 2, 2],
            groups: 9,
            bias: true,
        },
        ConvCase {
            name: "depthwise_mult",
            cin: 4,
            cout: 8,
            hw: [6, 7],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 4,
            bias: true,
        },
        ConvCase {
            name: "grouped",
            cin: 12,
            cout: 18,
            hw: [7, 8],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            groups: 3,
            bias: true,
        },
        ConvCase {
            name: "grouped_1x1",
            cin: 24,
            cout: 24,
            hw: [5, 5],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 3,
            bias: false,
        },
        ConvCase {
            name: "dilated",
            cin: 5,
            cout: 6,
            hw: [12, 11],
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [2, 2],
            pads: [2, 2, 2, 2],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "asym_pads",
            cin: 4,
            cout: 5,
            hw: [8, 9],
            kernel: [3, 3],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [0, 1, 2, 0],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "rect_kernel",
            cin: 3,
            cout: 4,
            hw: [9, 10],
            kernel: [1, 5],
            strides: [1, 2],
            dilations: [1, 1],
            pads: [0, 2, 0, 2],
            groups: 1,
            bias: true,
        },
        ConvCase {
            name: "valid7x7",
            cin: 2,
            cout: 3,
            hw: [9, 9],
            kernel: [7, 7],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            groups: 1,
            bias: true,
        },
    ];
    for c in &cases {
        let g = run_case(c.name, &conv_graph(c), &[vec![1, c.cin, c.hw[0], c.hw[1]]]);
        assert_eq!(ops(&g), ["Conv2d"], "{}", c.name);
    }
}

#[test]
fn conv_batchnorm_relu6_folds_into_one_op() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 6, 7, 7]);
    let w = b.constant("w", &[8, 6, 3, 3], random(8 * 6 * 9, 3));
    let y = b.node("Conv", &[&x, &w], &[("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let s = b.constant("s", &[8], random(8, 4));
    let bb = b.constant("bb", &[8], random(8, 5));
    let m = b.constant("m", &[8], random(8, 6));
    let v = b.constant(
        "v",
        &[8],
        random(8, 7).iter().map(|v| v.abs() + 0.1).collect(),
    );
    let y = b.node(
        "BatchNormalization",
        &[&y, &s, &bb, &m, &v],
        &[("epsilon", Attr::Float(1e-3))],
    );
    let lo = b.constant("lo", &[], vec![0.0]);
    let hi = b.constant("hi", &[], vec![6.0]);
    let y = b.node("Clip", &[&y, &lo, &hi], &[]);
    b.output(&y);
    let g = run_case("conv_bn_relu6", &b, &[vec![1, 6, 7, 7]]);
    assert_eq!(ops(&g), ["Conv2d"]);
    match g.nodes[0].op {
        Op::Conv2d {
            activation: Activation::Clip { min, max },
            has_bias: true,
            ..
        } => {
            assert_eq!((min, max), (0.0, 6.0))
        }
        ref other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn standalone_batchnorm() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 5, 4, 6]);
    let s = b.constant("s", &[5], random(5, 4));
    let bb = b.constant("bb", &[5], random(5, 5));
    let m = b.constant("m", &[5], random(5, 6));
    let v = b.constant(
        "v",
        &[5],
        random(5, 7).iter().map(|v| v.abs() + 0.1).collect(),
    );
    let y = b.node("BatchNormalization", &[&x, &s, &bb, &m, &v], &[]);
    b.output(&y);
    let g = run_case("batchnorm", &b, &[vec![1, 5, 4, 6]]);
    assert_eq!(ops(&g), ["BatchNorm"]);
}

#[test]
fn pad_folds_into_conv() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 8, 8]);
    let pads = b.constant_i64("pads", vec![0, 0, 0, 1, 0, 0, 1, 2]);
    let p = b.node("Pad", &[&x, &pads], &[]);
    let w = b.constant("w", &[4, 3, 3, 3], random(4 * 27, 3));
    let y = b.node("Conv", &[&p, &w], &[("strides", Attr::Ints(vec![2, 2]))]);
    b.output(&y);
    let g = run_case("pad_conv", &b, &[vec![1, 3, 8, 8]]);
    assert_eq!(ops(&g), ["Conv2d"]);
}

#[test]
fn pad_modes() {
    for mode in ["constant", "reflect", "edge"] {
        let mut b = OnnxBuilder::new();
        let x = b.input("x", &[1, 3, 5, 6]);
        let pads = b.constant_i64("pads", vec![0, 0, 2, 1, 0, 1, 1, 2]);
        let val = b.constant("v", &[], vec![0.5]);
        let y = b.node(
            "Pad",
            &[&x, &pads, &val],
            &[("mode", Attr::Str(mode.into()))],
        );
        b.output(&y);
        run_case(&format!("pad_{mode}"), &b, &[vec![1, 3, 5, 6]]);
    }
}

#[test]
fn gemm_and_matmul() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[2, 37]);
    let w = b.constant("w", &[11, 37], random(11 * 37, 3));
    let bias = b.constant("b", &[11], random(11, 4));
    let y = b.node("Gemm", &[&x, &w, &bias], &[("transB", Attr::Int(1))]);
    b.output(&y);
    let g = run_case("gemm", &b, &[vec![2, 37]]);
    assert_eq!(ops(&g), ["FullyConnected"]);

    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[3, 5, 16]);
    let w = b.constant("w", &[16, 9], random(16 * 9, 3));
    let y = b.node("MatMul", &[&x, &w], &[]);
    b.output(&y);
    run_case("matmul_const", &b, &[vec![3, 5, 16]]);

    let mut b = OnnxBuilder::new();
    let x = b.input("a", &[2, 4, 7]);
    let w = b.input("b", &[2, 7, 5]);
    let y = b.node("MatMul", &[&x, &w], &[]);
    b.output(&y);
    run_case("matmul_dyn", &b, &[vec![2, 4, 7], vec![2, 7, 5]]);
}

#[test]
fn binary_broadcasting() {
    let shapes: [(&str, Vec<usize>); 5] = [
        ("same", vec![1, 6, 5, 7]),
        ("channel", vec![1, 6, 1, 1]),
        ("scalar", vec![]),
        ("row", vec![7]),
        ("height", vec![5, 1]),
    ];
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"] {
        for (sname, s) in &shapes {
            let mut b = OnnxBuilder::new();
            let x = b.input("x", &[1, 6, 5, 7]);
            let n: usize = s.iter().product();
            let mut data = random(n, 9);
            if op == "Div" {
                data.iter_mut().for_each(|v| *v = v.abs() + 0.5);
            }
            let c = b.constant("c", s, data);
            let y = b.node(op, &[&x, &c], &[]);
            b.output(&y);
            run_case(&format!("{op}_{sname}"), &b, &[vec![1, 6, 5, 7]]);
        }
    }
    // Two runtime operands with broadcasting (squeeze-excite style gating).
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 6, 5, 7]);
    let s = b.input("s", &[1, 6, 1, 1]);
    let y = b.node("Mul", &[&x, &s], &[]);
    b.output(&y);
    run_case("mul_gate", &b, &[vec![1, 6, 5, 7], vec![1, 6, 1, 1]]);
}

#[test]
fn activations() {
    let cases: Vec<OpCase> = vec![
        ("relu", "Relu", vec![]),
        ("sigmoid", "Sigmoid", vec![]),
        ("tanh", "Tanh", vec![]),
        (
            "hardsigmoid",
            "HardSigmoid",
            vec![("alpha", Attr::Float(0.2)), ("beta", Attr::Float(0.5))],
        ),
        ("hardswish", "HardSwish", vec![]),
        ("leakyrelu", "LeakyRelu", vec![("alpha", Attr::Float(0.1))]),
        ("exp", "Exp", vec![]),
        ("abs", "Abs", vec![]),
        ("neg", "Neg", vec![]),
        ("erf", "Erf", vec![]),
    ];
    for (name, op, attrs) in cases {
        let mut b = OnnxBuilder::new().opset(14);
        let x = b.input("x", &[1, 5, 3, 7]);
        let y = b.node(op, &[&x], &attrs);
        b.output(&y);
        run_case(name, &b, &[vec![1, 5, 3, 7]]);
    }
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 5, 3, 7]);
    let s = b.node("Sigmoid", &[&x], &[]);
    let y = b.node("Mul", &[&x, &s], &[]);
    b.output(&y);
    let g = run_case("silu", &b, &[vec![1, 5, 3, 7]]);
    assert_eq!(ops(&g), ["Unary"]);
}

#[test]
fn pools() {
    let cases: Vec<OpCase> = vec![
        (
            "maxpool3s2",
            "MaxPool",
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        ),
        (
            "maxpool_ceil",
            "MaxPool",
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("ceil_mode", Attr::Int(1)),
            ],
        ),
        (
            "avgpool_excl",
            "AveragePool",
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        ),
        (
            "avgpool_incl",
            "AveragePool",
            vec![
                ("kernel_shape", Attr::Ints(vec![3, 2])),
                ("strides", Attr::Ints(vec![1, 2])),
                ("pads", Attr::Ints(vec![1, 0, 1, 1])),
                ("count_include_pad", Attr::Int(1)),
            ],
        ),
        ("gap", "GlobalAveragePool", vec![]),
        ("gmp", "GlobalMaxPool", vec![]),
    ];
    for (name, op, attrs) in cases {
        let mut b = OnnxBuilder::new();
        let x = b.input("x", &[1, 5, 11, 10]);
        let y = b.node(op, &[&x], &attrs);
        b.output(&y);
        run_case(name, &b, &[vec![1, 5, 11, 10]]);
    }
}

#[test]
fn data_movement() {
    // Concat on channels and on height.
    for axis in [1i64, 2] {
        let mut b = OnnxBuilder::new();
        let x = b.input("x", &[1, 3, 4, 5]);
        let c = b.constant("c", &[1, 3, 4, 5], random(60, 3));
        let r = b.node("Relu", &[&x], &[]);
        let y = b.node("Concat", &[&x, &r, &c], &[("axis", Attr::Int(axis))]);
        b.output(&y);
        run_case(&format!("concat{axis}"), &b, &[vec![1, 3, 4, 5]]);
    }
    // Split into unequal parts.
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 7, 3, 4]);
    let split = b.constant_i64("split", vec![2, 5]);
    let outs = b.node_n("Split", &[&x, &split], &[("axis", Attr::Int(1))], 2);
    let y = b.node("Mul", &[&outs[0], &outs[0]], &[]);
    b.output(&y);
    b.output(&outs[1]);
    run_case("split", &b, &[vec![1, 7, 3, 4]]);
    // Slice with steps on two axes.
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 6, 9, 8]);
    let st = b.constant_i64("st", vec![1, 2]);
    let en = b.constant_i64("en", vec![5, 9]);
    let ax = b.constant_i64("ax", vec![1, 3]);
    let sp = b.constant_i64("sp", vec![1, 3]);
    let y = b.node("Slice", &[&x, &st, &en, &ax, &sp], &[]);
    b.output(&y);
    run_case("slice", &b, &[vec![1, 6, 9, 8]]);
    // Flatten, Reshape and Transpose.
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 4, 3, 5]);
    let f = b.node("Flatten", &[&x], &[("axis", Attr::Int(1))]);
    let w = b.constant("w", &[60, 6], random(360, 2));
    let y = b.node("MatMul", &[&f, &w], &[]);
    b.output(&y);
    run_case("flatten_fc", &b, &[vec![1, 4, 3, 5]]);
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 4, 3, 5]);
    let shape = b.constant_i64("shape", vec![1, 2, 6, 5]);
    let r = b.node("Reshape", &[&x, &shape], &[]);
    let t = b.node(
        "Transpose",
        &[&r],
        &[("perm", Attr::Ints(vec![0, 3, 1, 2]))],
    );
    b.output(&t);
    run_case("reshape_transpose", &b, &[vec![1, 4, 3, 5]]);
    // Softmax on the last axis and on channels.
    for axis in [-1i64, 1] {
        let mut b = OnnxBuilder::new();
        let x = b.input("x", &[1, 10, 2, 3]);
        let y = b.node("Softmax", &[&x], &[("axis", Attr::Int(axis))]);
        b.output(&y);
        run_case(&format!("softmax{axis}"), &b, &[vec![1, 10, 2, 3]]);
    }
}

#[test]
fn channel_shuffle_is_detected() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 12, 5, 6]);
    let w = b.constant("w", &[12, 12, 1, 1], random(144, 3));
    let c = b.node("Conv", &[&x, &w], &[]);
    let s1 = b.constant_i64("s1", vec![1, 3, 4, 5, 6]);
    let r = b.node("Reshape", &[&c, &s1], &[]);
    let t = b.node(
        "Transpose",
        &[&r],
        &[("perm", Attr::Ints(vec![0, 2, 1, 3, 4]))],
    );
    let s2 = b.constant_i64("s2", vec![1, 12, 5, 6]);
    let y = b.node("Reshape", &[&t, &s2], &[]);
    b.output(&y);
    let g = run_case("shuffle", &b, &[vec![1, 12, 5, 6]]);
    assert_eq!(ops(&g), ["Conv2d", "ChannelShuffle"]);
}

#[test]
fn residual_add_relu_fuses_into_conv() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 8, 6, 6]);
    let w = b.constant("w", &[8, 8, 3, 3], random(576, 3));
    let bias = b.constant("b", &[8], random(8, 4));
    let c = b.node(
        "Conv",
        &[&x, &w, &bias],
        &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
    );
    let a = b.node("Add", &[&c, &x], &[]);
    let y = b.node("Relu", &[&a], &[]);
    b.output(&y);
    let g = run_case("residual", &b, &[vec![1, 8, 6, 6]]);
    assert_eq!(ops(&g), ["Conv2d"]);
    assert!(matches!(
        g.nodes[0].op,
        Op::Conv2d {
            has_residual: true,
            activation: Activation::Relu,
            ..
        }
    ));
}

#[test]
fn squeeze_excite_block() {
    let mut b = OnnxBuilder::new().opset(14);
    let x = b.input("x", &[1, 16, 7, 7]);
    let p = b.node("GlobalAveragePool", &[&x], &[]);
    let w1 = b.constant("w1", &[4, 16, 1, 1], random(64, 2));
    let b1 = b.constant("b1", &[4], random(4, 3));
    let h = b.node("Conv", &[&p, &w1, &b1], &[]);
    let h = b.node("Relu", &[&h], &[]);
    let w2 = b.constant("w2", &[16, 4, 1, 1], random(64, 4));
    let b2 = b.constant("b2", &[16], random(16, 5));
    let s = b.node("Conv", &[&h, &w2, &b2], &[]);
    let s = b.node(
        "HardSigmoid",
        &[&s],
        &[
            ("alpha", Attr::Float(1.0 / 6.0)),
            ("beta", Attr::Float(0.5)),
        ],
    );
    let y = b.node("Mul", &[&x, &s], &[]);
    let y = b.node("HardSwish", &[&y], &[]);
    b.output(&y);
    run_case("se", &b, &[vec![1, 16, 7, 7]]);
}

#[test]
fn unsupported_op_is_named() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 3, 4, 4]);
    let y = b.node("Cos", &[&x], &[]);
    b.output(&y);
    let path = scratch("ops").join("unsupported.onnx");
    b.save(&path).unwrap();
    let err = ferrolite_quantize::convert_onnx(&path, &Default::default()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("Cos"), "{msg}");
    assert!(msg.contains("cos_1"), "{msg}");
    assert!(msg.contains("(Cos, input shapes 1x3x4x4)"), "{msg}");
}

#[test]
fn symbolic_input_needs_a_shape() {
    let mut b = OnnxBuilder::new();
    let x = b.input_symbolic("x", &[None, Some(3), None, None]);
    let w = b.constant("w", &[4, 3, 3, 3], random(108, 3));
    let y = b.node("Conv", &[&x, &w], &[]);
    b.output(&y);
    let path = scratch("ops").join("symbolic.onnx");
    b.save(&path).unwrap();
    let err = ferrolite_quantize::convert_onnx(&path, &Default::default()).unwrap_err();
    assert!(format!("{err:#}").contains("--input-shape"), "{err:#}");
    let m = common::ferrolite_model(&path, Some(vec![1, 3, 9, 12]));
    assert_eq!(m.meta.outputs[0].shape, vec![1, 4, 7, 10]);
    let data = vec![(vec![1, 3, 9, 12], random(324, 1))];
    let ours = common::ferrolite_run(m, &data);
    let reference = common::tract_run(&path, &data);
    assert!(common::relative_error(&ours[0], &reference[0]) <= TOL);
}

#[test]
fn gather_with_constant_indices() {
    for (name, idx) in [("gather_scalar", vec![]), ("gather_list", vec![2usize])] {
        let mut b = OnnxBuilder::new();
        let x = b.input("x", &[1, 3, 5, 4]);
        let i = if idx.is_empty() {
            b.constant_i64_shaped("i", &[], vec![1])
        } else {
            b.constant_i64_shaped("i", &idx, vec![2, 0])
        };
        let y = b.node("Gather", &[&x, &i], &[("axis", Attr::Int(1))]);
        b.output(&y);
        run_case(name, &b, &[vec![1, 3, 5, 4]]);
    }
}

#[test]
fn rms_normalisation_pattern() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 6, 10]);
    let two = b.constant("two", &[], vec![2.0]);
    let sq = b.node("Pow", &[&x, &two], &[]);
    let m = b.node("ReduceMean", &[&sq], &[("axes", Attr::Ints(vec![-1]))]);
    let eps = b.constant("eps", &[], vec![1e-5]);
    let v = b.node("Add", &[&m, &eps], &[]);
    let r = b.node("Sqrt", &[&v], &[]);
    let y = b.node("Div", &[&x, &r], &[]);
    b.output(&y);
    run_case("rms_norm", &b, &[vec![1, 6, 10]]);
}

/// An ONNX LayerNormalization node over `shape` with `attrs`, with or without a shift.
fn layer_norm_graph(
    shape: &[usize],
    attrs: &[(&str, Attr)],
    norm: &[usize],
    bias: bool,
) -> OnnxBuilder {
    let mut b = OnnxBuilder::new().opset(17);
    let x = b.input("x", shape);
    let n: usize = norm.iter().product();
    let scale = b.constant("scale", norm, random(n, 3));
    let mut ins = vec![x, scale];
    if bias {
        ins.push(b.constant("shift", norm, random(n, 4)));
    }
    let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
    let y = b.node("LayerNormalization", &refs, attrs);
    b.output(&y);
    b
}

#[test]
fn layer_normalization_becomes_one_op() {
    let eps = ("epsilon", Attr::Float(1e-6));
    // Tokens [N, T, D] as in a transformer; a 4-D input, whose last axis is strided in the
    // runtime's NHWC layout; and no shift input.
    let cases: [(&str, Vec<usize>, bool); 3] = [
        ("layer_norm_tokens", vec![2, 7, 48], true),
        ("layer_norm_4d", vec![1, 3, 5, 24], true),
        ("layer_norm_no_shift", vec![1, 9, 20], false),
    ];
    for (name, shape, bias) in cases {
        let d = *shape.last().unwrap();
        let b = layer_norm_graph(&shape, &[("axis", Attr::Int(-1)), eps.clone()], &[d], bias);
        let g = run_case(name, &b, &[shape]);
        assert_eq!(ops(&g), ["LayerNorm"], "{name}");
        assert_eq!(g.nodes[0].op, Op::LayerNorm { epsilon: 1e-6 }, "{name}");
    }
    // Normalizing over the last two axes is not the IR's LayerNorm: it stays decomposed.
    let b = layer_norm_graph(&[2, 6, 10], &[("axis", Attr::Int(1))], &[6, 10], true);
    let g = run_case("layer_norm_two_axes", &b, &[vec![2, 6, 10]]);
    assert!(!ops(&g).contains(&"LayerNorm"));
}

/// LayerNorm as exporters write it before opset 17 (mean, deviation, power 2, mean, add
/// epsilon, square root, division, scale, shift) is recognized too.
#[test]
fn decomposed_layer_norm_pattern() {
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 5, 32]);
    let axes = ("axes", Attr::Ints(vec![-1]));
    let mean = b.node("ReduceMean", &[&x], std::slice::from_ref(&axes));
    let d = b.node("Sub", &[&x, &mean], &[]);
    let two = b.constant("two", &[], vec![2.0]);
    let sq = b.node("Pow", &[&d, &two], &[]);
    let var = b.node("ReduceMean", &[&sq], &[axes]);
    let eps = b.constant("eps", &[], vec![1e-5]);
    let v = b.node("Add", &[&var, &eps], &[]);
    let std = b.node("Sqrt", &[&v], &[]);
    let n = b.node("Div", &[&d, &std], &[]);
    let scale = b.constant("scale", &[32], random(32, 5));
    let shift = b.constant("shift", &[32], random(32, 6));
    let s = b.node("Mul", &[&n, &scale], &[]);
    let y = b.node("Add", &[&s, &shift], &[]);
    b.output(&y);
    let g = run_case("layer_norm_decomposed", &b, &[vec![1, 5, 32]]);
    assert_eq!(ops(&g), ["LayerNorm"]);
}

/// One attention head group as in ViT-Ti: `softmax(q·kᵀ/√d)·v` on `[1, 3, 197, 64]`, with
/// the key transposed by a 4-D Transpose, then the exact-erf GELU of a dense layer.
#[test]
fn attention_matmul_softmax_block() {
    let mut b = OnnxBuilder::new().opset(17);
    let shape = [1, 3, 197, 64];
    let q = b.input("q", &shape);
    let k = b.input("k", &shape);
    let v = b.input("v", &shape);
    let kt = b.node(
        "Transpose",
        &[&k],
        &[("perm", Attr::Ints(vec![0, 1, 3, 2]))],
    );
    let s = b.node("MatMul", &[&q, &kt], &[]);
    let c = b.constant("inv_sqrt_d", &[], vec![0.125]);
    let s = b.node("Mul", &[&s, &c], &[]);
    let p = b.node("Softmax", &[&s], &[("axis", Attr::Int(-1))]);
    let y = b.node("MatMul", &[&p, &v], &[]);
    b.output(&y);
    let g = run_case(
        "attention",
        &b,
        &[shape.to_vec(), shape.to_vec(), shape.to_vec()],
    );
    let names = ops(&g);
    assert_eq!(
        names.iter().filter(|&&o| o == "MatMul").count(),
        2,
        "{names:?}"
    );
    assert!(names.contains(&"Softmax"), "{names:?}");

    // Dense layer then GELU written with erf: one FullyConnected with a fused GELU.
    let mut b = OnnxBuilder::new();
    let x = b.input("x", &[1, 197, 64]);
    let w = b.constant("w", &[64, 96], random(64 * 96, 8));
    let bias = b.constant("b", &[96], random(96, 9));
    let h = b.node("MatMul", &[&x, &w], &[]);
    let h = b.node("Add", &[&h, &bias], &[]);
    let sqrt2 = b.constant("sqrt2", &[], vec![std::f32::consts::SQRT_2]);
    let one = b.constant("one", &[], vec![1.0]);
    let half = b.constant("half", &[], vec![0.5]);
    let e = b.node("Div", &[&h, &sqrt2], &[]);
    let e = b.node("Erf", &[&e], &[]);
    let e = b.node("Add", &[&e, &one], &[]);
    let m = b.node("Mul", &[&h, &e], &[]);
    let y = b.node("Mul", &[&m, &half], &[]);
    b.output(&y);
    let g = run_case("dense_gelu", &b, &[vec![1, 197, 64]]);
    assert_eq!(ops(&g), ["FullyConnected"]);
    assert!(matches!(
        g.nodes[0].op,
        Op::FullyConnected {
            activation: Activation::Gelu,
            has_bias: true
        }
    ));
}
