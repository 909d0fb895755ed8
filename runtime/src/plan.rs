//! The planner: maps a validated graph onto physical layouts (rank-4 activations NHWC,
//! everything else row-major), prepacks weights once, assigns every activation an offset in
//! one liveness-based arena, and lowers each node to a [`Step`] bound to chosen kernels.

use crate::error::{Error, Result};
use crate::ir::{
    Activation, BinaryOp, DType, Op, PadMode, PoolKind, Quant, ReduceOp, Tensor, TensorId, Window,
};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::walk::{row_major_strides, Walk};
use crate::kernels::{self, Act, BinOp, Kernels};
use crate::weights::Model;

/// Arena alignment in f32 elements (64 bytes).
const ALIGN: usize = 16;

/// Which buffer a [`Loc`] points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The session's activation arena.
    Arena,
    /// The plan's materialised constants.
    Const,
}

/// A dense region of `len` floats at `off` in `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub buf: Buf,
    pub off: usize,
    pub len: usize,
}

/// Where a tensor lives and how its logical axes map to memory.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub loc: Loc,
    pub shape: Vec<usize>,
    /// Physical stride (in elements) of each logical axis.
    pub strides: Vec<usize>,
}

/// One strided copy of a view of `src` into a view of `dst`.
#[derive(Debug, Clone)]
pub(crate) struct CopyPart {
    pub src: Loc,
    pub src_off: usize,
    pub dst: Loc,
    pub dst_off: usize,
    /// Over `[dst strides, src strides]`.
    pub walk: Walk<2>,
}

/// One pairwise interleave: for `pixels` rows, `out[p*sy + 2j + h]` from
/// `a[a_off + p*sa + j]` (`h = 0`) and `b[b_off + p*sb + j]` (`h = 1`), `j < n`.
#[derive(Debug, Clone)]
pub(crate) struct InterleavePart {
    pub a: Loc,
    pub a_off: usize,
    pub sa: usize,
    pub b: Loc,
    pub b_off: usize,
    pub sb: usize,
    pub n: usize,
    pub pixels: usize,
    pub out: Loc,
    pub sy: usize,
}

/// Copy between a place and a dense logical (row-major) scratch region.
#[derive(Debug, Clone)]
pub(crate) struct Gather {
    /// The tensor side.
    pub loc: Loc,
    pub off: usize,
    /// Scratch offset of the row-major copy.
    pub scratch: usize,
    /// Over `[scratch strides, tensor strides]` when gathering (tensor -> scratch), or
    /// `[tensor strides, scratch strides]` when scattering (scratch -> tensor).
    pub walk: Walk<2>,
}

/// A matrix operand of a GEMM: either a tensor region used in place or scratch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mat {
    Loc(Loc),
    Scratch(usize),
}

/// An executable step (one per node).
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Nothing to do (Reshape aliasing its input).
    Nop,
    /// Gemm with packed constant B.
    Gemm {
        pre: Option<Gather>,
        a: Mat,
        b: Vec<f32>,
        bias: Option<Vec<f32>>,
        residual: Option<Loc>,
        c: Mat,
        post: Option<Gather>,
        m: usize,
        n: usize,
        k: usize,
        act: Act,
        out: Loc,
    },
    /// Pointwise convolution with f16 packed weights on a tier with native fp16 arithmetic
    /// (an fp16 bundle's weights kept in half precision).
    GemmF16 {
        a: Loc,
        b: Vec<half::f16>,
        bias: Option<Vec<f32>>,
        residual: Option<Loc>,
        m: usize,
        n: usize,
        k: usize,
        act: Act,
        out: Loc,
    },
    /// Depthwise convolution with f16 packed weights (as [`Step::GemmF16`]).
    DwConvF16 {
        geom: ConvGeom,
        x: Loc,
        w: Vec<half::f16>,
        bias: Vec<f32>,
        residual: Option<Loc>,
        act: Act,
        out: Loc,
    },
    /// Batched MatMul of two runtime tensors through scratch.
    MatMul {
        /// Per batch: gathers of A and B and the scatter of C.
        batches: Vec<(Gather, Gather, Gather)>,
        m: usize,
        n: usize,
        k: usize,
        /// Scratch offsets: A, B, packed B, C.
        sa: usize,
        sb: usize,
        sbp: usize,
        sc: usize,
        out: Loc,
    },
    /// Grouped 1x1 convolution: one strided GEMM per group on NHWC data.
    GroupGemm {
        x: Loc,
        /// Packed B per group (`cg x og`).
        b: Vec<Vec<f32>>,
        bias: Vec<f32>,
        residual: Option<Loc>,
        m: usize,
        c: usize,
        o: usize,
        cg: usize,
        og: usize,
        act: Act,
        out: Loc,
    },
    /// Dense / grouped / depthwise convolution.
    Conv {
        depthwise: bool,
        geom: ConvGeom,
        x: Loc,
        w: Vec<f32>,
        bias: Vec<f32>,
        residual: Option<Loc>,
        act: Act,
        out: Loc,
    },
    /// Binary op on identical layouts.
    BinaryFlat {
        op: BinOp,
        a: Loc,
        b: Loc,
        act: Act,
        out: Loc,
    },
    /// Binary op with a per-channel operand on channels-last data.
    BinaryChannel {
        op: BinOp,
        full: Loc,
        chan: Loc,
        c: usize,
        swap: bool,
        act: Act,
        out: Loc,
    },
    /// Generic broadcasting binary op; walk over `[out, a, b]`.
    BinaryWalk {
        op: BinOp,
        a: Loc,
        b: Loc,
        walk: Walk<3>,
        act: Act,
        out: Loc,
    },
    /// Strided copies (data movement), then an optional activation on each destination.
    Copy { parts: Vec<CopyPart>, act: Act },
    /// Expansion, depthwise and projection of an inverted-residual block, run band by band.
    InvertedResidual(Box<crate::fused::InvertedResidual>),
    /// Pairwise interleaves of strided rows (two-group channel shuffle on channels-last
    /// data, with its concat and split folded in).
    Interleave { parts: Vec<InterleavePart> },
    /// Copy through a row-major scratch region (Reshape between two non-row-major layouts).
    CopyVia {
        gather: Gather,
        scatter: Gather,
        out: Loc,
    },
    /// Per-channel affine (BatchNorm).
    Affine {
        x: Loc,
        scale: Vec<f32>,
        shift: Vec<f32>,
        c: usize,
        inner: usize,
        out: Loc,
    },
    /// Max / average pooling.
    Pool {
        max: bool,
        include_pad: bool,
        geom: ConvGeom,
        x: Loc,
        out: Loc,
    },
    /// Global average over the pixels of NHWC data.
    GlobalAvg {
        n: usize,
        hw: usize,
        c: usize,
        x: Loc,
        out: Loc,
    },
    /// Generic reduction; walk over the input shape as `[in, out]` (out strides 0 on
    /// reduced axes).
    Reduce {
        op: ReduceOp,
        x: Loc,
        walk: Walk<2>,
        count: usize,
        out: Loc,
    },
    /// Layer normalization of rows of the last axis; walk over the shape with that axis set
    /// to 1, as `[out, in]`.
    LayerNorm {
        x: Loc,
        walk: Walk<2>,
        len: usize,
        sx: usize,
        sy: usize,
        scale: Vec<f32>,
        shift: Vec<f32>,
        epsilon: f32,
        out: Loc,
    },
    /// Softmax rows; walk over the shape with the axis set to 1, as `[out, in]`.
    Softmax {
        x: Loc,
        walk: Walk<2>,
        len: usize,
        sx: usize,
        sy: usize,
        out: Loc,
    },
    /// Pad with per-axis source-coordinate maps (`usize::MAX` = constant fill).
    Pad {
        x: Loc,
        out_shape: Vec<usize>,
        in_strides: Vec<usize>,
        out_strides: Vec<usize>,
        maps: Vec<Vec<usize>>,
        value: f32,
        out: Loc,
    },
    /// A data movement step (`Copy`, `Interleave`, `CopyVia`) on 8-bit tensors: its regions
    /// hold bytes.
    Bytes(Box<Step>),
    /// A quantized compute step.
    Q8(Box<crate::qplan::QStep>),
    /// f32 <-> 8-bit affine conversion (the 8-bit side holds bytes).
    Quant {
        quantize: bool,
        /// Per element channel: `(i / stride) % dim`; `dim == 1` for per-tensor.
        stride: usize,
        dim: usize,
        scales: Vec<f32>,
        zps: Vec<f32>,
        lo: f32,
        hi: f32,
        x: Loc,
        out: Loc,
    },
}

