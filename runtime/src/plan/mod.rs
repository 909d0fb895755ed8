//! The planner: maps a validated graph onto physical layouts (rank-4 activations NHWC,
//! everything else row-major), prepacks weights once, assigns every activation an offset in
//! one liveness-based arena, and lowers each node to a step of its op family:
//!
//! - `conv`: Conv2d (pointwise GEMM, grouped, direct, depthwise; f32, f16, int8)
//! - `linear`: FullyConnected, MatMul and the GEMM steps
//! - `eltwise`: binary and unary element-wise ops
//! - `norm`: BatchNorm, LayerNorm, Softmax
//! - `pool`: pooling and reductions
//! - `moves`: data movement
//! - `quant`: Quantize / Dequantize
//! - `fused`: inverted-residual blocks run band by band
//!
//! Each step says how its work splits into units ([`step::Work`]); the executor runs unit
//! ranges on the session's threads.

pub(crate) mod arena;
mod conv;
mod eltwise;
mod fused;
mod linear;
mod moves;
mod norm;
mod planner;
mod pool;
mod quant;
pub(crate) mod step;

use arena::{align_up, is_row_major, physical_strides, slots, Buf, Loc, Out, Place, ALIGN};
use planner::{Lowered, Planner};
use step::{Step, Work};

pub(crate) use arena::is_byte;

use crate::error::{Error, Result};
use crate::ir::{DType, Op, Tensor, TensorId};
use crate::kernels::walk::row_major_strides;
use crate::kernels::Kernels;
use crate::weights::Model;

/// What `inspect` and profiles show about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInfo {
    /// Node name.
    pub node: String,
    /// Operator name.
    pub op: &'static str,
    /// Kernel used, e.g. `f32_dwconv::scalar::dwconv_generic`.
    pub kernel: &'static str,
    /// Multiply-accumulates of convolutions and matrix products ([`crate::summary`]'s
    /// definition); 0 for every other step.
    pub macs: u64,
    /// Constant parameters read by the step.
    pub params: u64,
    /// Logical shape of the first output.
    pub output_shape: Vec<usize>,
    /// Independent work units the step divides into across threads (1: it runs whole).
    pub units: usize,
}

/// A lowered node: its step (none for a no-op), output regions and work.
pub(crate) struct Planned {
    pub step: Option<Box<dyn Step>>,
    pub outs: Vec<Out>,
    pub work: Work,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("step", &self.step)
            .field("work", &self.work)
            .finish()
    }
}

/// A compiled execution plan for one model and one kernel set.
#[derive(Debug)]
pub struct Plan {
    pub(crate) places: Vec<Option<Place>>,
    pub(crate) steps: Vec<Planned>,
    infos: Vec<StepInfo>,
    pub(crate) consts: Vec<f32>,
    pub(crate) arena_len: usize,
    /// Scratch f32 slots one thread needs.
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
        build(Planner::new(model, *kernels))
    }

    /// Bytes of the activation arena (after liveness-based reuse).
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }

    /// Bytes all activations would take without reuse (for comparison).
    pub fn naive_bytes(&self) -> usize {
        self.naive_len * 4
    }

    /// Bytes of scratch one thread uses (a session holds one such buffer per thread).
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

/// Lower node `i` by its op family, on its input's element type.
fn lower(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let x = p.input(node, 0)?;
    let byte_input = is_byte(p.tensor(x)?);
    match &node.op {
        Op::Conv2d { .. } => conv::lower(p, i, byte_input),
        Op::FullyConnected { .. } | Op::MatMul => linear::lower(p, i, byte_input),
        Op::Binary { .. } | Op::Unary { .. } => eltwise::lower(p, i, byte_input),
        Op::BatchNorm | Op::LayerNorm { .. } | Op::Softmax { .. } => norm::lower(p, i, byte_input),
        Op::Pool2d { .. } | Op::Reduce { .. } => pool::lower(p, i, byte_input),
        Op::Quantize | Op::Dequantize => quant::lower(p, i),
        op if moves::is_move(op) => moves::lower(p, i, byte_input),
        op => Err(Error::Unsupported(format!(
            "node {:?}: operator {} is not implemented",
            node.name,
            op.name()
        ))),
    }
}

