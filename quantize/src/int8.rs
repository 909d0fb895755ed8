//! int8 post-training quantization of a converted fp32 model (scheme in
//! docs/quantization.md):
//! - weights of convolutions and fully connected layers: symmetric int8, one scale per
//!   output channel (`scale = max|w| / 127`);
//! - activations: unsigned 8-bit, one scale and zero point per tensor, from the calibrated
//!   range widened to include zero;
//! - biases: int32 at scale `input scale * weight scale[c]`;
//! - data movement (reshape, channel shuffle, concat, split, slice, transpose) and max
//!   pooling keep their operands' quantization, so one range covers all tensors they link;
//! - a convolution or FC producing a model output writes f32 directly.
//!
//! Nodes without an int8 kernel stay fp32, with Quantize / Dequantize where the two meet.
//! [`quantize_model`] reports each of them and why.
//!
//! A model that was already quantized (an imported ONNX QDQ model, [`crate::qdq`]) passes
//! its parameters in [`Calibration::fixed_activations`], [`Calibration::fixed_weights`] and
//! [`Calibration::fixed_biases`]: they are used as given (no bias correction), and a class
//! of linked tensors with different given parameters takes [`shared_quant`] of them.

use std::collections::HashMap;

use anyhow::{bail, Result};
use ferrolite_runtime::ir::{
    Activation, BinaryOp, DType, DataRef, Graph, Node, Op, PoolKind, Quant, ReduceOp, Tensor,
    TensorId,
};
use ferrolite_runtime::meta::Precision;
use ferrolite_runtime::{AlignedBytes, Model, Weights};

use crate::calibrate::Calibration;

/// An fp32 node left out of int8 and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFloat {
    /// Node name.
    pub node: String,
    /// Op name.
    pub op: &'static str,
    /// Why it has no int8 version.
    pub reason: String,
}

/// The fixed per-tensor parameters of tensor `t`, if the model gives some.
fn fixed_of(calib: &Calibration, t: TensorId) -> Option<(f32, i32)> {
    match calib.fixed_activations.get(t) {
        Some(Some(Quant::PerTensor { scale, zero_point })) => Some((*scale, *zero_point)),
        _ => None,
    }
}

/// Why a node cannot run in int8, or `None` when it can.
fn int8_blocker(g: &Graph, n: &Node, calib: &Calibration) -> Option<String> {
    let x = n.inputs.first().and_then(|&t| g.tensors.get(t))?;
    if x.is_const() || x.dtype != DType::F32 {
        return Some("its input is a constant or not f32".into());
    }
    let fusable = |a: &Activation| {
        matches!(
            a,
            Activation::None | Activation::Relu | Activation::Clip { .. }
        )
    };
    let ok = match &n.op {
        Op::Conv2d { activation, .. } | Op::FullyConnected { activation, .. } => {
            if !fusable(activation) {
                return Some(format!(
                    "fused activation {activation:?} has no int8 form yet"
                ));
            }
            let w = &g.tensors[n.inputs[1]];
            if w.dtype != DType::F32 {
                return Some("weights are not f32".into());
            }
            matches!(n.op, Op::FullyConnected { .. }) || x.shape.len() == 4
        }
        Op::Pool2d { .. } => x.shape.len() == 4,
        Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            ..
        } => {
            let mut a = axes.clone();
            a.sort();
            x.shape.len() == 4 && a == [2, 3]
        }
        // Any element-wise function runs as a 256-entry table.
        Op::Unary { .. } => true,
        Op::Binary {
            op: BinaryOp::Add | BinaryOp::Mul,
            activation,
        } => {
            if !fusable(activation) {
                return Some(format!("fused activation {activation:?} on a binary op"));
            }
            let y = &g.tensors[n.outputs[0]];
            let operands_ok = n.inputs.iter().all(|&t| {
                let t = &g.tensors[t];
                !t.is_const() && t.dtype == DType::F32
            });
            let per_channel =
                |t: &Tensor| y.shape.len() == 4 && t.shape == [y.shape[0], y.shape[1], 1, 1];
            let shapes_ok = n.inputs.iter().all(|&t| {
                let t = &g.tensors[t];
                t.shape == y.shape || per_channel(t)
            });
            if !operands_ok {
                return Some("a constant operand has no int8 form yet".into());
            }
            shapes_ok
        }
        other => return Some(format!("{} has no int8 kernel yet", other.name())),
    };
    if !ok {
        return Some("this geometry has no int8 kernel yet".into());
    }
    let activations = match n.op {
        Op::Binary { .. } => n.inputs.len(),
        _ => 1,
    };
    let needs = n.inputs.iter().take(activations).chain(n.outputs.first());
    for &t in needs {
        if calib.ranges.get(t).copied().flatten().is_none() && fixed_of(calib, t).is_none() {
            return Some(format!(
                "no calibrated range or given quantization for tensor {:?}",
                g.tensors[t].name
            ));
        }
    }
    None
}