/// What `inspect` and profiles show about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// Node name.
    pub node: String,
    /// Operator name.
    pub op: &'static str,
    /// Kernel used, e.g. `f32_dwconv::scalar::dwconv_generic`.
    pub kernel: &'static str,
    /// Multiply-accumulates (0 for data movement).
    pub macs: u64,
    /// Constant parameters read by the step.
    pub params: u64,
    /// Logical shape of the first output.
    pub output_shape: Vec<usize>,
}

/// A compiled execution plan for one model and one kernel set.
#[derive(Debug)]
pub struct Plan {
    pub(crate) places: Vec<Option<Place>>,
    pub(crate) steps: Vec<Step>,
    infos: Vec<StepInfo>,
    pub(crate) consts: Vec<f32>,
    pub(crate) arena_len: usize,
    pub(crate) scratch_len: usize,
    naive_len: usize,
    pub(crate) inputs: Vec<TensorId>,
    pub(crate) outputs: Vec<TensorId>,
    pub(crate) kernels: Kernels,
}

impl Plan {
    /// Plan `model` for `kernels`. The graph is assumed validated; anything this runtime
    /// cannot execute gives `Error::Unsupported` / `Error::Graph`.
    ///
    /// The graph is re-checked with [`crate::validate::validate_graph`] first, so a graph
    /// that never went through bundle loading still gives an error instead of a panic.
    pub fn new(model: &Model, kernels: &Kernels) -> Result<Plan> {
        crate::validate::validate_graph(&model.graph, model.weights.bytes().len())?;
        Planner::new(model, *kernels)?.build()
    }

    /// Bytes of the activation arena (after liveness-based reuse).
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }

    /// Bytes all activations would take without reuse (for comparison).
    pub fn naive_bytes(&self) -> usize {
        self.naive_len * 4
    }

    /// Bytes of the per-session scratch buffer.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len * 4
    }

    /// One entry per executed step (one per node).
    pub fn steps(&self) -> &[StepInfo] {
        &self.infos
    }

    /// The kernel set the plan dispatches to.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Logical shape of a tensor.
    pub(crate) fn shape(&self, t: TensorId) -> &[usize] {
        self.places[t]
            .as_ref()
            .map(|p| p.shape.as_slice())
            .unwrap_or(&[])
    }
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

fn bin_of(b: BinaryOp) -> BinOp {
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

/// Physical strides: NHWC for rank-4 activations, row-major otherwise.
fn physical_strides(t: &Tensor) -> Vec<usize> {
    let s = &t.shape;
    if s.len() == 4 && !t.is_const() {
        let (c, h, w) = (s[1], s[2], s[3]);
        vec![h * w * c, 1, w * c, c]
    } else {
        row_major_strides(s)
    }
}

/// Geometry of a window op on NHWC data: input `x` and output `out` in NCHW logical shape,
/// `o` output channels, `groups` convolution groups (1 for pools).
pub(crate) fn window_geom(
    x: &[usize],
    out: &[usize],
    window: &Window,
    o: usize,
    groups: usize,
) -> ConvGeom {
    ConvGeom {
        n: x[0],
        c: x[1],
        h: x[2],
        w: x[3],
        o,
        oh: out[2],
        ow: out[3],
        kh: window.kernel[0],
        kw: window.kernel[1],
        sh: window.strides[0],
        sw: window.strides[1],
        dh: window.dilations[0],
        dw: window.dilations[1],
        pt: window.pads[0],
        pl: window.pads[1],
        groups,
    }
}

/// Whether a tensor's elements are stored as bytes (8-bit quantized).
pub(crate) fn is_byte(t: &Tensor) -> bool {
    matches!(t.dtype, DType::I8 | DType::U8)
}

/// Arena slots (f32-sized) a runtime tensor occupies: 8-bit tensors pack four per slot.
fn slots(t: &Tensor) -> usize {
    if is_byte(t) {
        t.numel().div_ceil(4)
    } else {
        t.numel()
    }
}

/// Whether a view enumerates its elements in logical row-major order densely.
pub(crate) fn is_row_major(shape: &[usize], strides: &[usize]) -> bool {
    let rm = row_major_strides(shape);
    shape
        .iter()
        .zip(strides)
        .zip(&rm)
        .all(|((&d, &s), &r)| d <= 1 || s == r)
}

fn walk2(node: &str, shape: &[usize], a: &[usize], b: &[usize]) -> Result<Walk<2>> {
    Walk::new(shape, [a, b])
        .ok_or_else(|| Error::graph(node, "rank too large for the strided walker"))
}

pub(crate) struct Planner<'m> {
    pub(crate) model: &'m Model,
    pub(crate) k: Kernels,
    places: Vec<Option<Place>>,
    consts: Vec<f32>,
    scratch_len: usize,
    /// Nodes that must keep f32 weights even on fp16-native tiers (members of fused
    /// inverted-residual blocks, whose fused step runs the f32 kernels).
    f32_only: Vec<bool>,
}

