//! The lowering context every op family uses: the model, the chosen kernels, where each
//! tensor lives, the materialised constants, and typed access to constant data and
//! quantization parameters.

use super::arena::Place;
use super::step::Step;
use crate::error::{Error, Result};
use crate::ir::{Activation, BinaryOp, DType, Node, Quant, Tensor, TensorId};
use crate::kernels::{Act, BinOp, Kernels};
use crate::weights::Model;

/// A node lowered to a step: the step (`None` when there is nothing to run, as for a
/// Reshape that aliases its input), the kernel it runs, its multiply-accumulates and its
/// constant parameter count.
pub(crate) struct Lowered {
    pub step: Option<Box<dyn Step>>,
    pub kernel: &'static str,
    pub macs: u64,
    pub params: u64,
}

impl Lowered {
    /// A step that moves or computes without a MAC count or parameters.
    pub fn plain(step: impl Step + 'static, kernel: &'static str) -> Lowered {
        Lowered::new(step, kernel, 0, 0)
    }

    /// A step with its kernel name, MACs and parameters.
    pub fn new(step: impl Step + 'static, kernel: &'static str, macs: u64, params: u64) -> Lowered {
        Lowered {
            step: Some(Box::new(step)),
            kernel,
            macs,
            params,
        }
    }
}

/// State shared by the lowering of every node.
pub(crate) struct Planner<'m> {
    pub model: &'m Model,
    pub k: Kernels,
    pub places: Vec<Option<Place>>,
    /// Nodes that must keep f32 weights even on fp16-native tiers (members of fused
    /// inverted-residual blocks, whose fused step runs the f32 kernels).
    pub f32_only: Vec<bool>,
}

impl<'m> Planner<'m> {
    /// A planner for `model` with no tensor placed yet.
    pub fn new(model: &'m Model, k: Kernels) -> Self {
        Planner {
            model,
            k,
            places: vec![None; model.graph.tensors.len()],
            f32_only: vec![false; model.graph.nodes.len()],
        }
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &'m Node {
        &self.model.graph.nodes[i]
    }

