//! Validator: shape rules checked against hand-computed shapes, and one hand-built bad graph
//! per rule with the error message checked to name the culprit.

mod bundle_common;

use bundle_common::{act, node, small_model, window};
use ferrolite_runtime::ir::{DataRef, PadMode, PoolKind, Quant, ReduceOp, Window};
use ferrolite_runtime::validate::{infer_output_shapes, validate_graph, validate_model};
use ferrolite_runtime::{Activation, BinaryOp, DType, Graph, Model, Op, Tensor};

fn shapes(op: Op, ins: &[&[usize]]) -> Result<Vec<Vec<usize>>, String> {
    let ts: Vec<Tensor> = ins.iter().map(|s| act("t", s)).collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    infer_output_shapes(&op, &refs, "n").map_err(|e| e.to_string())
}

fn one(op: Op, ins: &[&[usize]]) -> Vec<usize> {
    let mut v = shapes(op, ins).unwrap();
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

fn conv(k: usize, s: usize, p: usize, groups: usize, bias: bool, residual: bool) -> Op {
    Op::Conv2d {
        window: window(k, s, p),
        groups,
        activation: Activation::None,
        has_bias: bias,
        has_residual: residual,
    }
}

/// Error text of validating `model`, which must fail.
fn model_err(m: &Model) -> String {
    validate_model(m)
        .expect_err("validation should fail")
        .to_string()
}

fn graph_err(g: &Graph, wlen: usize) -> String {
    validate_graph(g, wlen)
        .expect_err("validation should fail")
        .to_string()
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error {e:?} should contain {p:?}");
    }
}

// ---- shape rules (hand-computed expectations) ----

#[test]
fn conv_shapes() {
    // 7x9 input, k3 s2 p1: (7+2-3)/2+1 = 4, (9+2-3)/2+1 = 5.
    assert_eq!(
        one(
            conv(3, 2, 1, 1, false, false),
            &[&[2, 4, 7, 9], &[6, 4, 3, 3]]
        ),
        [2, 6, 4, 5]
    );
    // dilation 2, k3 -> extent 5, no pad on 9x9: 5x5.
    let op = Op::Conv2d {
        window: Window {
            dilations: [2, 2],
            ..window(3, 1, 0)
        },
        groups: 2,
        activation: Activation::None,
        has_bias: true,
        has_residual: true,
    };
    assert_eq!(
        one(op, &[&[1, 4, 9, 9], &[6, 2, 3, 3], &[6], &[1, 6, 5, 5]]),
        [1, 6, 5, 5]
    );
}