/// Whether an op only moves bytes (its outputs can share the inputs' quantization).
fn moves_data(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape
            | Op::ChannelShuffle { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Transpose { .. }
    )
}

fn find(parent: &mut [usize], mut t: usize) -> usize {
    while parent[t] != t {
        parent[t] = parent[parent[t]];
        t = parent[t];
    }
    t
}

/// The real range `[lo, hi]` that u8 parameters `(scale, zero_point)` represent.
pub fn quant_range(scale: f32, zero_point: i32) -> (f32, f32) {
    (
        scale * (0 - zero_point) as f32,
        scale * (255 - zero_point) as f32,
    )
}

/// One quantization for tensors that must share it (linked by data movement), from the
/// parameters some of them were given and the calibrated range of the others: the first
/// given parameters whose range covers all the others' and `range` (exactly as given), else
/// [`activation_quant`] of the union of all ranges. `None` when there is nothing to go by.
pub fn shared_quant(given: &[(f32, i32)], range: Option<(f32, f32)>) -> Option<Quant> {
    let ranges: Vec<(f32, f32)> = given.iter().map(|&(s, z)| quant_range(s, z)).collect();
    let (lo, hi) = ranges
        .iter()
        .copied()
        .chain(range)
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))?;
    for (&(scale, zero_point), &(l, h)) in given.iter().zip(&ranges) {
        if l <= lo && h >= hi {
            return Some(Quant::PerTensor { scale, zero_point });
        }
    }
    Some(activation_quant(lo, hi))
}

/// u8 per-tensor parameters covering `[lo, hi]` (widened to include zero).
pub fn activation_quant(lo: f32, hi: f32) -> Quant {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = (hi - lo).max(1e-6);
    let scale = span / 255.0;
    let zero_point = ((-lo / scale).round() as i32).clamp(0, 255);
    Quant::PerTensor { scale, zero_point }
}

/// Symmetric per-row int8: `(values, scales)` for a weight of `rows` rows.
pub fn quantize_rows(w: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let len = w.len() / rows.max(1);
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks(len.max(1)).take(rows) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|&v| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// A copy of `model` in which every activation an int8 kernel cannot apply as a clamp
/// (hard-swish, SiLU, sigmoid…) is split from its convolution, FC or binary op into its own
/// element-wise node, so calibration observes the tensor between them and the activation
/// runs as an int8 table. Run calibration and [`quantize_model`] on the result.
pub fn split_activations(model: &Model) -> Model {
    let g = &model.graph;
    let mut graph = Graph {
        tensors: g.tensors.clone(),
        nodes: Vec::with_capacity(g.nodes.len()),
        inputs: g.inputs.clone(),
        outputs: g.outputs.clone(),
    };
    let clamp = |a: &Activation| {
        matches!(
            a,
            Activation::None | Activation::Relu | Activation::Clip { .. }
        )
    };
    for n in &g.nodes {
        let mut n = n.clone();
        let split = match &mut n.op {
            Op::Conv2d { activation, .. }
            | Op::FullyConnected { activation, .. }
            | Op::Binary { activation, .. }
                if !clamp(activation) && n.outputs.len() == 1 =>
            {
                Some(std::mem::take(activation))
            }
            _ => None,
        };
        match split {
            Some(activation) => {
                let y = n.outputs[0];
                let mut pre = graph.tensors[y].clone();
                pre.name = format!("{}.pre", pre.name);
                graph.tensors.push(pre);
                let t = graph.tensors.len() - 1;
                n.outputs[0] = t;
                let name = format!("{}.activation", n.name);
                graph.nodes.push(n);
                graph.nodes.push(Node {
                    name,
                    op: Op::Unary { activation },
                    inputs: vec![t],
                    outputs: vec![y],
                });
            }
            None => graph.nodes.push(n),
        }
    }
    Model {
        meta: model.meta.clone(),
        graph,
        weights: Weights::Owned(AlignedBytes::from_slice(model.weights.bytes())),
    }
}

/// Result of [`quantize_model`].
pub struct Quantized {
    /// The int8 model.
    pub model: Model,
    /// Nodes left in fp32 and why.
    pub kept_float: Vec<KeptFloat>,
}

/// Builds the int8 graph node by node, keeping an f32 and a quantized version of each
/// original tensor as they become needed.
struct Rewriter<'a> {
    src: &'a Model,
    tensors: Vec<Tensor>,
    /// New constant bytes by new tensor id (others keep their source data).
    data: HashMap<TensorId, Vec<u8>>,
    nodes: Vec<Node>,
    fver: HashMap<TensorId, TensorId>,
    qver: HashMap<TensorId, TensorId>,
    quant_of: Vec<Option<Quant>>,
}