    /// Tensor `t`.
    pub fn tensor(&self, t: TensorId) -> Result<&'m Tensor> {
        self.model
            .graph
            .tensors
            .get(t)
            .ok_or_else(|| Error::graph("", format!("tensor id {t} out of range")))
    }

    /// Input `j` of node `node`.
    pub fn input(&self, node: &Node, j: usize) -> Result<TensorId> {
        node.inputs
            .get(j)
            .copied()
            .ok_or_else(|| Error::graph(&node.name, format!("missing input {j}")))
    }

    /// Output 0 of node `node`.
    pub fn output(&self, node: &Node) -> Result<TensorId> {
        node.outputs
            .first()
            .copied()
            .ok_or_else(|| Error::graph(&node.name, "node has no output"))
    }

    /// Where tensor `t` lives.
    pub fn place(&self, t: TensorId) -> Result<&Place> {
        self.places
            .get(t)
            .and_then(|p| p.as_ref())
            .ok_or_else(|| Error::graph("", format!("tensor {t} is used before it is produced")))
    }

    /// Constant data as f32 (f16 constants are widened).
    pub fn const_f32(&self, t: TensorId) -> Result<Vec<f32>> {
        let tensor = self.tensor(t)?;
        match tensor.dtype {
            DType::F32 => Ok(self.model.weights.f32s(tensor)?.to_vec()),
            DType::F16 => {
                let r = tensor
                    .data
                    .ok_or_else(|| Error::graph(&tensor.name, "tensor has no constant data"))?;
                let b = self.model.weights.get(r)?;
                if b.len() != tensor.numel() * 2 {
                    return Err(Error::graph(
                        &tensor.name,
                        "constant length does not match its shape",
                    ));
                }
                Ok(b.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect())
            }
            d => Err(Error::Unsupported(format!(
                "constant {:?} of dtype {d:?} in a float op",
                tensor.name
            ))),
        }
    }

    /// Raw int8 constant and its per-output-channel scales (axis 0).
    pub fn const_i8(&self, t: TensorId, node: &str) -> Result<(Vec<i8>, Vec<f32>)> {
        let tensor = self.tensor(t)?;
        let o = tensor.shape.first().copied().unwrap_or(0);
        let scales = match &tensor.quant {
            Some(Quant::PerChannel {
                axis: 0,
                scales,
                zero_points,
            }) if zero_points.iter().all(|&z| z == 0) => scales.clone(),
            Some(Quant::PerTensor {
                scale,
                zero_point: 0,
            }) => vec![*scale; o],
            _ => {
                return Err(Error::Unsupported(format!(
                    "node {node:?}: weight {:?} must be symmetric int8, per tensor or per \
                     output channel",
                    tensor.name
                )))
            }
        };
        let bytes = self.model.weights.get(
            tensor
                .data
                .ok_or_else(|| Error::graph(node, "weight has no constant data"))?,
        )?;
        if tensor.dtype != DType::I8 || bytes.len() != tensor.numel() || scales.len() != o {
            return Err(Error::graph(node, "int8 weight size mismatch"));
        }
        Ok((bytemuck::cast_slice(bytes).to_vec(), scales))
    }

    /// Raw int32 constant (a quantized bias).
    pub fn const_i32(&self, t: TensorId, node: &str) -> Result<Vec<i32>> {
        let tensor = self.tensor(t)?;
        let r = tensor
            .data
            .ok_or_else(|| Error::graph(node, "bias has no constant data"))?;
        let bytes = self.model.weights.get(r)?;
        if tensor.dtype != DType::I32 || bytes.len() != tensor.numel() * 4 {
            return Err(Error::graph(node, "int32 bias size mismatch"));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// `(scale, zero point)` of a per-tensor quantized activation.
pub(crate) type QParams = (f32, i32);

/// Per-tensor `(scale, zero point)` of an 8-bit activation.
pub(crate) fn per_tensor(t: &Tensor, node: &str) -> Result<(f32, i32)> {
    match (&t.quant, t.dtype) {
        (Some(Quant::PerTensor { scale, zero_point }), DType::U8) => Ok((*scale, *zero_point)),
        _ => Err(Error::Unsupported(format!(
            "node {node:?}: tensor {:?} must be u8 with per-tensor quantization",
            t.name
        ))),
    }
}

/// Output clamp `[qmin, qmax]` of a fused ReLU / clip at output scale `s` and zero point `zp`.
pub(crate) fn clamp_bounds(act: Activation, s: f32, zp: i32, node: &str) -> Result<(u8, u8)> {
    let q = |v: f32| (zp as f32 + (v / s).round()).clamp(0.0, 255.0) as u8;
    match act {
        Activation::None => Ok((0, 255)),
        Activation::Relu => Ok((q(0.0), 255)),
        Activation::Clip { min, max } => Ok((q(min), q(max))),
        other => Err(Error::Unsupported(format!(
            "node {node:?}: activation {other:?} cannot be fused into an int8 kernel"
        ))),
    }
}

/// The `(scale, zero point)` pairs of a quantized node's input and output (the output is
/// `(1, 0)` when it is f32, a dequantizing last layer); and whether it is f32.
pub(crate) fn q8_io(p: &Planner<'_>, node: &Node) -> Result<(QParams, QParams, bool)> {
    let name = node.name.as_str();
    let x = per_tensor(p.tensor(p.input(node, 0)?)?, name)?;
    let out_t = p.tensor(p.output(node)?)?;
    let out_f32 = out_t.dtype == DType::F32;
    let y = if out_f32 {
        (1.0, 0)
    } else {
        per_tensor(out_t, name)?
    };
    Ok((x, y, out_f32))
}

/// The error for a quantized op this runtime has no kernel for.
pub(crate) fn q8_unsupported(node: &Node) -> Error {
    Error::Unsupported(format!(
        "node {:?}: quantized {} is not implemented",
        node.name,
        node.op.name()
    ))
}

/// Convert an IR activation to the kernel form.
pub fn act_of(a: Activation) -> Act {
    match a {
        Activation::None => Act::None,
        Activation::Relu => Act::Relu,
        Activation::Clip { min, max } => Act::Clip { min, max },
        Activation::LeakyRelu { alpha } => Act::LeakyRelu { alpha },
        Activation::HardSwish => Act::HardSwish,
        Activation::HardSigmoid { alpha, beta } => Act::HardSigmoid { alpha, beta },
        Activation::Sigmoid => Act::Sigmoid,
        Activation::Silu => Act::Silu,
        Activation::Tanh => Act::Tanh,
        Activation::Gelu => Act::Gelu,
        Activation::Exp => Act::Exp,
        Activation::Log => Act::Log,
        Activation::Sqrt => Act::Sqrt,
        Activation::Rsqrt => Act::Rsqrt,
        Activation::Reciprocal => Act::Reciprocal,
        Activation::Abs => Act::Abs,
        Activation::Neg => Act::Neg,
        Activation::Erf => Act::Erf,
    }
}

/// Convert an IR binary operator to the kernel form.
pub(crate) fn bin_of(b: BinaryOp) -> BinOp {
    match b {
        BinaryOp::Add => BinOp::Add,
        BinaryOp::Sub => BinOp::Sub,
        BinaryOp::Mul => BinOp::Mul,
        BinaryOp::Div => BinOp::Div,
        BinaryOp::Max => BinOp::Max,
        BinaryOp::Min => BinOp::Min,
        BinaryOp::Pow => BinOp::Pow,
    }
}