#[test]
fn other_shapes() {
    let fc = Op::FullyConnected {
        activation: Activation::None,
        has_bias: false,
    };
    assert_eq!(one(fc, &[&[2, 3, 8], &[5, 8]]), [2, 3, 5]);
    assert_eq!(one(Op::MatMul, &[&[2, 1, 3, 4], &[5, 4, 6]]), [2, 5, 3, 6]);
    let add = Op::Binary {
        op: BinaryOp::Add,
        activation: Activation::None,
    };
    assert_eq!(one(add, &[&[4, 1, 3], &[2, 1]]), [4, 2, 3]);
    let pool = Op::Pool2d {
        kind: PoolKind::Max,
        window: window(3, 2, 1),
    };
    assert_eq!(one(pool, &[&[1, 8, 112, 112]]), [1, 8, 56, 56]);
    let red = |keep_dims| Op::Reduce {
        op: ReduceOp::Mean,
        axes: vec![3, 1],
        keep_dims,
    };
    assert_eq!(one(red(true), &[&[2, 3, 4, 5]]), [2, 1, 4, 1]);
    assert_eq!(one(red(false), &[&[2, 3, 4, 5]]), [2, 4]);
    assert_eq!(
        one(
            Op::Concat { axis: 1 },
            &[&[1, 2, 3], &[1, 5, 3], &[1, 1, 3]]
        ),
        [1, 8, 3]
    );
    assert_eq!(
        shapes(
            Op::Split {
                axis: 2,
                sizes: vec![1, 3]
            },
            &[&[2, 3, 4]]
        )
        .unwrap(),
        vec![vec![2, 3, 1], vec![2, 3, 3]]
    );
    // ceil((10-1)/4) = 3 (indices 1, 5, 9).
    assert_eq!(
        one(
            Op::Slice {
                axis: 0,
                start: 1,
                end: 10,
                step: 4
            },
            &[&[10, 2]]
        ),
        [3, 2]
    );
    assert_eq!(
        one(
            Op::Transpose {
                perm: vec![0, 2, 3, 1]
            },
            &[&[1, 3, 4, 5]]
        ),
        [1, 4, 5, 3]
    );
    assert_eq!(one(Op::Softmax { axis: 1 }, &[&[1, 10]]), [1, 10]);
    let pad = Op::Pad {
        pads: vec![(0, 0), (1, 2), (3, 0)],
        mode: PadMode::Reflect,
    };
    assert_eq!(one(pad, &[&[1, 4, 5]]), [1, 7, 8]);
    assert_eq!(
        one(
            Op::ChannelShuffle {
                groups: 2,
                splits: 1
            },
            &[&[1, 8, 2, 2]]
        ),
        [1, 8, 2, 2]
    );
    assert_eq!(
        one(Op::BatchNorm, &[&[1, 3, 2, 2], &[3], &[3]]),
        [1, 3, 2, 2]
    );
    assert_eq!(
        one(
            Op::LayerNorm { epsilon: 1e-6 },
            &[&[1, 197, 192], &[192], &[192]]
        ),
        [1, 197, 192]
    );
    assert!(shapes(Op::Reshape, &[&[2, 3]])
        .unwrap_err()
        .contains("declared output"));
}

// ---- one rule per test ----

#[test]
fn small_model_is_valid() {
    validate_model(&small_model(1)).unwrap();
}

#[test]
fn conv_weight_channels_per_group() {
    let e = shapes(
        conv(3, 1, 1, 1, false, false),
        &[&[1, 32, 8, 8], &[8, 16, 3, 3]],
    )
    .unwrap_err();
    assert_has(
        &e,
        &[
            "\"n\"",
            "Conv2d: weight has 16 input channels per group, input has 32 channels with groups=1",
        ],
    );
}

#[test]
fn conv_groups_divide_channels_and_outputs() {
    let e = shapes(
        conv(1, 1, 0, 3, false, false),
        &[&[1, 8, 4, 4], &[6, 2, 1, 1]],
    )
    .unwrap_err();
    assert_has(&e, &["8 channels, not divisible by groups=3"]);
    let e = shapes(
        conv(1, 1, 0, 2, false, false),
        &[&[1, 8, 4, 4], &[5, 4, 1, 1]],
    )
    .unwrap_err();
    assert_has(&e, &["5 output channels, not divisible by groups=2"]);
    let e = shapes(
        conv(1, 1, 0, 0, false, false),
        &[&[1, 8, 4, 4], &[5, 4, 1, 1]],
    )
    .unwrap_err();
    assert_has(&e, &["not divisible by groups=0"]);
}

#[test]
fn conv_kernel_bias_residual_and_window() {
    let e = shapes(
        conv(3, 1, 1, 1, false, false),
        &[&[1, 2, 8, 8], &[4, 2, 5, 5]],
    )
    .unwrap_err();
    assert_has(
        &e,
        &["weight kernel [5, 5] differs from window kernel [3, 3]"],
    );
    let e = shapes(
        conv(3, 1, 1, 1, true, false),
        &[&[1, 2, 8, 8], &[4, 2, 3, 3], &[5]],
    )
    .unwrap_err();
    assert_has(&e, &["bias has shape [5], expected [4]"]);
    let e = shapes(
        conv(3, 1, 1, 1, false, true),
        &[&[1, 2, 8, 8], &[4, 2, 3, 3], &[1, 4, 7, 8]],
    )
    .unwrap_err();
    assert_has(
        &e,
        &["residual has shape [1, 4, 7, 8], expected [1, 4, 8, 8]"],
    );
    let e = shapes(
        conv(5, 1, 0, 1, false, false),
        &[&[1, 2, 3, 3], &[4, 2, 5, 5]],
    )
    .unwrap_err();
    assert_has(&e, &["does not fit input 3x3"]);
    let e = shapes(
        conv(3, 0, 1, 1, false, false),
        &[&[1, 2, 8, 8], &[4, 2, 3, 3]],
    )
    .unwrap_err();
    assert_has(&e, &["strides [0, 0] must be in 1..="]);
    let e = shapes(conv(3, 1, 1, 1, false, false), &[&[1, 2, 8, 8]]).unwrap_err();
    assert_has(&e, &["expects 2 inputs, found 1"]);
}