/// Constants used as runtime operands, materialised row-major: `(regions, data)`.
fn materialise_consts(p: &Planner<'_>) -> Result<(Vec<Option<Loc>>, Vec<f32>)> {
    let g = &p.model.graph;
    let mut consts = Vec::new();
    let mut const_loc: Vec<Option<Loc>> = vec![None; g.tensors.len()];
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
            if p.tensor(t)?.is_const() {
                let data = p.const_f32(t)?;
                let off = align_up(consts.len());
                consts.resize(off, 0.0);
                consts.extend_from_slice(&data);
                const_loc[t] = Some(Loc {
                    buf: Buf::Const,
                    off,
                    len: data.len(),
                });
            }
        }
    }
    Ok((const_loc, consts))
}

/// Arena placement: `(offset of each alias-group root, arena length, naive length, roots)`.
struct Layout {
    offset: Vec<usize>,
    root: Vec<usize>,
    live: Vec<bool>,
    arena_len: usize,
    naive_len: usize,
}

/// Alias groups (row-major Reshapes share their input's storage), lifetimes, and a greedy
/// placement: largest first, at the lowest offset not overlapping a live group.
fn layout(p: &Planner<'_>, chains: &[fused::Chain], banded: &[TensorId]) -> Result<Layout> {
    let g = &p.model.graph;
    let nt = g.tensors.len();
    let is_act = |t: &Tensor| !t.is_const();
    for t in g.tensors.iter() {
        if is_act(t) && !matches!(t.dtype, DType::F32 | DType::I8 | DType::U8) {
            return Err(Error::Unsupported(format!(
                "activation {:?} of dtype {:?} (only f32 and 8-bit activations are supported)",
                t.name, t.dtype
            )));
        }
    }
    let mut root: Vec<usize> = (0..nt).collect();
    for node in &g.nodes {
        if let (Op::Reshape, [x], [y]) = (&node.op, node.inputs.as_slice(), node.outputs.as_slice())
        {
            let (tx, ty) = (p.tensor(*x)?, p.tensor(*y)?);
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
    // Fused blocks keep their expanded and depthwise tensors in scratch bands: those get no
    // arena space, and the block input is read until the block's last node runs.
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
    for c in chains {
        if let Some(&x) = g.nodes[c.first()].inputs.first() {
            touch(x, c.project + 1, &mut life);
        }
    }
    let mut size = vec![0usize; nt];
    let mut naive_len = 0usize;
    for (t, tensor) in g.tensors.iter().enumerate() {
        if is_act(tensor) && life[root[t]].is_some() {
            size[root[t]] = size[root[t]].max(slots(tensor));
            naive_len += slots(tensor);
        }
    }
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
    let live = (0..nt).map(|t| life[root[t]].is_some()).collect();
    Ok(Layout {
        offset,
        root,
        live,
        arena_len,
        naive_len,
    })
}

/// Every step's outputs must be arena regions inside the arena.
fn check_outs(node: &str, outs: &[Out], arena_len: usize) -> Result<()> {
    for o in outs {
        let slots = if o.bytes {
            o.loc.len.div_ceil(4)
        } else {
            o.loc.len
        };
        if o.loc.buf != Buf::Arena || o.loc.off + slots > arena_len {
            return Err(Error::Unsupported(format!(
                "internal: node {node:?} writes outside the arena ({o:?})"
            )));
        }
    }
    Ok(())
}

fn build(mut p: Planner<'_>) -> Result<Plan> {
    let g = &p.model.graph;
    let (const_loc, consts) = materialise_consts(&p)?;
    let chains = fused::find_chains(g);
    let banded: Vec<TensorId> = chains
        .iter()
        .flat_map(|c| {
            let dw = &g.nodes[c.dw];
            let e = c.expand.and(dw.inputs.first().copied());
            e.into_iter().chain(dw.outputs.first().copied())
        })
        .collect();
    let lay = layout(&p, &chains, &banded)?;
    for (t, tensor) in g.tensors.iter().enumerate() {
        let loc = if let Some(l) = const_loc[t] {
            Some((l, row_major_strides(&tensor.shape)))
        } else if !tensor.is_const() && lay.live[t] {
            let l = Loc {
                buf: Buf::Arena,
                off: lay.offset[lay.root[t]],
                len: tensor.numel(),
            };
            Some((l, physical_strides(tensor)))
        } else {
            None
        };
        p.places[t] = loc.map(|(loc, strides)| Place {
            loc,
            shape: tensor.shape.clone(),
            strides,
        });
    }
    // Banded tensors get a placeholder place so the block's members can be read; they
    // live in the fused step's scratch bands and are never touched in the arena.
    for &t in &banded {
        let tensor = &g.tensors[t];
        p.places[t] = Some(Place {
            loc: Loc {
                buf: Buf::Arena,
                off: 0,
                len: tensor.numel(),
            },
            shape: tensor.shape.clone(),
            strides: physical_strides(tensor),
        });
    }
    let mut member = vec![None; g.nodes.len()];
    for c in &chains {
        for i in c.expand.into_iter().chain([c.dw, c.project]) {
            p.f32_only[i] = true;
            member[i] = Some(*c);
        }
    }
    let mut steps = Vec::with_capacity(g.nodes.len());
    let mut infos = Vec::with_capacity(g.nodes.len());
    let mut scratch_len = 0;
    for (i, node) in g.nodes.iter().enumerate() {
        let aliased = matches!(node.op, Op::Reshape)
            && node.inputs.len() == 1
            && node.outputs.len() == 1
            && lay.root[node.outputs[0]] == lay.root[node.inputs[0]]
            && node.outputs[0] != node.inputs[0];
        let lowered = match member[i] {
            _ if aliased => Ok(Lowered {
                step: None,
                kernel: "alias",
                macs: 0,
                params: 0,
            }),
            Some(c) if c.project == i => fused::lower_chain(&p, c),
            Some(_) => conv::conv_parts(&p, i).map(|c| Lowered {
                step: None,
                kernel: "fused",
                macs: 0,
                params: c.params,
            }),
            None => lower(&mut p, i),
        }
        .map_err(|e| match e {
            Error::Graph { msg, .. } => Error::graph(&node.name, msg),
            other => other,
        })?;
        let outs = lowered.step.as_ref().map(|s| s.outs()).unwrap_or_default();
        check_outs(&node.name, &outs, lay.arena_len)?;
        let work = lowered.step.as_ref().map_or(Work::single(), |s| s.work());
        scratch_len = scratch_len.max(lowered.step.as_ref().map_or(0, |s| s.scratch()));
        infos.push(StepInfo {
            node: node.name.clone(),
            op: node.op.name(),
            kernel: lowered.kernel,
            macs: lowered.macs,
            params: lowered.params,
            output_shape: node
                .outputs
                .first()
                .and_then(|&t| g.tensors.get(t))
                .map(|t| t.shape.clone())
                .unwrap_or_default(),
            units: if lowered.step.is_some() {
                work.units
            } else {
                0
            },
        });
        steps.push(Planned {
            step: lowered.step,
            outs,
            work,
        });
    }
    for &t in g.inputs.iter().chain(&g.outputs) {
        p.place(t)?;
    }
    Ok(Plan {
        places: p.places,
        steps,
        infos,
        consts,
        arena_len: lay.arena_len,
        scratch_len: align_up(scratch_len),
        naive_len: lay.naive_len,
        inputs: g.inputs.clone(),
        outputs: g.outputs.clone(),
        kernels: p.k,
    })
}