impl Rewriter<'_> {
    fn add(&mut self, t: Tensor) -> TensorId {
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    /// The f32 version of original tensor `t`, dequantizing if only a q version exists.
    fn f32_of(&mut self, t: TensorId) -> TensorId {
        if let Some(&f) = self.fver.get(&t) {
            return f;
        }
        let q = self.qver[&t];
        let mut ft = self.src.graph.tensors[t].clone();
        ft.name = format!("{}.f32", ft.name);
        let f = self.add(ft);
        self.nodes.push(Node {
            name: format!("{}.dequantize", self.src.graph.tensors[t].name),
            op: Op::Dequantize,
            inputs: vec![q],
            outputs: vec![f],
        });
        self.fver.insert(t, f);
        f
    }

    /// Round the f32 version of original tensor `t` through its 8-bit quantization
    /// (Quantize then Dequantize): what a QDQ model does to a tensor it fixes when both
    /// its producer and a reader stay fp32.
    fn round_through_q8(&mut self, t: TensorId) {
        let q = self.q8_of(t);
        let mut ft = self.src.graph.tensors[t].clone();
        ft.name = format!("{}.q8.f32", ft.name);
        let f = self.add(ft);
        self.nodes.push(Node {
            name: format!("{}.dequantize", self.src.graph.tensors[t].name),
            op: Op::Dequantize,
            inputs: vec![q],
            outputs: vec![f],
        });
        self.fver.insert(t, f);
    }

    /// The quantized version of original tensor `t`, quantizing its f32 version if needed.
    fn q8_of(&mut self, t: TensorId) -> TensorId {
        if let Some(&q) = self.qver.get(&t) {
            return q;
        }
        let f = self.f32_of(t);
        let q = self.new_q8(t, "q8");
        self.nodes.push(Node {
            name: format!("{}.quantize", self.src.graph.tensors[t].name),
            op: Op::Quantize,
            inputs: vec![f],
            outputs: vec![q],
        });
        q
    }

    /// A fresh u8 tensor standing for original `t`, registered as its q version.
    fn new_q8(&mut self, t: TensorId, suffix: &str) -> TensorId {
        let mut qt = self.src.graph.tensors[t].clone();
        qt.name = format!("{}.{suffix}", qt.name);
        qt.dtype = DType::U8;
        qt.quant = self.quant_of[t].clone();
        qt.data = None;
        let q = self.add(qt);
        self.qver.insert(t, q);
        q
    }

    fn new_const(
        &mut self,
        name: String,
        shape: Vec<usize>,
        dtype: DType,
        q: Option<Quant>,
        bytes: Vec<u8>,
    ) -> TensorId {
        let id = self.add(Tensor {
            name,
            shape,
            dtype,
            quant: q,
            data: Some(DataRef { offset: 0, len: 0 }),
        });
        self.data.insert(id, bytes);
        id
    }
}