#[test]
fn fc_matmul_binary_mismatches() {
    let fc = Op::FullyConnected {
        activation: Activation::None,
        has_bias: false,
    };
    assert_has(
        &shapes(fc, &[&[1, 7], &[5, 8]]).unwrap_err(),
        &["expects 8 input features, input has 7"],
    );
    assert_has(
        &shapes(Op::MatMul, &[&[3, 4], &[5, 6]]).unwrap_err(),
        &["inner dimensions differ"],
    );
    assert_has(
        &shapes(Op::MatMul, &[&[2, 3, 4], &[3, 4, 6]]).unwrap_err(),
        &["batch dimensions"],
    );
    let add = Op::Binary {
        op: BinaryOp::Add,
        activation: Activation::None,
    };
    assert_has(
        &shapes(add, &[&[2, 3], &[4]]).unwrap_err(),
        &["[2, 3] and [4] do not broadcast"],
    );
}

#[test]
fn pool_reduce_concat_split_slice() {
    let pool = Op::Pool2d {
        kind: PoolKind::Max,
        window: window(2, 2, 2),
    };
    assert_has(
        &shapes(pool, &[&[1, 1, 8, 8]]).unwrap_err(),
        &["pads [2, 2, 2, 2] must be smaller"],
    );
    let red = |axes: Vec<usize>| Op::Reduce {
        op: ReduceOp::Sum,
        axes,
        keep_dims: false,
    };
    assert_has(
        &shapes(red(vec![1, 1]), &[&[2, 3]]).unwrap_err(),
        &["axis 1 listed twice"],
    );
    assert_has(
        &shapes(red(vec![2]), &[&[2, 3]]).unwrap_err(),
        &["axis 2 out of range for rank 2"],
    );
    let e = shapes(Op::Concat { axis: 1 }, &[&[1, 2, 3], &[1, 2, 4]]).unwrap_err();
    assert_has(
        &e,
        &["input 1 shape [1, 2, 4] differs from input 0 shape [1, 2, 3] outside axis 1"],
    );
    let e = shapes(
        Op::Split {
            axis: 0,
            sizes: vec![1, 2],
        },
        &[&[4]],
    )
    .unwrap_err();
    assert_has(&e, &["sizes [1, 2] do not sum to dimension 4"]);
    let e = shapes(
        Op::Slice {
            axis: 0,
            start: 2,
            end: 5,
            step: 1,
        },
        &[&[4]],
    )
    .unwrap_err();
    assert_has(&e, &["range 2..5 step 1 invalid for dimension 4"]);
    let e = shapes(
        Op::Slice {
            axis: 0,
            start: 3,
            end: 2,
            step: 1,
        },
        &[&[4]],
    )
    .unwrap_err();
    assert_has(&e, &["range 3..2"]);
    let e = shapes(
        Op::Slice {
            axis: 0,
            start: 0,
            end: 2,
            step: 0,
        },
        &[&[4]],
    )
    .unwrap_err();
    assert_has(&e, &["step 0"]);
}