impl<'m> Planner<'m> {
    fn new(model: &'m Model, k: Kernels) -> Result<Self> {
        Ok(Planner {
            model,
            k,
            places: vec![None; model.graph.tensors.len()],
            consts: Vec::new(),
            scratch_len: 0,
            f32_only: vec![false; model.graph.nodes.len()],
        })
    }

    pub(crate) fn tensor(&self, t: TensorId) -> Result<&'m Tensor> {
        self.model
            .graph
            .tensors
            .get(t)
            .ok_or_else(|| Error::graph("", format!("tensor id {t} out of range")))
    }

    /// Constant data as f32 (f16 constants are widened).
    fn const_f32(&self, t: TensorId) -> Result<Vec<f32>> {
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

    pub(crate) fn place(&self, t: TensorId) -> Result<&Place> {
        self.places
            .get(t)
            .and_then(|p| p.as_ref())
            .ok_or_else(|| Error::graph("", format!("tensor {t} is used before it is produced")))
    }

    pub(crate) fn scratch(&mut self, len: usize) -> usize {
        let off = self.scratch_len.div_ceil(ALIGN) * ALIGN;
        self.scratch_len = off + len;
        off
    }

    fn build(mut self) -> Result<Plan> {
        let g = &self.model.graph;
        let nt = g.tensors.len();
        // --- 1. constants used as runtime operands are materialised (row-major).
        let mut const_loc: Vec<Option<Loc>> = vec![None; nt];
        for node in &g.nodes {
            let params: std::ops::Range<usize> = match &node.op {
                Op::Conv2d { has_bias, .. } | Op::FullyConnected { has_bias, .. } => {
                    1..2 + *has_bias as usize
                }
                Op::BatchNorm | Op::LayerNorm { .. } => 1..3,
                _ => 0..0,
            };
            let operands = node
                .inputs
                .iter()
                .enumerate()
                .filter(|(i, _)| !params.contains(i));
            // Constant graph outputs are materialised too, so they can be copied out.
            let outputs = g.outputs.iter().enumerate();
            for (_, &t) in operands.chain(outputs) {
                if const_loc.get(t).is_none_or(|c| c.is_some()) {
                    continue;
                }
                if self.tensor(t)?.is_const() {
                    let data = self.const_f32(t)?;
                    let off = self.consts.len().div_ceil(ALIGN) * ALIGN;
                    self.consts.resize(off, 0.0);
                    self.consts.extend_from_slice(&data);
                    const_loc[t] = Some(Loc {
                        buf: Buf::Const,
                        off,
                        len: data.len(),
                    });
                }
            }
        }
        // --- 2. alias groups and lifetimes of activations.
        let mut root: Vec<usize> = (0..nt).collect();
        let is_act = |t: &Tensor| !t.is_const();
        for t in g.tensors.iter() {
            if is_act(t) && !matches!(t.dtype, DType::F32 | DType::I8 | DType::U8) {
                return Err(Error::Unsupported(format!(
                    "activation {:?} of dtype {:?} (only f32 and 8-bit activations are supported)",
                    t.name, t.dtype
                )));
            }
        }
        for node in &g.nodes {
            if let (Op::Reshape, [x], [y]) =
                (&node.op, node.inputs.as_slice(), node.outputs.as_slice())
            {
                let (tx, ty) = (self.tensor(*x)?, self.tensor(*y)?);
                if is_act(tx)
                    && is_row_major(&tx.shape, &physical_strides(tx))
                    && is_row_major(&ty.shape, &physical_strides(ty))
                {
                    root[*y] = root[*x];
                }
            }
        }
        let steps_n = g.nodes.len();
        let mut life: Vec<Option<(usize, usize)>> = vec![None; nt];
        let touch = |t: usize, time: usize, life: &mut Vec<Option<(usize, usize)>>| {
            let r = root[t];
            life[r] = Some(match life[r] {
                None => (time, time),
                Some((a, b)) => (a.min(time), b.max(time)),
            });
        };
        for &t in &g.inputs {
            touch(t, 0, &mut life);
        }
        // Fused blocks keep their expanded and depthwise tensors in scratch bands: those get
        // no arena space, and the block input is read until the block's last node runs.
        let chains = crate::fused::find_chains(g);
        let banded: Vec<TensorId> = chains
            .iter()
            .flat_map(|c| {
                let dw = &g.nodes[c.dw];
                let e = c.expand.and(dw.inputs.first().copied());
                e.into_iter().chain(dw.outputs.first().copied())
            })
            .collect();
        for (i, node) in g.nodes.iter().enumerate() {
            for &t in node.inputs.iter().chain(&node.outputs) {
                if t < nt && is_act(&g.tensors[t]) && !banded.contains(&t) {
                    touch(t, i + 1, &mut life);
                }
            }
        }
        for &t in &g.outputs {
            if t < nt && is_act(&g.tensors[t]) {
                touch(t, steps_n + 1, &mut life);
            }
        }
        for c in &chains {
            if let Some(&x) = g.nodes[c.first()].inputs.first() {
                touch(x, c.project + 1, &mut life);
            }
        }
        let mut size = vec![0usize; nt];
        let mut naive = 0usize;
        for (t, tensor) in g.tensors.iter().enumerate() {
            if is_act(tensor) && life[root[t]].is_some() {
                size[root[t]] = size[root[t]].max(slots(tensor));
                naive += slots(tensor);
            }
        }
        // --- 3. greedy placement: largest first, lowest offset not overlapping a live group.
        let mut order: Vec<usize> = (0..nt)
            .filter(|&t| root[t] == t && life[t].is_some())
            .collect();
        order.sort_by(|&a, &b| size[b].cmp(&size[a]).then(life[a].cmp(&life[b])));
        let mut placed: Vec<(usize, usize, (usize, usize))> = Vec::new(); // (off, len, life)
        let mut offset = vec![0usize; nt];
        let mut arena_len = 0;
        for &t in &order {
            let (s, e) = life[t].unwrap_or((0, 0));
            let len = size[t].div_ceil(ALIGN) * ALIGN;
            let mut busy: Vec<(usize, usize)> = placed
                .iter()
                .filter(|(_, _, (ps, pe))| *ps <= e && s <= *pe)
                .map(|&(o, l, _)| (o, l))
                .collect();
            busy.sort();
            let mut off = 0;
            for (o, l) in busy {
                if off + len <= o {
                    break;
                }
                off = off.max(o + l);
            }
            offset[t] = off;
            arena_len = arena_len.max(off + len);
            placed.push((off, len, (s, e)));
        }
        for (t, tensor) in g.tensors.iter().enumerate() {
            let loc = if let Some(l) = const_loc[t] {
                Some((l, row_major_strides(&tensor.shape)))
            } else if is_act(tensor) && life[root[t]].is_some() {
                let l = Loc {
                    buf: Buf::Arena,
                    off: offset[root[t]],
                    len: tensor.numel(),
                };
                Some((l, physical_strides(tensor)))
            } else {
                None
            };
            self.places[t] = loc.map(|(loc, strides)| Place {
                loc,
                shape: tensor.shape.clone(),
                strides,
            });
        }
        // Banded tensors get a placeholder place so their nodes lower; those steps are
        // replaced by the fused step below and never touch it.
        for &t in &banded {
            let tensor = &g.tensors[t];
            self.places[t] = Some(Place {
                loc: Loc {
                    buf: Buf::Arena,
                    off: 0,
                    len: tensor.numel(),
                },
                shape: tensor.shape.clone(),
                strides: physical_strides(tensor),
            });
        }
        for c in &chains {
            for i in c.expand.into_iter().chain([c.dw, c.project]) {
                self.f32_only[i] = true;
            }
        }
        // --- 4. lower nodes.
        let mut steps = Vec::with_capacity(steps_n);
        let mut infos = Vec::with_capacity(steps_n);
        for (i, node) in g.nodes.iter().enumerate() {
            let aliased = matches!(node.op, Op::Reshape)
                && node.inputs.len() == 1
                && node.outputs.len() == 1
                && root[node.outputs[0]] == root[node.inputs[0]]
                && node.outputs[0] != node.inputs[0];
            let (step, kernel, macs, params) = if aliased {
                (Step::Nop, "alias", 0, 0)
            } else {
                self.lower(i).map_err(|e| match e {
                    Error::Graph { msg, .. } => Error::graph(&node.name, msg),
                    other => other,
                })?
            };
            let output_shape = node
                .outputs
                .first()
                .and_then(|&t| g.tensors.get(t))
                .map(|t| t.shape.clone())
                .unwrap_or_default();
            infos.push(StepInfo {
                node: node.name.clone(),
                op: node.op.name(),
                kernel,
                macs,
                params,
                output_shape,
            });
            steps.push(step);
        }
        for c in chains {
            let mut scratch = |len| self.scratch(len);
            if !crate::fused::fuse_chain(&mut steps, c, &mut scratch) {
                return Err(Error::Unsupported(format!(
                    "internal: block ending at node {:?} did not lower to a fusable form",
                    g.nodes[c.project].name
                )));
            }
            let mut macs = 0;
            for i in c.expand.into_iter().chain([c.dw]) {
                macs += std::mem::take(&mut infos[i].macs);
                infos[i].kernel = "fused";
            }
            infos[c.project].macs += macs;
            infos[c.project].kernel = "fused::inverted_residual";
        }
        for &t in g.inputs.iter().chain(&g.outputs) {
            self.place(t)?;
        }
        Ok(Plan {
            places: self.places,
            steps,
            infos,
            consts: self.consts,
            arena_len,
            scratch_len: self.scratch_len,
            naive_len: naive,
            inputs: g.inputs.clone(),
            outputs: g.outputs.clone(),
            kernels: self.k,
        })
    }

    /// Lower a (fused concat →) channel shuffle (→ split) of the current node: pairwise
    /// interleaves when it is a two-group shuffle of channels-last data, otherwise one
    /// strided copy per (output, group, input) run of channels.
    fn lower_shuffle(
        &mut self,
        i: usize,
        name: &str,
        groups: usize,
    ) -> Result<(Step, &'static str, u64, u64)> {
        let node = &self.model.graph.nodes[i];
        let ins: Vec<Place> = node
            .inputs
            .iter()
            .map(|&t| self.place(t).cloned())
            .collect::<Result<_>>()?;
        let outs: Vec<Place> = node
            .outputs
            .iter()
            .map(|&t| self.place(t).cloned())
            .collect::<Result<_>>()?;
        let g = groups.max(1);
        let c: usize = ins.iter().map(|p| p.shape[1]).sum();
        let splits = outs.len().max(1);
        let s = c / splits;
        let channels_last = |p: &Place| {
            p.shape.len() == 4 && {
                let (c, w) = (p.shape[1], p.shape[3]);
                p.strides == [p.shape[2] * w * c, 1, w * c, c]
            }
        };
        let halves = match ins.as_slice() {
            [x] => Some(((x.loc, 0, c), (x.loc, c / 2, c))),
            [x, y] if x.shape[1] == y.shape[1] => Some(((x.loc, 0, c / 2), (y.loc, 0, c / 2))),
            _ => None,
        };
        if let Some((a, b)) = halves
            .filter(|_| g == 2 && s.is_multiple_of(2) && ins.iter().chain(&outs).all(channels_last))
        {
            let pixels = ins[0].shape[0] * ins[0].shape[2] * ins[0].shape[3];
            let parts = outs
                .iter()
                .enumerate()
                .map(|(k, out)| InterleavePart {
                    a: a.0,
                    a_off: a.1 + k * s / 2,
                    sa: a.2,
                    b: b.0,
                    b_off: b.1 + k * s / 2,
                    sb: b.2,
                    n: s / 2,
                    pixels,
                    out: out.loc,
                    sy: s,
                })
                .collect();
            return Ok((
                Step::Interleave { parts },
                self.k.f32_interleave2.name,
                0,
                0,
            ));
        }
        // Output channel j of the shuffled concat reads concat channel (j % g) * cg + j / g.
        let cg = c / g;
        let mut parts = Vec::new();
        for (k, out) in outs.iter().enumerate() {
            for r in 0..g {
                let q_lo = (k * s + g - 1 - r) / g;
                let q_hi = ((k + 1) * s + g - 1 - r) / g;
                let (lo, hi) = (r * cg + q_lo, r * cg + q_hi);
                let mut at = 0;
                for x in &ins {
                    let (u, v) = (lo.max(at), hi.min(at + x.shape[1]));
                    if u < v {
                        let mut shape = x.shape.clone();
                        shape[1] = v - u;
                        let mut dst = out.strides.clone();
                        dst[1] *= g;
                        let q0 = u - r * cg;
                        parts.push(CopyPart {
                            src: x.loc,
                            src_off: (u - at) * x.strides[1],
                            dst: out.loc,
                            dst_off: (q0 * g + r - k * s) * out.strides[1],
                            walk: walk2(name, &shape, &dst, &x.strides)?,
                        });
                    }
                    at += x.shape[1];
                }
            }
        }
        Ok((
            Step::Copy {
                parts,
                act: Act::None,
            },
            self.k.f32_copy.name,
            0,
            0,
        ))
    }

    /// Lower node `i` to a step: `(step, kernel name, macs, params)`.
    fn lower(&mut self, i: usize) -> Result<(Step, &'static str, u64, u64)> {
        let node = &self.model.graph.nodes[i];
        let name = node.name.as_str();
        let x_id = *node
            .inputs
            .first()
            .ok_or_else(|| Error::graph(name, "missing input 0"))?;
        let float_op = !matches!(
            node.op,
            Op::Concat { .. }
                | Op::Split { .. }
                | Op::Slice { .. }
                | Op::Reshape
                | Op::Transpose { .. }
                | Op::Pad { .. }
                | Op::ChannelShuffle { .. }
                | Op::Quantize
                | Op::Dequantize
        );
        if float_op && is_byte(self.tensor(x_id)?) {
            let (q, kname, macs, params) = self.lower_q8(i)?;
            return Ok((Step::Q8(Box::new(q)), kname, macs, params));
        }
        if !float_op
            && !matches!(node.op, Op::Quantize | Op::Dequantize)
            && is_byte(self.tensor(x_id)?)
        {
            let (step, _, macs, params) = self.lower_moves(i)?;
            return match step {
                Step::Copy { act: Act::None, .. }
                | Step::Interleave { .. }
                | Step::CopyVia { .. } => Ok((
                    Step::Bytes(Box::new(step)),
                    "u8_copy::scalar::copy_strided",
                    macs,
                    params,
                )),
                Step::Nop => Ok((Step::Nop, "alias", macs, params)),
                _ => Err(Error::Unsupported(format!(
                    "node {name:?}: {} of an 8-bit tensor is not implemented",
                    node.op.name()
                ))),
            };
        }
        self.lower_moves(i)
    }

    /// Lower node `i` once its dtype route is settled.
    fn lower_moves(&mut self, i: usize) -> Result<(Step, &'static str, u64, u64)> {
        let node = &self.model.graph.nodes[i];
        let name = node.name.as_str();
        let inp = |j: usize| {
            node.inputs
                .get(j)
                .copied()
                .ok_or_else(|| Error::graph(name, format!("missing input {j}")))
        };
        let out_id = *node
            .outputs
            .first()
            .ok_or_else(|| Error::graph(name, "node has no output"))?;
        let out = self.place(out_id)?.clone();
        let x_id = inp(0)?;
        let k = self.k;
        match &node.op {
            Op::Conv2d {
                window,
                groups,
                activation,
                has_bias,
                has_residual,
            } => {
                let x = self.place(x_id)?.clone();
                if x.loc.buf != Buf::Arena || x.shape.len() != 4 {
                    return Err(Error::Unsupported(format!(
                        "node {name:?}: Conv2d on a constant input"
                    )));
                }
                let wt = self.tensor(inp(1)?)?;
                let w = self.const_f32(inp(1)?)?;
                let o = wt.shape.first().copied().unwrap_or(0);
                let bias = if *has_bias {
                    self.const_f32(inp(2)?)?
                } else {
                    vec![0.0; o]
                };
                let residual = if *has_residual {
                    let r = self.place(inp(node.inputs.len() - 1)?)?;
                    if r.loc.buf != Buf::Arena || r.strides != out.strides {
                        return Err(Error::Unsupported(format!(
                            "node {name:?}: constant residual"
                        )));
                    }
                    Some(r.loc)
                } else {
                    None
                };
                let geom = window_geom(&x.shape, &out.shape, window, o, *groups);
                if w.len() != o * (geom.c / geom.groups.max(1)) * geom.kh * geom.kw
                    || bias.len() != o
                {
                    return Err(Error::graph(name, "Conv2d weight or bias size mismatch"));
                }
                let macs = (geom.n
                    * geom.oh
                    * geom.ow
                    * o
                    * (geom.c / geom.groups.max(1))
                    * geom.kh
                    * geom.kw) as u64;
                let params = (w.len() + if *has_bias { o } else { 0 }) as u64;
                let act = act_of(*activation);
                let pointwise = geom.kh == 1
                    && geom.kw == 1
                    && geom.sh == 1
                    && geom.sw == 1
                    && window.pads == [0; 4]
                    && geom.groups == 1;
                // fp16 bundle on an fp16-arithmetic tier: pointwise and depthwise weights
                // stay f16 (f16 -> f32 -> f16 is exact) and run the f16 kernels.
                let f16 = k.f16_native && wt.dtype == DType::F16 && !self.f32_only[i];
                let halves = |w: &[f32]| w.iter().map(|&v| half::f16::from_f32(v)).collect();
                if pointwise && f16 {
                    let wh: Vec<half::f16> = halves(&w);
                    let step = Step::GemmF16 {
                        a: x.loc,
                        b: kernels::f16_gemm::pack_b_transposed(geom.c, o, &wh),
                        bias: if *has_bias { Some(bias) } else { None },
                        residual,
                        m: geom.n * geom.h * geom.w,
                        n: o,
                        k: geom.c,
                        act,
                        out: out.loc,
                    };
                    return Ok((step, k.f16_gemm.name, macs, params));
                }
                if pointwise {
                    let m = geom.n * geom.h * geom.w;
                    let b = kernels::f32_gemm::pack_b_transposed(geom.c, o, &w);
                    let step = Step::Gemm {
                        pre: None,
                        a: Mat::Loc(x.loc),
                        b,
                        bias: if *has_bias { Some(bias) } else { None },
                        residual,
                        c: Mat::Loc(out.loc),
                        post: None,
                        m,
                        n: o,
                        k: geom.c,
                        act,
                        out: out.loc,
                    };
                    return Ok((step, k.f32_gemm.name, macs, params));
                }
                let depthwise = geom.groups == geom.c && geom.o == geom.c && geom.groups > 1;
                let grouped_pointwise = geom.kh == 1
                    && geom.kw == 1
                    && geom.sh == 1
                    && geom.sw == 1
                    && window.pads == [0; 4]
                    && !depthwise;
                if grouped_pointwise {
                    let (cg, og) = (geom.c / geom.groups, o / geom.groups);
                    let b = (0..geom.groups)
                        .map(|gi| {
                            let wg = &w[gi * og * cg..(gi + 1) * og * cg];
                            kernels::f32_gemm::pack_b_transposed(cg, og, wg)
                        })
                        .collect();
                    let step = Step::GroupGemm {
                        x: x.loc,
                        b,
                        bias,
                        residual,
                        m: geom.n * geom.h * geom.w,
                        c: geom.c,
                        o,
                        cg,
                        og,
                        act,
                        out: out.loc,
                    };
                    return Ok((step, k.f32_gemm.name, macs, params));
                }
                if depthwise && f16 {
                    let wh: Vec<half::f16> = halves(&w);
                    let step = Step::DwConvF16 {
                        geom,
                        x: x.loc,
                        w: kernels::f16_dwconv::pack_weights(&geom, &wh),
                        bias,
                        residual,
                        act,
                        out: out.loc,
                    };
                    return Ok((step, k.f16_dwconv.name, macs, params));
                }
                let (wp, kname) = if depthwise {
                    (
                        kernels::f32_dwconv::pack_weights(&geom, &w),
                        k.f32_dwconv.name,
                    )
                } else {
                    (kernels::f32_conv::pack_weights(&geom, &w), k.f32_conv.name)
                };
                let step = Step::Conv {
                    depthwise,
                    geom,
                    x: x.loc,
                    w: wp,
                    bias,
                    residual,
                    act,
                    out: out.loc,
                };
                Ok((step, kname, macs, params))
            }
            Op::FullyConnected {
                activation,
                has_bias,
            } => {
                let x = self.place(x_id)?.clone();
                let wt = self.tensor(inp(1)?)?;
                let w = self.const_f32(inp(1)?)?;
                let (o, kk) = (wt.shape[0], wt.shape[1]);
                let m = x.loc.len.checked_div(kk).unwrap_or(out.loc.len / o.max(1));
                let bias = if *has_bias {
                    Some(self.const_f32(inp(2)?)?)
                } else {
                    None
                };
                let params = (w.len() + bias.as_ref().map_or(0, |b| b.len())) as u64;
                let b = kernels::f32_gemm::pack_b_transposed(kk, o, &w);
                let (pre, a) = self.gather_if_needed(name, &x)?;
                let (post, c) = self.scatter_if_needed(name, &out)?;
                let step = Step::Gemm {
                    pre,
                    a,
                    b,
                    bias,
                    residual: None,
                    c,
                    post,
                    m,
                    n: o,
                    k: kk,
                    act: act_of(*activation),
                    out: out.loc,
                };
                Ok((step, k.f32_gemm.name, (m * o * kk) as u64, params))
            }
            Op::MatMul => {
                let a = self.place(x_id)?.clone();
                let b = self.place(inp(1)?)?.clone();
                let (ra, rb, ro) = (a.shape.len(), b.shape.len(), out.shape.len());
                let (m, kk, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
                let sa = self.scratch(m * kk);
                let sb = self.scratch(kk * n);
                let sbp = self.scratch(kernels::f32_gemm::packed_len(kk, n));
                let sc = self.scratch(m * n);
                let batch_shape = &out.shape[..ro - 2];
                let nb: usize = batch_shape.iter().product();
                let bstride = |p: &Place| -> Vec<usize> {
                    let r = p.shape.len() - 2;
                    (0..ro - 2)
                        .map(|d| {
                            let lead = ro - 2 - r;
                            if d < lead || p.shape[d - lead] == 1 {
                                0
                            } else {
                                p.strides[d - lead]
                            }
                        })
                        .collect()
                };
                let (bsa, bsb) = (bstride(&a), bstride(&b));
                let wa = walk2(name, &[m, kk], &[kk, 1], &a.strides[ra - 2..])?;
                let wb = walk2(name, &[kk, n], &[n, 1], &b.strides[rb - 2..])?;
                let wc = walk2(name, &[m, n], &out.strides[ro - 2..], &[n, 1])?;
                let mut batches = Vec::with_capacity(nb);
                let mut idx = vec![0usize; batch_shape.len()];
                for _ in 0..nb {
                    let dot = |s: &[usize]| idx.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
                    batches.push((
                        Gather {
                            loc: a.loc,
                            off: dot(&bsa),
                            scratch: sa,
                            walk: wa,
                        },
                        Gather {
                            loc: b.loc,
                            off: dot(&bsb),
                            scratch: sb,
                            walk: wb,
                        },
                        Gather {
                            loc: out.loc,
                            off: dot(&out.strides[..ro - 2]),
                            scratch: sc,
                            walk: wc,
                        },
                    ));
                    for d in (0..idx.len()).rev() {
                        idx[d] += 1;
                        if idx[d] < batch_shape[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
                let macs = (nb * m * n * kk) as u64;
                let step = Step::MatMul {
                    batches,
                    m,
                    n,
                    k: kk,
                    sa,
                    sb,
                    sbp,
                    sc,
                    out: out.loc,
                };
                Ok((step, k.f32_gemm.name, macs, 0))
            }
            Op::Binary { op, activation } => {
                let a = self.place(x_id)?.clone();
                let b = self.place(inp(1)?)?.clone();
                let (op, act) = (bin_of(*op), act_of(*activation));
                let r = out.shape.len();
                let bcast = |p: &Place| -> (Vec<usize>, Vec<usize>) {
                    let lead = r - p.shape.len();
                    let mut sh = vec![1; r];
                    let mut st = vec![0; r];
                    for d in 0..p.shape.len() {
                        sh[lead + d] = p.shape[d];
                        st[lead + d] = if p.shape[d] == 1 { 0 } else { p.strides[d] };
                    }
                    (sh, st)
                };
                let (ash, ast) = bcast(&a);
                let (bsh, bst) = bcast(&b);
                let ost: Vec<usize> = out
                    .shape
                    .iter()
                    .zip(&out.strides)
                    .map(|(&d, &s)| if d == 1 { 0 } else { s })
                    .collect();
                let full =
                    |sh: &[usize], st: &[usize]| sh == out.shape.as_slice() && st == ost.as_slice();
                if full(&ash, &ast) && full(&bsh, &bst) {
                    let s = Step::BinaryFlat {
                        op,
                        a: a.loc,
                        b: b.loc,
                        act,
                        out: out.loc,
                    };
                    return Ok((s, k.f32_binary.name, 0, 0));
                }
                let nhwc = r == 4 && out.strides[1] == 1 && out.loc.buf == Buf::Arena;
                let per_channel = |sh: &[usize]| {
                    r == 4 && sh[0] == 1 && sh[1] == out.shape[1] && sh[2] == 1 && sh[3] == 1
                };
                if nhwc && full(&ash, &ast) && per_channel(&bsh) {
                    let s = Step::BinaryChannel {
                        op,
                        full: a.loc,
                        chan: b.loc,
                        c: out.shape[1],
                        swap: false,
                        act,
                        out: out.loc,
                    };
                    return Ok((s, k.f32_binary_channel.name, 0, 0));
                }
                if nhwc && full(&bsh, &bst) && per_channel(&ash) {
                    let s = Step::BinaryChannel {
                        op,
                        full: b.loc,
                        chan: a.loc,
                        c: out.shape[1],
                        swap: true,
                        act,
                        out: out.loc,
                    };
                    return Ok((s, k.f32_binary_channel.name, 0, 0));
                }
                let walk = Walk::new(&out.shape, [&ost, &ast, &bst])
                    .ok_or_else(|| Error::graph(name, "rank too large for the strided walker"))?;
                let s = Step::BinaryWalk {
                    op,
                    a: a.loc,
                    b: b.loc,
                    walk,
                    act,
                    out: out.loc,
                };
                Ok((s, k.f32_binary_strided.name, 0, 0))
            }
            Op::Unary { activation } => {
                let x = self.place(x_id)?.clone();
                let walk = walk2(name, &out.shape, &out.strides, &x.strides)?;
                let part = CopyPart {
                    src: x.loc,
                    src_off: 0,
                    dst: out.loc,
                    dst_off: 0,
                    walk,
                };
                Ok((
                    Step::Copy {
                        parts: vec![part],
                        act: act_of(*activation),
                    },
                    k.f32_activation.name,
                    0,
                    0,
                ))
            }
            Op::BatchNorm => {
                let x = self.place(x_id)?.clone();
                if x.strides != out.strides {
                    return Err(Error::Unsupported(format!(
                        "node {name:?}: BatchNorm on a constant"
                    )));
                }
                let scale = self.const_f32(inp(1)?)?;
                let shift = self.const_f32(inp(2)?)?;
                let c = x.shape[1];
                let inner = if x.strides[1] == 1 {
                    1
                } else {
                    x.shape[2..].iter().product()
                };
                let params = (scale.len() + shift.len()) as u64;
                let s = Step::Affine {
                    x: x.loc,
                    scale,
                    shift,
                    c,
                    inner,
                    out: out.loc,
                };
                Ok((s, k.f32_affine.name, x.loc.len as u64, params))
            }
            Op::LayerNorm { epsilon } => {
                let x = self.place(x_id)?.clone();
                let scale = self.const_f32(inp(1)?)?;
                let shift = self.const_f32(inp(2)?)?;
                let axis = x.shape.len() - 1;
                let len = x.shape[axis];
                if scale.len() != len || shift.len() != len {
                    return Err(Error::graph(name, "LayerNorm scale or shift size mismatch"));
                }
                let mut rows = x.shape.clone();
                rows[axis] = 1;
                let walk = walk2(name, &rows, &out.strides, &x.strides)?;
                let params = (scale.len() + shift.len()) as u64;
                let s = Step::LayerNorm {
                    x: x.loc,
                    walk,
                    len,
                    sx: x.strides[axis],
                    sy: out.strides[axis],
                    scale,
                    shift,
                    epsilon: *epsilon,
                    out: out.loc,
                };
                Ok((s, k.f32_layer_norm.name, x.loc.len as u64, params))
            }
            Op::Pool2d { kind, window } => {
                let x = self.place(x_id)?.clone();
                if x.loc.buf != Buf::Arena || x.shape.len() != 4 {
                    return Err(Error::Unsupported(format!(
                        "node {name:?}: Pool2d on a constant"
                    )));
                }
                let geom = window_geom(&x.shape, &out.shape, window, x.shape[1], 1);
                let macs = (out.loc.len * geom.kh * geom.kw) as u64;
                let global = geom.kh == geom.h
                    && geom.kw == geom.w
                    && window.pads == [0; 4]
                    && geom.oh == 1
                    && geom.ow == 1;
                match kind {
                    PoolKind::Avg { .. } if global => {
                        let s = Step::GlobalAvg {
                            n: geom.n,
                            hw: geom.h * geom.w,
                            c: geom.c,
                            x: x.loc,
                            out: out.loc,
                        };
                        Ok((s, k.f32_global_avg.name, macs, 0))
                    }
                    PoolKind::Max => Ok((
                        Step::Pool {
                            max: true,
                            include_pad: false,
                            geom,
                            x: x.loc,
                            out: out.loc,
                        },
                        k.f32_maxpool.name,
                        macs,
                        0,
                    )),
                    PoolKind::Avg { count_include_pad } => Ok((
                        Step::Pool {
                            max: false,
                            include_pad: *count_include_pad,
                            geom,
                            x: x.loc,
                            out: out.loc,
                        },
                        k.f32_avgpool.name,
                        macs,
                        0,
                    )),
                }
            }
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => {
                let x = self.place(x_id)?.clone();
                let r = x.shape.len();
                let spatial = r == 4 && x.strides[1] == 1 && x.loc.buf == Buf::Arena && {
                    let mut s = axes.clone();
                    s.sort();
                    s == [2, 3]
                };
                if spatial && *op == ReduceOp::Mean {
                    let s = Step::GlobalAvg {
                        n: x.shape[0],
                        hw: x.shape[2] * x.shape[3],
                        c: x.shape[1],
                        x: x.loc,
                        out: out.loc,
                    };
                    return Ok((s, k.f32_global_avg.name, x.loc.len as u64, 0));
                }
                let mut ost = vec![0usize; r];
                let mut oi = 0;
                let mut count = 1;
                for (d, st) in ost.iter_mut().enumerate() {
                    if axes.contains(&d) {
                        count *= x.shape[d];
                        if *keep_dims {
                            oi += 1;
                        }
                    } else {
                        *st = out.strides[oi];
                        oi += 1;
                    }
                }
                let walk = walk2(name, &x.shape, &x.strides, &ost)?;
                Ok((
                    Step::Reduce {
                        op: *op,
                        x: x.loc,
                        walk,
                        count,
                        out: out.loc,
                    },
                    "reduce::scalar::reduce_strided",
                    x.loc.len as u64,
                    0,
                ))
            }
            Op::Concat { axis } => {
                let mut parts = Vec::new();
                let mut at = 0;
                for &t in &node.inputs {
                    let p = self.place(t)?.clone();
                    let walk = walk2(name, &p.shape, &out.strides, &p.strides)?;
                    parts.push(CopyPart {
                        src: p.loc,
                        src_off: 0,
                        dst: out.loc,
                        dst_off: at * out.strides[*axis],
                        walk,
                    });
                    at += p.shape[*axis];
                }
                Ok((
                    Step::Copy {
                        parts,
                        act: Act::None,
                    },
                    k.f32_copy.name,
                    0,
                    0,
                ))
            }
            Op::Split { axis, .. } => {
                let x = self.place(x_id)?.clone();
                let mut parts = Vec::new();
                let mut at = 0;
                for &t in &node.outputs {
                    let p = self.place(t)?.clone();
                    let walk = walk2(name, &p.shape, &p.strides, &x.strides)?;
                    parts.push(CopyPart {
                        src: x.loc,
                        src_off: at * x.strides[*axis],
                        dst: p.loc,
                        dst_off: 0,
                        walk,
                    });
                    at += p.shape[*axis];
                }
                Ok((
                    Step::Copy {
                        parts,
                        act: Act::None,
                    },
                    k.f32_copy.name,
                    0,
                    0,
                ))
            }
            Op::Slice {
                axis, start, step, ..
            } => {
                let x = self.place(x_id)?.clone();
                let mut st = x.strides.clone();
                st[*axis] *= *step;
                let walk = walk2(name, &out.shape, &out.strides, &st)?;
                let src_off = if out.loc.len == 0 {
                    0
                } else {
                    start * x.strides[*axis]
                };
                let part = CopyPart {
                    src: x.loc,
                    src_off,
                    dst: out.loc,
                    dst_off: 0,
                    walk,
                };
                Ok((
                    Step::Copy {
                        parts: vec![part],
                        act: Act::None,
                    },
                    k.f32_copy.name,
                    0,
                    0,
                ))
            }
            Op::Reshape => {
                let x = self.place(x_id)?.clone();
                let out_rm = is_row_major(&out.shape, &out.strides);
                let in_rm = is_row_major(&x.shape, &x.strides);
                if out_rm || in_rm {
                    let walk = if out_rm {
                        walk2(name, &x.shape, &row_major_strides(&x.shape), &x.strides)?
                    } else {
                        walk2(
                            name,
                            &out.shape,
                            &out.strides,
                            &row_major_strides(&out.shape),
                        )?
                    };
                    let part = CopyPart {
                        src: x.loc,
                        src_off: 0,
                        dst: out.loc,
                        dst_off: 0,
                        walk,
                    };
                    return Ok((
                        Step::Copy {
                            parts: vec![part],
                            act: Act::None,
                        },
                        k.f32_copy.name,
                        0,
                        0,
                    ));
                }
                let s = self.scratch(x.loc.len);
                let gather = Gather {
                    loc: x.loc,
                    off: 0,
                    scratch: s,
                    walk: walk2(name, &x.shape, &row_major_strides(&x.shape), &x.strides)?,
                };
                let scatter = Gather {
                    loc: out.loc,
                    off: 0,
                    scratch: s,
                    walk: walk2(
                        name,
                        &out.shape,
                        &out.strides,
                        &row_major_strides(&out.shape),
                    )?,
                };
                Ok((
                    Step::CopyVia {
                        gather,
                        scatter,
                        out: out.loc,
                    },
                    k.f32_copy.name,
                    0,
                    0,
                ))
            }
            Op::Transpose { perm } => {
                let x = self.place(x_id)?.clone();
                let st: Vec<usize> = perm.iter().map(|&p| x.strides[p]).collect();
                let walk = walk2(name, &out.shape, &out.strides, &st)?;
                let part = CopyPart {
                    src: x.loc,
                    src_off: 0,
                    dst: out.loc,
                    dst_off: 0,
                    walk,
                };
                Ok((
                    Step::Copy {
                        parts: vec![part],
                        act: Act::None,
                    },
                    k.f32_copy.name,
                    0,
                    0,
                ))
            }
            Op::ChannelShuffle { groups, .. } => self.lower_shuffle(i, name, *groups),
            Op::Softmax { axis } => {
                let x = self.place(x_id)?.clone();
                let mut shape = x.shape.clone();
                let len = shape[*axis];
                shape[*axis] = 1;
                let walk = walk2(name, &shape, &out.strides, &x.strides)?;
                let s = Step::Softmax {
                    x: x.loc,
                    walk,
                    len,
                    sx: x.strides[*axis],
                    sy: out.strides[*axis],
                    out: out.loc,
                };
                Ok((s, k.f32_softmax.name, 0, 0))
            }
            Op::Pad { pads, mode } => {
                let x = self.place(x_id)?.clone();
                let mut maps = Vec::with_capacity(pads.len());
                for (d, &(b, _)) in pads.iter().enumerate() {
                    let n = x.shape[d];
                    let map: Vec<usize> = (0..out.shape[d])
                        .map(|o| {
                            let i = o as isize - b as isize;
                            let inside = i >= 0 && (i as usize) < n;
                            match mode {
                                _ if inside => i as usize,
                                PadMode::Constant { .. } => usize::MAX,
                                _ if n == 0 => usize::MAX,
                                PadMode::Edge => i.clamp(0, n as isize - 1) as usize,
                                PadMode::Reflect => {
                                    let r = if i < 0 { -i } else { 2 * (n as isize - 1) - i };
                                    r.clamp(0, n as isize - 1) as usize
                                }
                            }
                        })
                        .collect();
                    maps.push(map);
                }
                let value = if let PadMode::Constant { value } = mode {
                    *value
                } else {
                    0.0
                };
                let s = Step::Pad {
                    x: x.loc,
                    out_shape: out.shape.clone(),
                    in_strides: x.strides.clone(),
                    out_strides: out.strides.clone(),
                    maps,
                    value,
                    out: out.loc,
                };
                Ok((s, "pad::scalar::pad_mapped", 0, 0))
            }
            Op::Quantize | Op::Dequantize => {
                let quantize = matches!(node.op, Op::Quantize);
                let x = self.place(x_id)?.clone();
                if x.strides != out.strides {
                    return Err(Error::Unsupported(format!(
                        "node {name:?}: (de)quantize of a constant"
                    )));
                }
                let qt = if quantize {
                    self.tensor(out_id)?
                } else {
                    self.tensor(x_id)?
                };
                let (lo, hi) = if qt.dtype == DType::I8 {
                    (-128.0, 127.0)
                } else {
                    (0.0, 255.0)
                };
                let (stride, dim, scales, zps) = match &qt.quant {
                    Some(Quant::PerTensor { scale, zero_point }) => {
                        (1, 1, vec![*scale], vec![*zero_point as f32])
                    }
                    Some(Quant::PerChannel {
                        axis,
                        scales,
                        zero_points,
                    }) => (
                        x.strides[*axis].max(1),
                        x.shape[*axis],
                        scales.clone(),
                        zero_points.iter().map(|&z| z as f32).collect(),
                    ),
                    None => return Err(Error::graph(name, "missing quantization parameters")),
                };
                if scales.len() != dim || zps.len() != dim {
                    return Err(Error::graph(
                        name,
                        "per-channel quantization length mismatch",
                    ));
                }
                let s = Step::Quant {
                    quantize,
                    stride,
                    dim,
                    scales,
                    zps,
                    lo,
                    hi,
                    x: x.loc,
                    out: out.loc,
                };
                Ok((
                    s,
                    if quantize && dim == 1 {
                        self.k.qs8_quantize.name
                    } else if quantize {
                        "quant::scalar::quantize"
                    } else {
                        "quant::scalar::dequantize"
                    },
                    0,
                    0,
                ))
            }
        }
    }

    /// A GEMM A operand: the tensor itself if row-major, else a gather into scratch.
    fn gather_if_needed(&mut self, node: &str, p: &Place) -> Result<(Option<Gather>, Mat)> {
        if is_row_major(&p.shape, &p.strides) {
            return Ok((None, Mat::Loc(p.loc)));
        }
        let s = self.scratch(p.loc.len);
        let walk = walk2(node, &p.shape, &row_major_strides(&p.shape), &p.strides)?;
        Ok((
            Some(Gather {
                loc: p.loc,
                off: 0,
                scratch: s,
                walk,
            }),
            Mat::Scratch(s),
        ))
    }

    /// A GEMM C operand: the tensor itself if row-major, else scratch plus a scatter.
    fn scatter_if_needed(&mut self, node: &str, p: &Place) -> Result<(Option<Gather>, Mat)> {
        if is_row_major(&p.shape, &p.strides) {
            return Ok((None, Mat::Loc(p.loc)));
        }
        let s = self.scratch(p.loc.len);
        let walk = walk2(node, &p.shape, &p.strides, &row_major_strides(&p.shape))?;
        Ok((
            Some(Gather {
                loc: p.loc,
                off: 0,
                scratch: s,
                walk,
            }),
            Mat::Scratch(s),
        ))
    }
}
