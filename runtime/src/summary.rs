//! Where a model spends parameters, compute and memory: one row per operator with its
//! output shape, parameters, multiply-accumulates, activation memory and receptive field,
//! then totals and the weight memory each storage precision would take.

use serde::{Deserialize, Serialize};

use crate::ir::{Graph, Op};
use crate::meta::{Metadata, COUNTS_RECORD};

/// A model's size and compute, by the one definition `summary`, `inspect` and `zoo list`
/// share (torchvision's and the papers'):
///
/// - **parameters**: the elements of the model's learned tensors as its source file holds
///   them: convolution and dense weights and biases, BatchNorm / LayerNorm scale and shift;
///   not BatchNorm running mean and variance (statistics), not scalar constants (clip
///   bounds, epsilons), shape or index tensors, or quantization scales and zero points.
///   A file exported with BatchNorm folded into the convolutions holds fewer.
/// - **MACs**: multiply-accumulates of convolutions (depthwise and grouped included), dense
///   layers and matrix products, one per weight use; element-wise operators, pooling and
///   normalization count none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Parameters (see above).
    pub params: u64,
    /// Multiply-accumulates for one input (see above).
    pub macs: u64,
}

/// Where a model's [`Counts`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountsSource {
    /// Counted on the source model at conversion (the bundle's `counts` record).
    Source,
    /// Counted on the converted graph (a bundle written without the record): BatchNorms
    /// folded into convolutions are not counted.
    Graph,
}

/// The counts `convert` recorded in a model's metadata (none in older bundles).
pub fn recorded_counts(meta: &Metadata) -> Option<Counts> {
    meta.records
        .get(COUNTS_RECORD)
        .and_then(|v| serde_json::from_value::<Counts>(v.clone()).ok())
}

/// The counts of a converted model: its `counts` record, else what its graph holds.
pub fn model_counts(meta: &Metadata, graph: &Graph) -> (Counts, CountsSource) {
    match recorded_counts(meta) {
        Some(c) => (c, CountsSource::Source),
        None => (summarize(graph).counts(), CountsSource::Graph),
    }
}

impl CountsSource {
    /// What the parameter count covers, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            CountsSource::Source => {
                "the source model's learned tensors: BatchNorm scale and shift count, its \
                 running statistics do not"
            }
            CountsSource::Graph => {
                "the converted graph's constants (this bundle has no counts record: \
                 BatchNorms folded into convolutions are not counted)"
            }
        }
    }
}

/// One operator of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    pub name: String,
    pub op: &'static str,
    pub output_shape: Vec<usize>,
    /// Elements of the operator's constant tensor inputs (weights, biases, scales) as this
    /// graph stores them; scalar constants (clip bounds, epsilons) are not counted.
    pub params: u64,
    /// Multiply-accumulates of convolutions, dense layers and matrix products.
    pub macs: u64,
    /// Bytes of the operator's outputs at f32.
    pub activation_bytes: u64,
    /// Receptive field `[height, width]` in input pixels of one output element; `None` once
    /// a layer sees the whole input (global pooling, dense layers, tokens).
    pub receptive_field: Option<[usize; 2]>,
}

/// The whole-model figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub layers: Vec<LayerRow>,
    /// The rows' constants summed; `ferrolite summary` reports the model's [`Counts`]
    /// instead, which also counts BatchNorms the import folded.
    pub params: u64,
    /// Multiply-accumulates ([`Counts`]'s definition: invariant under the fusions).
    pub macs: u64,
    /// Sum of every activation, as a naive runtime would allocate them.
    pub activation_bytes: u64,
    /// Largest single activation.
    pub largest_activation_bytes: u64,
    /// Weight memory with every constant stored as f32.
    pub weight_bytes_fp32: u64,
    /// Weight memory with f16 storage.
    pub weight_bytes_fp16: u64,
    /// Weight memory with int8 conv / dense weights (plus an f32 scale per output channel)
    /// and f32 everything else.
    pub weight_bytes_int8: u64,
}

impl Summary {
    /// The rows' totals as [`Counts`] (the converted graph's constants and MACs).
    pub fn counts(&self) -> Counts {
        Counts {
            params: self.params,
            macs: self.macs,
        }
    }
}

/// Receptive-field state of a tensor: field size and distance between neighbouring
/// outputs, in input pixels, per spatial axis.
#[derive(Debug, Clone, Copy)]
struct Field {
    size: [usize; 2],
    jump: [usize; 2],
}