#[test]
fn transpose_softmax_pad_shuffle_batchnorm() {
    let e = shapes(
        Op::Transpose {
            perm: vec![0, 0, 1],
        },
        &[&[1, 2, 3]],
    )
    .unwrap_err();
    assert_has(&e, &["perm [0, 0, 1] is not a permutation of rank 3"]);
    assert_has(
        &shapes(Op::Softmax { axis: 2 }, &[&[1, 2]]).unwrap_err(),
        &["axis 2 out of range"],
    );
    let pad = |pads, mode| Op::Pad { pads, mode };
    let e = shapes(pad(vec![(0, 0), (4, 0)], PadMode::Reflect), &[&[1, 4]]).unwrap_err();
    assert_has(
        &e,
        &["reflect pads (4, 0) on axis 1 must be smaller than dimension 4"],
    );
    let e = shapes(pad(vec![(0, 0)], PadMode::Edge), &[&[1, 4]]).unwrap_err();
    assert_has(&e, &["1 pad pairs for rank 2"]);
    let e = shapes(pad(vec![(0, 0), (0, 1 << 30)], PadMode::Edge), &[&[1, 4]]).unwrap_err();
    assert_has(&e, &["exceed"]);
    let e = shapes(
        Op::ChannelShuffle {
            groups: 3,
            splits: 1,
        },
        &[&[1, 8, 2, 2]],
    )
    .unwrap_err();
    assert_has(&e, &["8 channels not divisible by groups=3"]);
    // The fused form: inputs concatenated on axis 1, the result split evenly.
    let shuffle = |groups, splits| Op::ChannelShuffle { groups, splits };
    assert_eq!(
        shapes(shuffle(2, 2), &[&[1, 6, 3, 3], &[1, 2, 3, 3]]).unwrap(),
        [[1, 4, 3, 3], [1, 4, 3, 3]]
    );
    let e = shapes(shuffle(2, 3), &[&[1, 6, 3, 3], &[1, 2, 3, 3]]).unwrap_err();
    assert_has(&e, &["8 channels do not split into 3 equal outputs"]);
    let e = shapes(shuffle(2, 0), &[&[1, 8, 3, 3]]).unwrap_err();
    assert_has(&e, &["do not split into 0"]);
    let e = shapes(shuffle(2, 1), &[&[1, 4, 3, 3], &[1, 4, 3, 2]]).unwrap_err();
    assert_has(
        &e,
        &["input 1 shape [1, 4, 3, 2] differs from input 0 shape [1, 4, 3, 3] outside axis 1"],
    );
    assert!(shapes(shuffle(2, 1), &[]).is_err());
    let e = shapes(Op::BatchNorm, &[&[1, 3, 2, 2], &[3], &[4]]).unwrap_err();
    assert_has(&e, &["shift has shape [4], expected [3]"]);
    let ln = |epsilon| Op::LayerNorm { epsilon };
    let e = shapes(ln(1e-5), &[&[2, 8], &[2], &[8]]).unwrap_err();
    assert_has(&e, &["scale has shape [2], expected [8]"]);
    let e = shapes(ln(0.0), &[&[2, 8], &[8], &[8]]).unwrap_err();
    assert_has(&e, &["epsilon 0 must be finite and positive"]);
    let e = shapes(ln(f32::NAN), &[&[2, 8], &[8], &[8]]).unwrap_err();
    assert_has(&e, &["must be finite and positive"]);
    let e = shapes(ln(1e-5), &[&[], &[1], &[1]]).unwrap_err();
    assert_has(&e, &["input must have rank >= 1"]);
}

#[test]
fn activation_parameters() {
    let op = Op::Unary {
        activation: Activation::Clip { min: 6.0, max: 0.0 },
    };
    assert_has(
        &shapes(op, &[&[2]]).unwrap_err(),
        &["invalid activation parameters"],
    );
}

#[test]
fn tensor_id_out_of_range() {
    let mut m = small_model(1);
    m.graph.nodes[2].inputs[0] = 50;
    assert_has(
        &model_err(&m),
        &[
            "\"gap\"",
            "input refers to tensor #50, but the graph has 11 tensors",
        ],
    );
    let mut m = small_model(1);
    m.graph.outputs[0] = 11;
    assert_has(&model_err(&m), &["graph output refers to tensor #11"]);
}

