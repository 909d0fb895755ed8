//! Shared fixtures for the bundle and validator tests: a small but real classifier and a
//! seeded PRNG.
#![allow(dead_code)]

use ferrolite_runtime::ir::{DataRef, PoolKind, ReduceOp, Window};
use ferrolite_runtime::meta::{InputSpec, OutputSpec, Preprocess};
use ferrolite_runtime::{
    Activation, AlignedBytes, DType, Graph, Metadata, Model, Node, Op, Precision, Tensor, Weights,
};

/// SplitMix64: tiny deterministic PRNG.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

pub fn act(name: &str, shape: &[usize]) -> Tensor {
    Tensor {
        name: name.into(),
        shape: shape.to_vec(),
        dtype: DType::F32,
        quant: None,
        data: None,
    }
}

pub fn node(name: &str, op: Op, inputs: &[usize], outputs: &[usize]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.to_vec(),
        outputs: outputs.to_vec(),
    }
}

pub fn window(k: usize, s: usize, p: usize) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        dilations: [1, 1],
        pads: [p; 4],
    }
}

/// Builder of constants into an aligned weights blob.
#[derive(Default)]
pub struct Consts(pub AlignedBytes);

impl Consts {
    pub fn f32(&mut self, name: &str, shape: &[usize], rng: &mut Rng) -> Tensor {
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect();
        let data: DataRef = self.0.push_aligned(&bytes);
        Tensor {
            data: Some(data),
            ..act(name, shape)
        }
    }
}

pub const LABELS: [&str; 5] = ["cat", "dog", "fox", "owl", "eel"];

/// conv 3x3 (3->8) + ReLU, depthwise 3x3 stride 2 + ReLU6, global average Reduce,
/// FullyConnected 8->5, with metadata carrying labels and preprocessing.
pub fn small_model(seed: u64) -> Model {
    let mut rng = Rng(seed);
    let mut c = Consts::default();
    let tensors = vec![
        act("image", &[1, 3, 8, 8]),               // 0
        c.f32("conv1.w", &[8, 3, 3, 3], &mut rng), // 1
        c.f32("conv1.b", &[8], &mut rng),          // 2
        act("conv1.out", &[1, 8, 8, 8]),           // 3
        c.f32("dw.w", &[8, 1, 3, 3], &mut rng),    // 4
        c.f32("dw.b", &[8], &mut rng),             // 5
        act("dw.out", &[1, 8, 4, 4]),              // 6
        act("pool.out", &[1, 8]),                  // 7
        c.f32("fc.w", &[5, 8], &mut rng),          // 8
        c.f32("fc.b", &[5], &mut rng),             // 9
        act("logits", &[1, 5]),                    // 10
    ];
    let nodes = vec![
        node(
            "conv1",
            Op::Conv2d {
                window: window(3, 1, 1),
                groups: 1,
                activation: Activation::Relu,
                has_bias: true,
                has_residual: false,
            },
            &[0, 1, 2],
            &[3],
        ),
        node(
            "dw",
            Op::Conv2d {
                window: window(3, 2, 1),
                groups: 8,
                activation: Activation::Clip { min: 0.0, max: 6.0 },
                has_bias: true,
                has_residual: false,
            },
            &[3, 4, 5],
            &[6],
        ),
        node(
            "gap",
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![2, 3],
                keep_dims: false,
            },
            &[6],
            &[7],
        ),
        node(
            "fc",
            Op::FullyConnected {
                activation: Activation::None,
                has_bias: true,
            },
            &[7, 8, 9],
            &[10],
        ),
    ];
    let graph = Graph {
        tensors,
        nodes,
        inputs: vec![0],
        outputs: vec![10],
    };
    let meta = Metadata {
        model_name: "tiny-classifier".into(),
        producer: "ferrolite test".into(),
        precision: Precision::Fp32,
        inputs: vec![InputSpec {
            name: "image".into(),
            shape: vec![1, 3, 8, 8],
            preprocess: Some(Preprocess {
                resize_shorter: Some(10),
                crop: Some([8, 8]),
                mean: [123.675, 116.28, 103.53],
                std: [58.395, 57.12, 57.375],
                ..Preprocess::default()
            }),
        }],
        outputs: vec![OutputSpec {
            name: "logits".into(),
            shape: vec![1, 5],
        }],
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        records: Default::default(),
    };
    let _ = PoolKind::Max; // keep the import used across test crates
    Model {
        meta,
        graph,
        weights: Weights::Owned(c.0),
    }
}

/// A fresh, unique directory in the system temp directory (no tempfile crate needed).
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferrolite-bundle-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