/// Quantize `model` (fp32, as converted) to int8 with what calibration measured (or the
/// parameters the model fixes, see [`Calibration::fixed_activations`]).
pub fn quantize_model(model: &Model, calib: &Calibration) -> Result<Quantized> {
    let ranges = &calib.ranges;
    let g = &model.graph;
    let nt = g.tensors.len();
    check_fixed(g, calib)?;
    let blockers: Vec<Option<String>> = g.nodes.iter().map(|n| int8_blocker(g, n, calib)).collect();
    // Which tensors have a q version: outputs of int8 nodes, then through data movement
    // whose inputs all have one.
    let mut has_q = vec![false; nt];
    let mut moved = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        if blockers[i].is_none() {
            for &t in &n.outputs {
                has_q[t] = true;
            }
        } else if moves_data(&n.op) && n.inputs.iter().all(|&t| has_q[t]) {
            moved[i] = true;
            for &t in &n.outputs {
                has_q[t] = true;
            }
        }
    }
    // Data movement and max pooling link tensors into one quantization class.
    let mut parent: Vec<usize> = (0..nt).collect();
    for (i, n) in g.nodes.iter().enumerate() {
        let links = moved[i]
            || (blockers[i].is_none()
                && matches!(
                    n.op,
                    Op::Pool2d {
                        kind: PoolKind::Max,
                        ..
                    }
                ));
        if links {
            let r = find(&mut parent, n.inputs[0]);
            for &t in n.inputs.iter().chain(&n.outputs) {
                let rt = find(&mut parent, t);
                parent[rt] = r;
            }
        }
    }
    let mut class_range: HashMap<usize, (f32, f32)> = HashMap::new();
    let mut class_given: HashMap<usize, Vec<(f32, i32)>> = HashMap::new();
    for t in 0..nt {
        let r = find(&mut parent, t);
        if let Some((lo, hi)) = ranges.get(t).copied().flatten() {
            let e = class_range.entry(r).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
        if let Some(p) = fixed_of(calib, t) {
            class_given.entry(r).or_default().push(p);
        }
    }
    let quant_of: Vec<Option<Quant>> = (0..nt)
        .map(|t| {
            let r = find(&mut parent, t);
            let given = class_given.get(&r).map(Vec::as_slice).unwrap_or_default();
            shared_quant(given, class_range.get(&r).copied())
        })
        .collect();
    // A tensor with given parameters that an fp32 node produces (or the graph input) and an
    // fp32 node reads is rounded through them, as the model prescribes; int8 readers get the
    // quantized version anyway. Model outputs are never rounded to 8 bits.
    let mut fp32_reader = vec![false; nt];
    for (i, n) in g.nodes.iter().enumerate() {
        if blockers[i].is_some() && !moved[i] {
            for &t in &n.inputs {
                fp32_reader[t] = true;
            }
        }
    }
    let round_trip =
        |t: TensorId| fixed_of(calib, t).is_some() && fp32_reader[t] && !g.outputs.contains(&t);
    let mut rw = Rewriter {
        src: model,
        tensors: Vec::new(),
        data: HashMap::new(),
        nodes: Vec::new(),
        fver: HashMap::new(),
        qver: HashMap::new(),
        quant_of,
    };
    for (t, tensor) in g.tensors.iter().enumerate() {
        if tensor.is_const() || g.inputs.contains(&t) {
            let id = rw.add(tensor.clone());
            rw.fver.insert(t, id);
        }
    }
    let inputs: Vec<TensorId> = g.inputs.iter().map(|t| rw.fver[t]).collect();
    for &t in &g.inputs {
        if round_trip(t) {
            rw.round_through_q8(t);
        }
    }
    let mut kept_float = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if blockers[i].is_none() {
            quantize_node(&mut rw, n, calib)?;
        } else if moved[i] {
            let inputs = n.inputs.iter().map(|&t| rw.q8_of(t)).collect();
            let outputs = n.outputs.iter().map(|&t| rw.new_q8(t, "q8")).collect();
            rw.nodes.push(Node {
                inputs,
                outputs,
                ..n.clone()
            });
        } else {
            let inputs = n.inputs.iter().map(|&t| rw.f32_of(t)).collect();
            let outputs = n
                .outputs
                .iter()
                .map(|&t| {
                    let id = rw.add(g.tensors[t].clone());
                    rw.fver.insert(t, id);
                    id
                })
                .collect();
            rw.nodes.push(Node {
                inputs,
                outputs,
                ..n.clone()
            });
            for &t in &n.outputs {
                if round_trip(t) {
                    rw.round_through_q8(t);
                }
            }
            if !matches!(n.op, Op::Quantize | Op::Dequantize) {
                kept_float.push(KeptFloat {
                    node: n.name.clone(),
                    op: n.op.name(),
                    reason: blockers[i].clone().unwrap_or_default(),
                });
            }
        }
    }
    let outputs: Vec<TensorId> = g.outputs.iter().map(|&t| rw.f32_of(t)).collect();
    for (&o, &src) in outputs.iter().zip(&g.outputs) {
        rw.tensors[o].name = g.tensors[src].name.clone();
    }
    let graph = Graph {
        tensors: rw.tensors,
        nodes: rw.nodes,
        inputs,
        outputs,
    };
    let (graph, weights) = compact(graph, &rw.data, &model.weights)?;
    let mut meta = model.meta.clone();
    meta.precision = Precision::Int8;
    let out = Model {
        meta,
        graph,
        weights: Weights::Owned(weights),
    };
    ferrolite_runtime::validate::validate_model(&out)?;
    Ok(Quantized {
        model: out,
        kept_float,
    })
}

