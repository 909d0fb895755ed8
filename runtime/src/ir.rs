//! The Ferrolite intermediate representation: a static-shape graph of tensors and a closed
//! set of operators with explicit attributes and NCHW (ONNX) semantics.
//!
//! The converter produces it, the bundle stores it, and the planner maps it onto the NHWC
//! physical layout used by the kernels.

use serde::{Deserialize, Serialize};

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    I8,
    U8,
    I32,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }
}

/// Affine quantization parameters: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quant {
    /// One scale and zero point for the whole tensor.
    PerTensor { scale: f32, zero_point: i32 },
    /// One scale and zero point per index along `axis`.
    PerChannel {
        axis: usize,
        /// Stored in bundles as base64 of little-endian f32 (a JSON array is read too).
        #[serde(with = "compact_f32")]
        scales: Vec<f32>,
        /// Omitted in bundles when all zero (symmetric weights); readers restore the zeros.
        #[serde(default, skip_serializing_if = "all_zero")]
        zero_points: Vec<i32>,
    },
}

impl Quant {
    /// Restore omitted all-zero per-channel zero points (after reading a bundle).
    pub fn fill_zero_points(&mut self) {
        if let Quant::PerChannel {
            scales,
            zero_points,
            ..
        } = self
        {
            if zero_points.is_empty() {
                zero_points.resize(scales.len(), 0);
            }
        }
    }
}

fn all_zero(v: &[i32]) -> bool {
    v.iter().all(|&z| z == 0)
}

/// Per-channel scales as base64 of their little-endian bytes: a quantized model has tens of
/// thousands of them, and decimal JSON would take a tenth of an int8 bundle.
mod compact_f32 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        s.serialize_str(&STANDARD.encode(bytes))
    }

    struct F32s;

    impl<'de> Visitor<'de> for F32s {
        type Value = Vec<f32>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("base64 of little-endian f32 values, or an array of numbers")
        }

        fn visit_str<E: Error>(self, s: &str) -> Result<Vec<f32>, E> {
            let bytes = STANDARD.decode(s).map_err(E::custom)?;
            if bytes.len() % 4 != 0 {
                return Err(E::custom("scale bytes are not a multiple of 4"));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<f32>, A::Error> {
            let mut v = Vec::new();
            while let Some(x) = a.next_element::<f32>()? {
                v.push(x);
            }
            Ok(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        d.deserialize_any(F32s)
    }
}

/// Where a constant tensor's bytes live inside the weights blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRef {
    /// Byte offset from the start of the weights blob; a multiple of 64.
    pub offset: u64,
    /// Length in bytes; equals element count times dtype size.
    pub len: u64,
}

/// A tensor of the graph: an input, an activation, an output or a constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Name from the source model (for messages and `inspect`).
    pub name: String,
    /// Static logical shape (NCHW order for 4-D feature maps).
    pub shape: Vec<usize>,
    pub dtype: DType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<Quant>,
    /// Constant data, for weights and biases; `None` for runtime values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRef>,
}

impl Tensor {
    /// Number of elements (the validator guarantees it does not overflow).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether this tensor holds constant data.
    pub fn is_const(&self) -> bool {
        self.data.is_some()
    }
}

/// Element-wise function, used standalone ([`Op::Unary`]) or fused into a producer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    Relu,
    /// `min(max(x, min), max)`; ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
    /// `clip(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Sigmoid,
    /// `x * sigmoid(x)` (Swish).
    Silu,
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu,
    Exp,
    Log,
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    Reciprocal,
    Abs,
    Neg,
    Erf,
}

impl Activation {
    /// Whether this is the identity.
    pub fn is_none(&self) -> bool {
        matches!(self, Activation::None)
    }
}

/// Binary element-wise operator with NumPy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
}

/// Pooling reduction over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Max,
    /// Average; with `count_include_pad` padded cells count in the divisor.
    Avg {
        count_include_pad: bool,
    },
}

/// Reduction over axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

/// How [`Op::Pad`] fills the border.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PadMode {
    Constant { value: f32 },
    Reflect,
    Edge,
}

/// 2-D window geometry shared by convolutions and pools (NCHW semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub strides: [usize; 2],
    /// `[dh, dw]`.
    pub dilations: [usize; 2],
    /// `[top, left, bottom, right]`; may be asymmetric.
    pub pads: [usize; 4],
}

impl Window {
    /// Output spatial size for an input of `[h, w]`, or `None` if the window does not fit.
    pub fn output_hw(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for a in 0..2 {
            let padded = hw[a] + self.pads[a] + self.pads[a + 2];
            let extent = self.dilations[a].checked_mul(self.kernel[a].checked_sub(1)?)? + 1;
            if self.strides[a] == 0 || padded < extent {
                return None;
            }
            out[a] = (padded - extent) / self.strides[a] + 1;
        }
        Some(out)
    }
}