#[test]
fn graph_inputs_outputs() {
    let mut m = small_model(1);
    m.graph.inputs.clear();
    assert_has(&model_err(&m), &["graph has no inputs"]);
    let mut m = small_model(1);
    m.graph.outputs.clear();
    assert_has(&model_err(&m), &["graph has no outputs"]);
    let mut m = small_model(1);
    m.graph.inputs = vec![1];
    assert_has(
        &model_err(&m),
        &["graph input tensor #1 \"conv1.w\" is a constant"],
    );
    let mut m = small_model(1);
    m.graph.inputs = vec![0, 3];
    assert_has(
        &model_err(&m),
        &[
            "\"conv1\"",
            "output tensor #3 \"conv1.out\" is already a graph input",
        ],
    );
}

#[test]
fn tensor_produced_twice_or_never() {
    let mut m = small_model(1);
    m.graph.nodes[1].outputs = vec![3];
    assert_has(
        &model_err(&m),
        &[
            "\"dw\"",
            "#3 \"conv1.out\" is already a graph input or produced by another node",
        ],
    );
    let mut m = small_model(1);
    m.graph.tensors.push(act("orphan", &[4]));
    assert_has(
        &model_err(&m),
        &["tensor #11 \"orphan\" is neither a constant"],
    );
}

#[test]
fn nodes_out_of_topological_order() {
    let mut m = small_model(1);
    m.graph.nodes.swap(0, 1);
    assert_has(
        &model_err(&m),
        &["\"dw\"", "#3 \"conv1.out\" is used before it is produced"],
    );
}

#[test]
fn declared_shape_must_match_inferred() {
    let mut m = small_model(1);
    m.graph.tensors[6].shape = vec![1, 8, 5, 5];
    m.graph.tensors[7].shape = vec![1, 8];
    assert_has(&model_err(&m), &["\"dw\"", "output 0 \"dw.out\" is declared with shape [1, 8, 5, 5] but the op produces [1, 8, 4, 4]"]);
}

#[test]
fn reshape_keeps_element_count() {
    let g = Graph {
        tensors: vec![act("x", &[2, 6]), act("y", &[3, 5])],
        nodes: vec![node("r", Op::Reshape, &[0], &[1])],
        inputs: vec![0],
        outputs: vec![1],
    };
    assert_has(
        &graph_err(&g, 0),
        &[
            "\"r\"",
            "output [3, 5] has a different element count than input [2, 6]",
        ],
    );
    let ok = Graph {
        tensors: vec![act("x", &[2, 6]), act("y", &[3, 4])],
        ..g
    };
    validate_graph(&ok, 0).unwrap();
}

#[test]
fn float_ops_need_f32() {
    let mut m = small_model(1);
    m.graph.tensors[7].dtype = DType::I32;
    assert_has(
        &model_err(&m),
        &[
            "\"gap\"",
            "Reduce: output \"pool.out\" has unsupported dtype I32",
        ],
    );
    let mut m = small_model(1);
    m.graph.tensors[3].dtype = DType::F16;
    assert_has(
        &model_err(&m),
        &[
            "\"conv1\"",
            "output \"conv1.out\" has unsupported dtype F16",
        ],
    );
}

#[test]
fn conv_weights_must_be_constants() {
    let mut g = Graph {
        tensors: vec![
            act("x", &[1, 2, 4, 4]),
            act("w", &[3, 2, 1, 1]),
            act("y", &[1, 3, 4, 4]),
        ],
        nodes: vec![node("c", conv(1, 1, 0, 1, false, false), &[0, 1], &[2])],
        inputs: vec![0, 1],
        outputs: vec![2],
    };
    assert_has(
        &graph_err(&g, 0),
        &["\"c\"", "input 1 \"w\" must be a constant"],
    );
    g.tensors[1].data = Some(DataRef { offset: 0, len: 24 });
    g.inputs = vec![0];
    validate_graph(&g, 24).unwrap();
}

fn quant_graph(out_dtype: DType, quant: Option<Quant>) -> Graph {
    Graph {
        tensors: vec![
            act("x", &[1, 4]),
            Tensor {
                dtype: out_dtype,
                quant,
                ..act("q", &[1, 4])
            },
            act("y", &[1, 4]),
        ],
        nodes: vec![
            node("quant", Op::Quantize, &[0], &[1]),
            node("dequant", Op::Dequantize, &[1], &[2]),
        ],
        inputs: vec![0],
        outputs: vec![2],
    }
}