/// Summarize `g` (any graph: as converted, fused or not, or as read from a bundle).
pub fn summarize(g: &Graph) -> Summary {
    let mut field: Vec<Option<Field>> = vec![None; g.tensors.len()];
    for &i in &g.inputs {
        if g.tensors[i].shape.len() == 4 {
            field[i] = Some(Field {
                size: [1, 1],
                jump: [1, 1],
            });
        }
    }
    let mut layers = Vec::with_capacity(g.nodes.len());
    let (mut fp32, mut fp16, mut int8) = (0u64, 0u64, 0u64);
    for node in &g.nodes {
        let consts: Vec<usize> = node
            .inputs
            .iter()
            .copied()
            .filter(|&t| g.tensors[t].is_const())
            .collect();
        let params: u64 = consts
            .iter()
            .map(|&t| g.tensors[t].numel() as u64)
            .filter(|&n| n > 1)
            .sum();
        let quantizable = matches!(node.op, Op::Conv2d { .. } | Op::FullyConnected { .. });
        for (k, &t) in consts.iter().enumerate() {
            let n = g.tensors[t].numel() as u64;
            fp32 += 4 * n;
            fp16 += 2 * n;
            int8 += if quantizable && k == 0 {
                n + 4 * g.tensors[t].shape.first().copied().unwrap_or(1) as u64
            } else {
                4 * n
            };
        }
        let out = node.outputs.first().map(|&t| &g.tensors[t]);
        let out_numel = out.map_or(0, |t| t.numel()) as u64;
        let macs = match &node.op {
            Op::Conv2d { .. } => {
                let w = &g.tensors[node.inputs[1]].shape;
                out_numel * w[1..].iter().product::<usize>() as u64
            }
            Op::FullyConnected { .. } | Op::MatMul => {
                let x = &g.tensors[node.inputs[0]].shape;
                out_numel * x.last().copied().unwrap_or(0) as u64
            }
            _ => 0,
        };
        let input_field = node
            .inputs
            .iter()
            .filter(|&&t| !g.tensors[t].is_const())
            .filter_map(|&t| field[t])
            .reduce(|a, b| Field {
                size: [a.size[0].max(b.size[0]), a.size[1].max(b.size[1])],
                jump: [a.jump[0].max(b.jump[0]), a.jump[1].max(b.jump[1])],
            });
        let out_field = input_field.and_then(|f| propagate(&node.op, f, out.map(|t| &t.shape[..])));
        for &t in &node.outputs {
            field[t] = out_field;
        }
        layers.push(LayerRow {
            name: node.name.clone(),
            op: node.op.name(),
            output_shape: out.map(|t| t.shape.clone()).unwrap_or_default(),
            params,
            macs,
            activation_bytes: node
                .outputs
                .iter()
                .map(|&t| 4 * g.tensors[t].numel() as u64)
                .sum(),
            receptive_field: out_field.map(|f| f.size),
        });
    }
    Summary {
        params: layers.iter().map(|l| l.params).sum(),
        macs: layers.iter().map(|l| l.macs).sum(),
        activation_bytes: layers.iter().map(|l| l.activation_bytes).sum(),
        largest_activation_bytes: layers.iter().map(|l| l.activation_bytes).max().unwrap_or(0),
        weight_bytes_fp32: fp32,
        weight_bytes_fp16: fp16,
        weight_bytes_int8: int8,
        layers,
    }
}

/// The receptive field after `op`, or `None` once the output depends on the whole input.
fn propagate(op: &Op, f: Field, out_shape: Option<&[usize]>) -> Option<Field> {
    if out_shape.is_none_or(|s| s.len() != 4) {
        return None;
    }
    let window = match op {
        Op::Conv2d { window, .. } | Op::Pool2d { window, .. } => window,
        Op::Reduce { axes, .. } if axes.iter().any(|&a| a >= 2) => return None,
        Op::FullyConnected { .. } | Op::MatMul | Op::Transpose { .. } | Op::Reshape => return None,
        _ => return Some(f),
    };
    let mut g = f;
    for a in 0..2 {
        g.size[a] = f.size[a] + (window.kernel[a] - 1) * window.dilations[a] * f.jump[a];
        g.jump[a] = f.jump[a] * window.strides[a];
    }
    Some(g)
}