/// Reject given parameters the int8 scheme cannot use, naming the tensor.
fn check_fixed(g: &Graph, calib: &Calibration) -> Result<()> {
    let name = |t: TensorId| {
        g.tensors
            .get(t)
            .map_or("?", |x| x.name.as_str())
            .to_string()
    };
    for (t, q) in calib.fixed_activations.iter().enumerate() {
        match q {
            None => {}
            Some(Quant::PerTensor { scale, zero_point })
                if scale.is_finite() && *scale > 0.0 && (0..=255).contains(zero_point) => {}
            Some(other) => bail!(
                "given quantization of tensor {:?} is {}: activations need one finite \
                 positive scale and a u8 zero point",
                name(t),
                match other {
                    Quant::PerChannel { .. } => "per channel".to_string(),
                    Quant::PerTensor { scale, zero_point } =>
                        format!("scale {scale}, zero point {zero_point}"),
                }
            ),
        }
    }
    for (&t, f) in &calib.fixed_weights {
        if f.values.contains(&i8::MIN) {
            bail!(
                "given int8 weight {:?} holds -128: the scheme's weights are in [-127, 127]",
                name(t)
            );
        }
        if let Some(s) = f.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!(
                "given int8 weight {:?} has scale {s}: scales must be finite and positive",
                name(t)
            );
        }
    }
    Ok(())
}

/// Rewrite one int8-capable node: quantized activations, int8 weights, int32 bias.
fn quantize_node(rw: &mut Rewriter<'_>, n: &Node, calib: &Calibration) -> Result<()> {
    let g = &rw.src.graph;
    let x = rw.q8_of(n.inputs[0]);
    let sx = match rw.tensors[x].quant {
        Some(Quant::PerTensor { scale, .. }) => scale,
        _ => bail!(
            "internal: input of {:?} lacks per-tensor parameters",
            n.name
        ),
    };
    let mut inputs = vec![x];
    if let Op::Binary { .. } = n.op {
        for &t in &n.inputs[1..] {
            inputs.push(rw.q8_of(t));
        }
    }
    let mut op = n.op.clone();
    if let Op::Conv2d { has_bias, .. } | Op::FullyConnected { has_bias, .. } = &mut op {
        let wt = &g.tensors[n.inputs[1]];
        let w = rw.src.weights.f32s(wt)?;
        let rows = wt.shape[0];
        let fixed = calib.fixed_weights.get(&n.inputs[1]);
        let (q, scales) = match fixed {
            Some(f) => {
                if f.values.len() != w.len() || f.scales.len() != rows {
                    bail!(
                        "given int8 weight of node {:?}: {} values and {} scales for a weight \
                         of shape {:?}",
                        n.name,
                        f.values.len(),
                        f.scales.len(),
                        wt.shape
                    );
                }
                (f.values.clone(), f.scales.clone())
            }
            None => quantize_rows(w, rows),
        };
        let mut bias: Vec<f64> = if *has_bias {
            rw.src
                .weights
                .f32s(&g.tensors[n.inputs[2]])?
                .iter()
                .map(|&b| b as f64)
                .collect()
        } else {
            vec![0.0; rows]
        };
        let means = calib
            .channel_means
            .get(n.inputs[0])
            .and_then(|m| m.as_ref())
            .filter(|_| fixed.is_none());
        if let Some(means) = means {
            let cg = wt.shape.get(1).copied().unwrap_or(0);
            let taps = wt.shape.iter().skip(2).product();
            correct_bias(&mut bias, (&q, &scales), w, means, cg, taps);
        }
        // Given int32 values hold where the model quantized the bias at this layer's
        // scales; re-deriving them from f32 values is exact only below 2^24.
        let given_bias = n
            .inputs
            .get(2)
            .filter(|_| *has_bias)
            .and_then(|b| calib.fixed_biases.get(b))
            .filter(|f| {
                f.values.len() == rows
                    && f.scales.len() == rows
                    && f.scales
                        .iter()
                        .zip(&scales)
                        .all(|(&bs, &s)| bs.to_bits() == (sx * s).to_bits())
            });
        let bias: Vec<i32> = match given_bias {
            Some(f) => f.values.clone(),
            None => bias
                .iter()
                .zip(&scales)
                .map(|(&b, &s)| {
                    (b / (sx as f64 * s as f64))
                        .round()
                        .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                })
                .collect(),
        };
        let had_bias = *has_bias;
        *has_bias = true;
        let wq = Quant::PerChannel {
            axis: 0,
            scales,
            zero_points: vec![0; rows],
        };
        let wid = rw.new_const(
            format!("{}.i8", wt.name),
            wt.shape.clone(),
            DType::I8,
            Some(wq),
            q.iter().map(|&v| v as u8).collect(),
        );
        inputs.push(wid);
        {
            let name = if had_bias {
                g.tensors[n.inputs[2]].name.clone()
            } else {
                format!("{}.bias", n.name)
            };
            let bid = rw.new_const(
                format!("{name}.i32"),
                vec![rows],
                DType::I32,
                None,
                bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
            );
            inputs.push(bid);
        }
        if let Op::Conv2d {
            has_residual: true, ..
        } = &n.op
        {
            let r = *n.inputs.last().unwrap_or(&n.inputs[0]);
            inputs.push(rw.q8_of(r));
        }
    }
    let out = n.outputs[0];
    let is_model_output = g.outputs.contains(&out);
    let dequantizing = is_model_output
        && matches!(
            n.op,
            Op::Conv2d {
                has_residual: false,
                ..
            } | Op::FullyConnected { .. }
        );
    let y = if dequantizing {
        let id = rw.add(g.tensors[out].clone());
        rw.fver.insert(out, id);
        id
    } else {
        rw.new_q8(out, "q8")
    };
    rw.nodes.push(Node {
        name: n.name.clone(),
        op,
        inputs,
        outputs: vec![y],
    });
    Ok(())
}