#[test]
fn quantize_dequantize_dtypes_and_params() {
    let pt = |scale, zero_point| Some(Quant::PerTensor { scale, zero_point });
    validate_graph(&quant_graph(DType::U8, pt(0.1, 128)), 0).unwrap();
    validate_graph(&quant_graph(DType::I8, pt(0.1, -3)), 0).unwrap();
    let e = graph_err(&quant_graph(DType::U8, None), 0);
    assert_has(
        &e,
        &[
            "\"quant\"",
            "output must be i8/u8 with quantization parameters",
        ],
    );
    let e = graph_err(&quant_graph(DType::I32, pt(0.1, 0)), 0);
    assert_has(&e, &["\"quant\"", "Quantize: output must be i8/u8"]);
    let e = graph_err(&quant_graph(DType::U8, pt(0.0, 0)), 0);
    assert_has(
        &e,
        &["tensor #1 \"q\": quantization scale 0 is not finite and positive"],
    );
    let e = graph_err(&quant_graph(DType::U8, pt(f32::INFINITY, 0)), 0);
    assert_has(&e, &["scale inf"]);
    let e = graph_err(&quant_graph(DType::I8, pt(0.5, 200)), 0);
    assert_has(&e, &["zero point 200 out of range for I8"]);
    let e = graph_err(&quant_graph(DType::F32, pt(0.5, 0)), 0);
    assert_has(&e, &["quantization parameters on a F32 tensor"]);
    let pc = |axis, n| {
        Some(Quant::PerChannel {
            axis,
            scales: vec![0.5; n],
            zero_points: vec![0; n],
        })
    };
    validate_graph(&quant_graph(DType::I8, pc(1, 4)), 0).unwrap();
    assert_has(
        &graph_err(&quant_graph(DType::I8, pc(2, 4)), 0),
        &["per-channel axis 2 out of range for rank 2"],
    );
    assert_has(
        &graph_err(&quant_graph(DType::I8, pc(1, 3)), 0),
        &["axis 1 has 4 channels but 3 scales"],
    );
}

#[test]
fn constant_data_refs() {
    let mut m = small_model(1);
    let wlen = m.weights.bytes().len();
    m.graph.tensors[2].data = Some(DataRef {
        offset: 32,
        len: 32,
    });
    assert_has(
        &model_err(&m),
        &["tensor #2 \"conv1.b\": data offset 32 is not a multiple of 64"],
    );
    m.graph.tensors[2].data = Some(DataRef {
        offset: (wlen.div_ceil(64) * 64) as u64,
        len: 32,
    });
    assert_has(&model_err(&m), &["conv1.b", "outside the"]);
    m.graph.tensors[2].data = Some(DataRef {
        offset: u64::MAX - 63,
        len: 32,
    });
    assert_has(&model_err(&m), &["conv1.b", "outside the"]);
    m.graph.tensors[2].data = Some(DataRef { offset: 0, len: 28 });
    assert_has(
        &model_err(&m),
        &["data length 28 does not match shape [8] of F32 (32 bytes)"],
    );
}

#[test]
fn hostile_sizes_are_capped() {
    let mut m = small_model(1);
    m.graph.tensors[7].shape = vec![1; 9];
    assert_has(
        &model_err(&m),
        &["\"pool.out\": rank 9 exceeds the maximum 8"],
    );
    m.graph.tensors[7].shape = vec![usize::MAX, 2];
    assert_has(&model_err(&m), &["more than 268435456 elements"]);
    m.graph.tensors[7].shape = vec![1 << 15, 1 << 14];
    assert_has(&model_err(&m), &["more than 268435456 elements"]);
    m.graph.tensors[7].shape = vec![0, 8];
    assert_has(&model_err(&m), &["dimension 0 is 0"]);
    // Many tensors each under the cap but too big together.
    let big: Vec<Tensor> = (0..20).map(|i| act(&format!("t{i}"), &[1 << 27])).collect();
    let g = Graph {
        tensors: big,
        nodes: vec![],
        inputs: vec![0],
        outputs: vec![0],
    };
    assert_has(
        &graph_err(&g, 0),
        &["non-constant tensors need more than 4294967296 bytes"],
    );
}