/// The closed set of operators. Input and output tensor order is documented per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Op {
    /// 2-D convolution covering dense, pointwise, depthwise and grouped.
    /// Inputs: `x [N,C,H,W]`, `weight [O, C/groups, kh, kw]` (constant), optional `bias [O]`
    /// (constant), optional `residual [N,O,OH,OW]` added before the activation.
    /// Output: `[N,O,OH,OW]`.
    Conv2d {
        window: Window,
        groups: usize,
        activation: Activation,
        has_bias: bool,
        has_residual: bool,
    },
    /// Dense layer on the last axis: `y = x · Wᵀ + b`.
    /// Inputs: `x [..., K]`, `weight [O, K]` (constant), optional `bias [O]`.
    /// Output: `[..., O]`.
    FullyConnected {
        activation: Activation,
        has_bias: bool,
    },
    /// Batched matrix product of two runtime tensors with broadcasting of batch axes.
    /// Inputs: `a [..., M, K]`, `b [..., K, N]`. Output: `[..., M, N]`.
    MatMul,
    /// Element-wise binary op with broadcasting, then an optional fused activation.
    Binary {
        op: BinaryOp,
        activation: Activation,
    },
    /// Element-wise function.
    Unary { activation: Activation },
    /// Per-channel affine (an inference BatchNorm): `y = x * scale[c] + shift[c]` on axis 1.
    /// Inputs: `x`, `scale [C]`, `shift [C]` (constants).
    BatchNorm,
    /// Layer normalization over the last axis:
    /// `y = (x - mean) / sqrt(var + epsilon) * scale + shift`, with the mean and the (biased)
    /// variance of each row of the last axis.
    /// Inputs: `x [..., D]`, `scale [D]`, `shift [D]` (constants). Output: `[..., D]`.
    LayerNorm { epsilon: f32 },
    /// 2-D pooling over a window. Input `[N,C,H,W]`, output `[N,C,OH,OW]`.
    Pool2d { kind: PoolKind, window: Window },
    /// Reduction over `axes`, keeping them as size 1 when `keep_dims`.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    /// Concatenation of all inputs along `axis`.
    Concat { axis: usize },
    /// Split of one input along `axis` into one output per entry of `sizes`.
    Split { axis: usize, sizes: Vec<usize> },
    /// `x[start..end:step]` along `axis` (step ≥ 1).
    Slice {
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    /// Same data, new shape (the output tensor's shape).
    Reshape,
    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    Transpose { perm: Vec<usize> },
    /// Softmax along `axis`.
    Softmax { axis: usize },
    /// Padding, `pads[i] = (before, after)` per axis.
    Pad {
        pads: Vec<(usize, usize)>,
        mode: PadMode,
    },
    /// ShuffleNet channel shuffle on axis 1: `[N, g, C/g, H, W] -> [N, C/g, g, H, W]`.
    ///
    /// The inputs (one or more, equal outside axis 1) are first concatenated along axis 1,
    /// and the shuffled result is split evenly along axis 1 into `splits` outputs: the
    /// Concat → shuffle → channel split of a ShuffleNet unit in one pass over the data.
    ChannelShuffle {
        groups: usize,
        #[serde(default = "one_split", skip_serializing_if = "is_one_split")]
        splits: usize,
    },
    /// f32 -> i8/u8 with the output tensor's quantization parameters.
    Quantize,
    /// i8/u8 -> f32 with the input tensor's quantization parameters.
    Dequantize,
}

impl Op {
    /// Short operator name for messages, `inspect` and profiles.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "Conv2d",
            Op::FullyConnected { .. } => "FullyConnected",
            Op::MatMul => "MatMul",
            Op::Binary { .. } => "Binary",
            Op::Unary { .. } => "Unary",
            Op::BatchNorm => "BatchNorm",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::Pool2d { .. } => "Pool2d",
            Op::Reduce { .. } => "Reduce",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice { .. } => "Slice",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Softmax { .. } => "Softmax",
            Op::Pad { .. } => "Pad",
            Op::ChannelShuffle { .. } => "ChannelShuffle",
            Op::Quantize => "Quantize",
            Op::Dequantize => "Dequantize",
        }
    }
}

/// One operator application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Name from the source model.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// A static-shape dataflow graph; `nodes` are in a valid execution order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

fn one_split() -> usize {
    1
}

fn is_one_split(s: &usize) -> bool {
    *s == 1
}