/// Empirical bias correction (Nagel et al., "Data-Free Quantization", 2019): rounding the
/// weights shifts each output's expectation by `Σ (w_q - w) · E[x]`; subtract that shift.
/// `means` are the calibrated per-channel means of the input (padding is ignored).
/// The weight is `[o][cg][taps]` (conv OIHW or FC `[o][k]` with `taps = 1`).
fn correct_bias(
    bias: &mut [f64],
    (q, scales): (&[i8], &[f32]),
    w: &[f32],
    means: &[f32],
    cg: usize,
    taps: usize,
) {
    let rows = bias.len();
    let c = means.len();
    if rows == 0 || cg == 0 || taps == 0 || !c.is_multiple_of(cg) || w.len() != rows * cg * taps {
        return;
    }
    let groups = c / cg;
    if !rows.is_multiple_of(groups) {
        return;
    }
    let og = rows / groups;
    let fan_in = cg * taps;
    for o in 0..rows {
        let g = o / og;
        let mut shift = 0f64;
        for ic in 0..cg {
            let m = means[g * cg + ic] as f64;
            for t in 0..taps {
                let i = o * fan_in + ic * taps + t;
                shift += (q[i] as f64 * scales[o] as f64 - w[i] as f64) * m;
            }
        }
        bias[o] -= shift;
    }
}

/// Drop unreferenced tensors and lay every constant out in a fresh weights blob.
fn compact(
    graph: Graph,
    new_data: &HashMap<TensorId, Vec<u8>>,
    src: &Weights,
) -> Result<(Graph, AlignedBytes)> {
    let mut used = vec![false; graph.tensors.len()];
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        used[t] = true;
    }
    for n in &graph.nodes {
        for &t in n.inputs.iter().chain(&n.outputs) {
            used[t] = true;
        }
    }
    let mut remap = vec![usize::MAX; graph.tensors.len()];
    let mut tensors = Vec::new();
    let mut weights = AlignedBytes::new();
    for (old, mut t) in graph.tensors.into_iter().enumerate() {
        if !used[old] {
            continue;
        }
        if let Some(r) = t.data {
            let bytes = match new_data.get(&old) {
                Some(b) => b.clone(),
                None => src.get(r)?.to_vec(),
            };
            t.data = Some(weights.push_aligned(&bytes));
        }
        remap[old] = tensors.len();
        tensors.push(t);
    }
    weights.align();
    let map = |ids: &[TensorId]| ids.iter().map(|&t| remap[t]).collect::<Vec<_>>();
    Ok((
        Graph {
            nodes: graph
                .nodes
                .into_iter()
                .map(|n| Node {
                    inputs: map(&n.inputs),
                    outputs: map(&n.outputs),
                    ..n
                })
                .collect(),
            inputs: map(&graph.inputs),
            outputs: map(&graph.outputs),
            tensors,
        },
        weights,
    ))
}