#[test]
fn metadata_consistency() {
    let mut m = small_model(1);
    m.meta.outputs.clear();
    assert_has(
        &model_err(&m),
        &["metadata lists 1 inputs / 0 outputs, graph has 1 / 1"],
    );
    let mut m = small_model(1);
    m.meta.inputs[0].shape = vec![1, 3, 9, 9];
    assert_has(&model_err(&m), &["input \"image\" has shape [1, 3, 9, 9]"]);
    let mut m = small_model(1);
    m.meta.outputs[0].shape = vec![5];
    assert_has(&model_err(&m), &["output \"logits\" has shape [5]"]);
    let mut m = small_model(1);
    m.meta.labels.pop();
    assert_has(&model_err(&m), &["4 labels for an output with 5 classes"]);
    let pre = |f: &dyn Fn(&mut ferrolite_runtime::Preprocess)| {
        let mut m = small_model(1);
        f(m.meta.inputs[0].preprocess.as_mut().unwrap());
        model_err(&m)
    };
    assert_has(&pre(&|p| p.std[1] = 0.0), &["std != 0"]);
    assert_has(&pre(&|p| p.mean[0] = f32::NAN), &["finite"]);
    assert_has(
        &pre(&|p| p.resize_shorter = Some(6)),
        &["crop [8, 8] is larger than resize_shorter 6"],
    );
    assert_has(&pre(&|p| p.resize_shorter = Some(0)), &["resize_shorter 0"]);
    assert_has(
        &pre(&|p| p.crop = Some([7, 8])),
        &["crop [7, 8] differs from the input's spatial size [8, 8]"],
    );
    assert_has(
        &pre(&|p| p.layout = ferrolite_runtime::meta::ImageLayout::Nhwc),
        &["4-D with 3 channels"],
    );
}

#[test]
fn quantized_conv_accepted_with_int8_rules() {
    let q = |dtype, scale| Tensor {
        dtype,
        quant: Some(Quant::PerTensor {
            scale,
            zero_point: 0,
        }),
        ..act("", &[])
    };
    let w = Tensor {
        name: "w".into(),
        shape: vec![4, 2, 1, 1],
        quant: Some(Quant::PerChannel {
            axis: 0,
            scales: vec![0.1; 4],
            zero_points: vec![0; 4],
        }),
        dtype: DType::I8,
        data: Some(DataRef { offset: 0, len: 8 }),
    };
    let bias = Tensor {
        name: "b".into(),
        shape: vec![4],
        dtype: DType::I32,
        quant: None,
        data: Some(DataRef {
            offset: 64,
            len: 16,
        }),
    };
    let mut g = Graph {
        tensors: vec![
            Tensor {
                name: "x".into(),
                shape: vec![1, 2, 3, 3],
                ..q(DType::U8, 0.02)
            },
            w,
            bias,
            Tensor {
                name: "y".into(),
                shape: vec![1, 4, 3, 3],
                ..q(DType::U8, 0.05)
            },
        ],
        nodes: vec![node(
            "qconv",
            conv(1, 1, 0, 1, true, false),
            &[0, 1, 2],
            &[3],
        )],
        inputs: vec![0],
        outputs: vec![3],
    };
    validate_graph(&g, 80).unwrap();
    g.tensors[2].dtype = DType::F32;
    assert_has(
        &graph_err(&g, 80),
        &["\"qconv\"", "input 2 \"b\" has unsupported dtype F32"],
    );
    g.tensors[2].dtype = DType::I32;
    g.tensors[3].quant = None;
    assert_has(
        &graph_err(&g, 80),
        &["\"qconv\"", "output \"y\" has unsupported dtype U8"],
    );
}

#[test]
fn crc_is_iso_hdlc_as_documented() {
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert!(!ferrolite_runtime::bundle::looks_like_bundle(
        b"\x89PNG\r\n\x1a\n"
    ));
    assert!(!ferrolite_runtime::bundle::looks_like_bundle(b"\x89FL"));
}
