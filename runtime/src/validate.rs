//! Graph and model validation: every index, shape, dtype, attribute and constant range of an
//! untrusted graph is checked here once, so the planner and kernels can rely on them.
//!
//! Size caps keep a hostile bundle from making the runtime allocate absurd amounts of memory.

use crate::error::{Error, Result};
use crate::ir::{Activation, DType, Graph, Op, PadMode, Quant, Tensor, Window};
use crate::meta::{ImageLayout, Metadata};
use crate::weights::{Model, WEIGHT_ALIGN};

/// Largest tensor rank accepted.
pub const MAX_RANK: usize = 8;
/// Largest element count of one tensor (and largest single dimension).
pub const MAX_NUMEL: usize = 1 << 28;
/// Largest total size in bytes of all non-constant tensors of a graph.
pub const MAX_ACTIVATION_BYTES: u64 = 4 << 30;
/// Largest kernel size, stride, dilation or padding of a window, and largest `Pad` amount.
pub const MAX_WINDOW: usize = 1 << 16;
/// Largest number of outputs of a fused channel shuffle (a bound for hostile bundles).
pub const MAX_SPLITS: usize = 1 << 10;
/// Largest `resize_shorter` / crop side accepted in preprocessing metadata.
pub const MAX_IMAGE_SIDE: u32 = 1 << 14;

/// Name used in errors that concern the graph as a whole rather than one node.
const GRAPH: &str = "<graph>";

fn err(node: &str, msg: impl Into<String>) -> Error {
    Error::graph(node, msg)
}

/// Validate one tensor in isolation: rank, dimensions, element count, quantization parameters
/// and the bounds of its constant data inside a `weights_len`-byte blob.
fn check_tensor(id: usize, t: &Tensor, weights_len: usize) -> Result<()> {
    let who = format!("tensor #{id} {:?}", t.name);
    if t.shape.len() > MAX_RANK {
        return Err(err(
            GRAPH,
            format!(
                "{who}: rank {} exceeds the maximum {MAX_RANK}",
                t.shape.len()
            ),
        ));
    }
    let mut numel: usize = 1;
    for (a, &d) in t.shape.iter().enumerate() {
        if d == 0 {
            return Err(err(
                GRAPH,
                format!("{who}: dimension {a} is 0 (empty tensors are not supported)"),
            ));
        }
        numel = numel
            .checked_mul(d)
            .filter(|&n| n <= MAX_NUMEL)
            .ok_or_else(|| {
                err(
                    GRAPH,
                    format!(
                        "{who}: shape {:?} has more than {MAX_NUMEL} elements",
                        t.shape
                    ),
                )
            })?;
    }
    if let Some(q) = &t.quant {
        check_quant(&who, t, q)?;
    }
    if let Some(r) = t.data {
        if r.offset % WEIGHT_ALIGN as u64 != 0 {
            return Err(err(
                GRAPH,
                format!(
                    "{who}: data offset {} is not a multiple of {WEIGHT_ALIGN}",
                    r.offset
                ),
            ));
        }
        let end = r.offset.checked_add(r.len);
        if end.is_none_or(|e| e > weights_len as u64) {
            return Err(err(
                GRAPH,
                format!(
                    "{who}: data range {}+{} is outside the {weights_len}-byte weights blob",
                    r.offset, r.len
                ),
            ));
        }
        let want = numel as u64 * t.dtype.size() as u64;
        if r.len != want {
            return Err(err(
                GRAPH,
                format!(
                    "{who}: data length {} does not match shape {:?} of {:?} ({want} bytes)",
                    r.len, t.shape, t.dtype
                ),
            ));
        }
    }
    Ok(())
}

fn check_quant(who: &str, t: &Tensor, q: &Quant) -> Result<()> {
    let zp_range = match t.dtype {
        DType::I8 => -128..=127,
        DType::U8 => 0..=255,
        DType::I32 => 0..=0,
        DType::F32 | DType::F16 => {
            return Err(err(
                GRAPH,
                format!("{who}: quantization parameters on a {:?} tensor", t.dtype),
            ))
        }
    };
    let check_one = |scale: f32, zp: i32| -> Result<()> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(err(
                GRAPH,
                format!("{who}: quantization scale {scale} is not finite and positive"),
            ));
        }
        if !zp_range.contains(&zp) {
            return Err(err(
                GRAPH,
                format!("{who}: zero point {zp} out of range for {:?}", t.dtype),
            ));
        }
        Ok(())
    };
    match q {
        Quant::PerTensor { scale, zero_point } => check_one(*scale, *zero_point),
        Quant::PerChannel {
            axis,
            scales,
            zero_points,
        } => {
            let dim = *t.shape.get(*axis).ok_or_else(|| {
                err(
                    GRAPH,
                    format!(
                        "{who}: per-channel axis {axis} out of range for rank {}",
                        t.shape.len()
                    ),
                )
            })?;
            if scales.len() != dim || zero_points.len() != dim {
                return Err(err(
                    GRAPH,
                    format!(
                        "{who}: per-channel axis {axis} has {dim} channels but {} scales and {} zero points",
                        scales.len(),
                        zero_points.len()
                    ),
                ));
            }
            scales
                .iter()
                .zip(zero_points)
                .try_for_each(|(&s, &z)| check_one(s, z))
        }
    }
}

fn check_activation(node: &str, a: &Activation) -> Result<()> {
    let ok = match *a {
        Activation::Clip { min, max } => !min.is_nan() && !max.is_nan() && min <= max,
        Activation::LeakyRelu { alpha } => alpha.is_finite(),
        Activation::HardSigmoid { alpha, beta } => alpha.is_finite() && beta.is_finite(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(err(node, format!("invalid activation parameters {a:?}")))
    }
}

fn check_window(node: &str, op: &str, w: &Window) -> Result<()> {
    let fields: [(&str, &[usize], usize); 4] = [
        ("kernel", &w.kernel, 1),
        ("strides", &w.strides, 1),
        ("dilations", &w.dilations, 1),
        ("pads", &w.pads, 0),
    ];
    for (name, vals, min) in fields {
        if vals.iter().any(|&v| v < min || v > MAX_WINDOW) {
            return Err(err(
                node,
                format!("{op}: {name} {vals:?} must be in {min}..={MAX_WINDOW}"),
            ));
        }
    }
    Ok(())
}

fn window_out(node: &str, op: &str, w: &Window, h: usize, wd: usize) -> Result<[usize; 2]> {
    w.output_hw([h, wd]).ok_or_else(|| {
        err(
            node,
            format!(
                "{op}: window kernel {:?} dilations {:?} does not fit input {h}x{wd} with pads {:?}",
                w.kernel, w.dilations, w.pads
            ),
        )
    })
}

fn want_rank(node: &str, op: &str, what: &str, t: &Tensor, rank: usize) -> Result<()> {
    if t.shape.len() != rank {
        return Err(err(
            node,
            format!(
                "{op}: {what} must have rank {rank}, found shape {:?}",
                t.shape
            ),
        ));
    }
    Ok(())
}

fn want_shape(node: &str, op: &str, what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.shape != shape {
        return Err(err(
            node,
            format!("{op}: {what} has shape {:?}, expected {shape:?}", t.shape),
        ));
    }
    Ok(())
}

fn want_axis(node: &str, op: &str, axis: usize, rank: usize) -> Result<()> {
    if axis >= rank {
        return Err(err(
            node,
            format!("{op}: axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(())
}

/// NumPy broadcasting of two shapes, or `None` when incompatible.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let db = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Number of input tensors `op` takes, or `None` when variadic (Concat, ChannelShuffle: at
/// least one).
fn input_count(op: &Op) -> Option<usize> {
    Some(match op {
        Op::Conv2d {
            has_bias,
            has_residual,
            ..
        } => 2 + *has_bias as usize + *has_residual as usize,
        Op::FullyConnected { has_bias, .. } => 2 + *has_bias as usize,
        Op::MatMul | Op::Binary { .. } => 2,
        Op::BatchNorm | Op::LayerNorm { .. } => 3,
        Op::Concat { .. } | Op::ChannelShuffle { .. } => return None,
        _ => 1,
    })
}

/// Shapes of the outputs of `op` applied to `inputs`, following the rules documented on each
/// [`Op`] variant, with every attribute checked. Errors name `node_name`.
///
/// `Reshape` takes its output shape from the declared output tensor, which this function does
/// not see: it returns an error for it; [`validate_graph`] checks Reshape on its own.
pub fn infer_output_shapes(
    op: &Op,
    inputs: &[&Tensor],
    node_name: &str,
) -> Result<Vec<Vec<usize>>> {
    infer(op, inputs, None, node_name)
}

fn infer(
    op: &Op,
    inputs: &[&Tensor],
    declared: Option<&[&Tensor]>,
    node: &str,
) -> Result<Vec<Vec<usize>>> {
    let name = op.name();
    match input_count(op) {
        Some(n) if inputs.len() != n => {
            return Err(err(
                node,
                format!("{name}: expects {n} inputs, found {}", inputs.len()),
            ))
        }
        None if inputs.is_empty() => {
            return Err(err(node, format!("{name}: expects at least one input")))
        }
        _ => {}
    }
    let x = inputs[0];
    let rank = x.shape.len();
    let one = |s: Vec<usize>| Ok(vec![s]);
    match op {
        Op::Conv2d {
            window,
            groups,
            activation,
            has_bias,
            has_residual,
        } => {
            check_activation(node, activation)?;
            check_window(node, name, window)?;
            want_rank(node, name, "input", x, 4)?;
            let w = inputs[1];
            want_rank(node, name, "weight", w, 4)?;
            let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
            let g = *groups;
            if g == 0 || c % g != 0 {
                return Err(err(
                    node,
                    format!("{name}: input has {c} channels, not divisible by groups={g}"),
                ));
            }
            let o = w.shape[0];
            if !o.is_multiple_of(g) {
                return Err(err(
                    node,
                    format!("{name}: weight has {o} output channels, not divisible by groups={g}"),
                ));
            }
            if w.shape[1] != c / g {
                return Err(err(
                    node,
                    format!(
                        "{name}: weight has {} input channels per group, input has {c} channels with groups={g}",
                        w.shape[1]
                    ),
                ));
            }
            if w.shape[2..] != window.kernel {
                return Err(err(
                    node,
                    format!(
                        "{name}: weight kernel {:?} differs from window kernel {:?}",
                        &w.shape[2..],
                        window.kernel
                    ),
                ));
            }
            let [oh, ow] = window_out(node, name, window, h, wd)?;
            let out = vec![n, o, oh, ow];
            if *has_bias {
                want_shape(node, name, "bias", inputs[2], &[o])?;
            }
            if *has_residual {
                want_shape(node, name, "residual", inputs[inputs.len() - 1], &out)?;
            }
            one(out)
        }
        Op::FullyConnected {
            activation,
            has_bias,
        } => {
            check_activation(node, activation)?;
            if rank == 0 {
                return Err(err(node, format!("{name}: input must have rank >= 1")));
            }
            let w = inputs[1];
            want_rank(node, name, "weight", w, 2)?;
            let k = x.shape[rank - 1];
            if w.shape[1] != k {
                return Err(err(
                    node,
                    format!(
                        "{name}: weight {:?} expects {} input features, input has {k}",
                        w.shape, w.shape[1]
                    ),
                ));
            }
            let o = w.shape[0];
            if *has_bias {
                want_shape(node, name, "bias", inputs[2], &[o])?;
            }
            let mut out = x.shape.clone();
            out[rank - 1] = o;
            one(out)
        }
        Op::MatMul => {
            let (a, b) = (&x.shape, &inputs[1].shape);
            if a.len() < 2 || b.len() < 2 {
                return Err(err(
                    node,
                    format!("{name}: operands {a:?} and {b:?} must have rank >= 2"),
                ));
            }
            let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
            let (k2, nn) = (b[b.len() - 2], b[b.len() - 1]);
            if k != k2 {
                return Err(err(
                    node,
                    format!("{name}: inner dimensions differ: {a:?} x {b:?}"),
                ));
            }
            let mut out = broadcast(&a[..a.len() - 2], &b[..b.len() - 2]).ok_or_else(|| {
                err(
                    node,
                    format!("{name}: batch dimensions of {a:?} and {b:?} do not broadcast"),
                )
            })?;
            out.extend([m, nn]);
            one(out)
        }
        Op::Binary { activation, .. } => {
            check_activation(node, activation)?;
            let b = &inputs[1].shape;
            let out = broadcast(&x.shape, b).ok_or_else(|| {
                err(
                    node,
                    format!("{name}: shapes {:?} and {b:?} do not broadcast", x.shape),
                )
            })?;
            one(out)
        }
        Op::Unary { activation } => {
            check_activation(node, activation)?;
            one(x.shape.clone())
        }
        Op::BatchNorm => {
            if rank < 2 {
                return Err(err(
                    node,
                    format!("{name}: input {:?} must have rank >= 2", x.shape),
                ));
            }
            let c = x.shape[1];
            want_shape(node, name, "scale", inputs[1], &[c])?;
            want_shape(node, name, "shift", inputs[2], &[c])?;
            one(x.shape.clone())
        }
        Op::LayerNorm { epsilon } => {
            if !(epsilon.is_finite() && *epsilon > 0.0) {
                return Err(err(
                    node,
                    format!("{name}: epsilon {epsilon} must be finite and positive"),
                ));
            }
            let Some(&d) = x.shape.last() else {
                return Err(err(node, format!("{name}: input must have rank >= 1")));
            };
            want_shape(node, name, "scale", inputs[1], &[d])?;
            want_shape(node, name, "shift", inputs[2], &[d])?;
            one(x.shape.clone())
        }
        Op::Pool2d { window, .. } => {
            check_window(node, name, window)?;
            want_rank(node, name, "input", x, 4)?;
            for a in 0..2 {
                let extent = window.dilations[a]
                    .saturating_mul(window.kernel[a] - 1)
                    .saturating_add(1);
                if window.pads[a] >= extent || window.pads[a + 2] >= extent {
                    return Err(err(
                        node,
                        format!(
                            "{name}: pads {:?} must be smaller than the window {:?}",
                            window.pads, window.kernel
                        ),
                    ));
                }
            }
            let [oh, ow] = window_out(node, name, window, x.shape[2], x.shape[3])?;
            one(vec![x.shape[0], x.shape[1], oh, ow])
        }
        Op::Reduce {
            axes, keep_dims, ..
        } => {
            if axes.is_empty() {
                return Err(err(node, format!("{name}: axes list is empty")));
            }
            let mut seen = [false; MAX_RANK];
            for &a in axes {
                want_axis(node, name, a, rank)?;
                if std::mem::replace(&mut seen[a], true) {
                    return Err(err(
                        node,
                        format!("{name}: axis {a} listed twice in {axes:?}"),
                    ));
                }
            }
            let out = x
                .shape
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (seen[i], keep_dims) {
                    (false, _) => Some(d),
                    (true, true) => Some(1),
                    (true, false) => None,
                })
                .collect();
            one(out)
        }
        Op::Concat { axis } => {
            want_axis(node, name, *axis, rank)?;
            let mut out = x.shape.clone();
            for (i, t) in inputs.iter().enumerate().skip(1) {
                let same_others = t.shape.len() == rank
                    && (0..rank).all(|d| d == *axis || t.shape[d] == x.shape[d]);
                if !same_others {
                    return Err(err(
                        node,
                        format!(
                            "{name}: input {i} shape {:?} differs from input 0 shape {:?} outside axis {axis}",
                            t.shape, x.shape
                        ),
                    ));
                }
                out[*axis] = out[*axis]
                    .checked_add(t.shape[*axis])
                    .ok_or_else(|| err(node, format!("{name}: concatenated size overflows")))?;
            }
            one(out)
        }
        Op::Split { axis, sizes } => {
            want_axis(node, name, *axis, rank)?;
            if sizes.is_empty() || sizes.contains(&0) {
                return Err(err(
                    node,
                    format!("{name}: sizes {sizes:?} must be non-empty and positive"),
                ));
            }
            let total = sizes.iter().try_fold(0usize, |acc, &s| acc.checked_add(s));
            if total != Some(x.shape[*axis]) {
                return Err(err(
                    node,
                    format!(
                        "{name}: sizes {sizes:?} do not sum to dimension {} of axis {axis}",
                        x.shape[*axis]
                    ),
                ));
            }
            Ok(sizes
                .iter()
                .map(|&s| {
                    let mut o = x.shape.clone();
                    o[*axis] = s;
                    o
                })
                .collect())
        }
        Op::Slice {
            axis,
            start,
            end,
            step,
        } => {
            want_axis(node, name, *axis, rank)?;
            let dim = x.shape[*axis];
            if *step == 0 || start > end || *end > dim {
                return Err(err(
                    node,
                    format!("{name}: range {start}..{end} step {step} invalid for dimension {dim} (need start <= end <= dim, step >= 1)"),
                ));
            }
            let mut out = x.shape.clone();
            out[*axis] = (end - start).div_ceil(*step);
            one(out)
        }
        Op::Reshape => {
            let decl = declared.ok_or_else(|| {
                err(node, "Reshape: output shape is the declared output tensor's shape; validate the whole graph")
            })?;
            let out = decl
                .first()
                .ok_or_else(|| err(node, "Reshape: expects one output"))?;
            if out.numel() != x.numel() {
                return Err(err(
                    node,
                    format!(
                        "{name}: output {:?} has a different element count than input {:?}",
                        out.shape, x.shape
                    ),
                ));
            }
            one(out.shape.clone())
        }
        Op::Transpose { perm } => {
            let mut seen = [false; MAX_RANK];
            let is_perm = perm.len() == rank
                && perm
                    .iter()
                    .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
            if !is_perm {
                return Err(err(
                    node,
                    format!("{name}: perm {perm:?} is not a permutation of rank {rank}"),
                ));
            }
            one(perm.iter().map(|&p| x.shape[p]).collect())
        }
        Op::Softmax { axis } => {
            want_axis(node, name, *axis, rank)?;
            one(x.shape.clone())
        }
        Op::Pad { pads, mode } => {
            if pads.len() != rank {
                return Err(err(
                    node,
                    format!("{name}: {} pad pairs for rank {rank}", pads.len()),
                ));
            }
            if let PadMode::Constant { value } = mode {
                if !value.is_finite() {
                    return Err(err(
                        node,
                        format!("{name}: constant value {value} is not finite"),
                    ));
                }
            }
            let mut out = Vec::with_capacity(rank);
            for (a, (&(b, e), &d)) in pads.iter().zip(&x.shape).enumerate() {
                if b > MAX_WINDOW || e > MAX_WINDOW {
                    return Err(err(
                        node,
                        format!("{name}: pads ({b}, {e}) on axis {a} exceed {MAX_WINDOW}"),
                    ));
                }
                if matches!(mode, PadMode::Reflect) && (b >= d || e >= d) {
                    return Err(err(
                        node,
                        format!("{name}: reflect pads ({b}, {e}) on axis {a} must be smaller than dimension {d}"),
                    ));
                }
                out.push(d + b + e);
            }
            one(out)
        }
        Op::ChannelShuffle { groups, splits } => {
            if rank < 2 {
                return Err(err(
                    node,
                    format!("{name}: input {:?} must have rank >= 2", x.shape),
                ));
            }
            let mut c = 0usize;
            for (i, t) in inputs.iter().enumerate() {
                let same_others =
                    t.shape.len() == rank && (0..rank).all(|d| d == 1 || t.shape[d] == x.shape[d]);
                if !same_others {
                    return Err(err(
                        node,
                        format!(
                            "{name}: input {i} shape {:?} differs from input 0 shape {:?} outside axis 1",
                            t.shape, x.shape
                        ),
                    ));
                }
                c = c
                    .checked_add(t.shape[1])
                    .ok_or_else(|| err(node, format!("{name}: channel count overflows")))?;
            }
            if *groups == 0 || !c.is_multiple_of(*groups) {
                return Err(err(
                    node,
                    format!("{name}: {c} channels not divisible by groups={groups}"),
                ));
            }
            if *splits == 0 || *splits > MAX_SPLITS || !c.is_multiple_of(*splits) {
                return Err(err(
                    node,
                    format!("{name}: {c} channels do not split into {splits} equal outputs"),
                ));
            }
            let mut out = x.shape.clone();
            out[1] = c / splits;
            Ok(vec![out; *splits])
        }
        Op::Quantize | Op::Dequantize => one(x.shape.clone()),
    }
}

fn is_q8(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8)
}

/// Element types: float compute ops run on f32 (constants may be stored as f16), or fully
/// quantized on i8/u8 tensors with quantization parameters (i8 weights, i32 bias); data
/// movement ops keep the dtype; Quantize / Dequantize convert between the two.
fn check_dtypes(op: &Op, ins: &[&Tensor], outs: &[&Tensor], node: &str) -> Result<()> {
    let name = op.name();
    let bad = |what: String, t: &Tensor| {
        err(
            node,
            format!(
                "{name}: {what} {:?} has unsupported dtype {:?}",
                t.name, t.dtype
            ),
        )
    };
    let x = ins[0];
    match op {
        Op::Quantize => {
            if x.dtype != DType::F32 {
                return Err(bad("input".into(), x));
            }
            if !is_q8(outs[0].dtype) || outs[0].quant.is_none() {
                return Err(err(
                    node,
                    "Quantize: output must be i8/u8 with quantization parameters",
                ));
            }
        }
        Op::Dequantize => {
            if !is_q8(x.dtype) || x.quant.is_none() {
                return Err(err(
                    node,
                    "Dequantize: input must be i8/u8 with quantization parameters",
                ));
            }
            if outs[0].dtype != DType::F32 {
                return Err(bad("output".into(), outs[0]));
            }
        }
        Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::Pad { .. }
        | Op::ChannelShuffle { .. } => {
            for (i, t) in ins.iter().chain(outs).enumerate() {
                if t.dtype != x.dtype {
                    return Err(err(
                        node,
                        format!(
                            "{name}: tensor {i} {:?} is {:?} but input 0 is {:?}",
                            t.name, t.dtype, x.dtype
                        ),
                    ));
                }
            }
        }
        _ => {
            let quantized =
                is_q8(x.dtype) && !matches!(op, Op::BatchNorm | Op::LayerNorm { .. } | Op::MatMul);
            let consts_from = match op {
                Op::Conv2d { .. }
                | Op::FullyConnected { .. }
                | Op::BatchNorm
                | Op::LayerNorm { .. } => 1,
                _ => usize::MAX,
            };
            let const_end = match op {
                Op::Conv2d { has_bias, .. } | Op::FullyConnected { has_bias, .. } => {
                    2 + *has_bias as usize
                }
                _ => ins.len(),
            };
            for (i, t) in ins.iter().enumerate() {
                let is_param = i >= consts_from && i < const_end;
                if is_param && !t.is_const() {
                    return Err(err(
                        node,
                        format!("{name}: input {i} {:?} must be a constant", t.name),
                    ));
                }
                let ok = match (quantized, is_param) {
                    (false, false) => t.dtype == DType::F32,
                    (false, true) => matches!(t.dtype, DType::F32 | DType::F16),
                    (true, false) => is_q8(t.dtype) && t.quant.is_some(),
                    (true, true) if i == 1 => t.dtype == DType::I8 && t.quant.is_some(),
                    (true, true) => t.dtype == DType::I32,
                };
                if !ok {
                    return Err(bad(format!("input {i}"), t));
                }
            }
            // A quantized convolution or FC may write f32 directly (a dequantizing last layer).
            let f32_out = matches!(op, Op::Conv2d { .. } | Op::FullyConnected { .. });
            for t in outs {
                let ok = if quantized {
                    (is_q8(t.dtype) && t.quant.is_some()) || (f32_out && t.dtype == DType::F32)
                } else {
                    t.dtype == DType::F32
                };
                if !ok {
                    return Err(bad("output".into(), t));
                }
            }
        }
    }
    Ok(())
}

/// Check a whole graph against a weights blob of `weights_len` bytes: tensor ids, producers,
/// topological order, inferred versus declared shapes, dtypes, quantization parameters,
/// constant ranges, attributes and the size caps.
pub fn validate_graph(graph: &Graph, weights_len: usize) -> Result<()> {
    let nt = graph.tensors.len();
    let mut activation_bytes: u64 = 0;
    for (id, t) in graph.tensors.iter().enumerate() {
        check_tensor(id, t, weights_len)?;
        if !t.is_const() {
            activation_bytes += (t.numel() * t.dtype.size()) as u64;
            if activation_bytes > MAX_ACTIVATION_BYTES {
                return Err(err(
                    GRAPH,
                    format!("non-constant tensors need more than {MAX_ACTIVATION_BYTES} bytes"),
                ));
            }
        }
    }
    let tensor = |id: usize, what: &str, node: &str| {
        graph.tensors.get(id).ok_or_else(|| {
            err(
                node,
                format!("{what} refers to tensor #{id}, but the graph has {nt} tensors"),
            )
        })
    };
    if graph.inputs.is_empty() {
        return Err(err(GRAPH, "graph has no inputs"));
    }
    if graph.outputs.is_empty() {
        return Err(err(GRAPH, "graph has no outputs"));
    }
    // available[id]: the tensor has a value at this point of the execution order.
    let mut available = vec![false; nt];
    for (id, t) in graph.tensors.iter().enumerate() {
        available[id] = t.is_const();
    }
    for &id in &graph.inputs {
        let t = tensor(id, "graph input", GRAPH)?;
        if t.is_const() {
            return Err(err(
                GRAPH,
                format!("graph input tensor #{id} {:?} is a constant", t.name),
            ));
        }
        if std::mem::replace(&mut available[id], true) {
            return Err(err(
                GRAPH,
                format!("graph input tensor #{id} {:?} is listed twice", t.name),
            ));
        }
    }
    for node in &graph.nodes {
        let nn = node.name.as_str();
        let mut ins = Vec::with_capacity(node.inputs.len());
        for &id in &node.inputs {
            let t = tensor(id, "input", nn)?;
            if !available[id] {
                return Err(err(
                    nn,
                    format!("input tensor #{id} {:?} is used before it is produced (nodes out of order or never produced)", t.name),
                ));
            }
            ins.push(t);
        }
        let mut outs = Vec::with_capacity(node.outputs.len());
        for &id in &node.outputs {
            let t = tensor(id, "output", nn)?;
            if t.is_const() {
                return Err(err(
                    nn,
                    format!("output tensor #{id} {:?} is a constant", t.name),
                ));
            }
            if std::mem::replace(&mut available[id], true) {
                return Err(err(
                    nn,
                    format!("output tensor #{id} {:?} is already a graph input or produced by another node", t.name),
                ));
            }
            outs.push(t);
        }
        let shapes = infer(&node.op, &ins, Some(&outs), nn)?;
        if shapes.len() != outs.len() {
            return Err(err(
                nn,
                format!(
                    "{}: produces {} outputs, node lists {}",
                    node.op.name(),
                    shapes.len(),
                    outs.len()
                ),
            ));
        }
        for (i, (s, t)) in shapes.iter().zip(&outs).enumerate() {
            if *s != t.shape {
                return Err(err(
                    nn,
                    format!(
                        "{}: output {i} {:?} is declared with shape {:?} but the op produces {s:?}",
                        node.op.name(),
                        t.name,
                        t.shape
                    ),
                ));
            }
        }
        check_dtypes(&node.op, &ins, &outs, nn)?;
    }
    for (id, t) in graph.tensors.iter().enumerate() {
        if !available[id] {
            return Err(err(
                GRAPH,
                format!(
                    "tensor #{id} {:?} is neither a constant, a graph input nor produced by a node",
                    t.name
                ),
            ));
        }
    }
    for &id in &graph.outputs {
        tensor(id, "graph output", GRAPH)?;
    }
    Ok(())
}

/// Check metadata against the graph: input / output counts and shapes, preprocessing values
/// and the label count.
pub(crate) fn validate_meta(meta: &Metadata, graph: &Graph) -> Result<()> {
    let m = "<metadata>";
    if meta.inputs.len() != graph.inputs.len() || meta.outputs.len() != graph.outputs.len() {
        return Err(err(
            m,
            format!(
                "metadata lists {} inputs / {} outputs, graph has {} / {}",
                meta.inputs.len(),
                meta.outputs.len(),
                graph.inputs.len(),
                graph.outputs.len()
            ),
        ));
    }
    for (spec, &id) in meta.inputs.iter().zip(&graph.inputs) {
        let t = &graph.tensors[id];
        if spec.shape != t.shape {
            return Err(err(
                m,
                format!(
                    "input {:?} has shape {:?}, graph tensor {:?} has {:?}",
                    spec.name, spec.shape, t.name, t.shape
                ),
            ));
        }
        if let Some(p) = &spec.preprocess {
            let who = format!("input {:?} preprocess", spec.name);
            if p.mean.iter().chain(&p.std).any(|v| !v.is_finite()) || p.std.contains(&0.0) {
                return Err(err(
                    m,
                    format!(
                        "{who}: mean {:?} / std {:?} must be finite with std != 0",
                        p.mean, p.std
                    ),
                ));
            }
            let c_axis = match p.layout {
                ImageLayout::Nchw => 1,
                ImageLayout::Nhwc => 3,
            };
            if t.shape.len() != 4 || t.shape[c_axis] != 3 {
                return Err(err(
                    m,
                    format!(
                        "{who}: image input must be 4-D with 3 channels, found {:?}",
                        t.shape
                    ),
                ));
            }
            let hw = match p.layout {
                ImageLayout::Nchw => [t.shape[2], t.shape[3]],
                ImageLayout::Nhwc => [t.shape[1], t.shape[2]],
            };
            if let Some(r) = p.resize_shorter {
                if r == 0 || r > MAX_IMAGE_SIDE {
                    return Err(err(
                        m,
                        format!("{who}: resize_shorter {r} must be in 1..={MAX_IMAGE_SIDE}"),
                    ));
                }
                if let Some(c) = p.crop {
                    if c[0] > r || c[1] > r {
                        return Err(err(
                            m,
                            format!("{who}: crop {c:?} is larger than resize_shorter {r}"),
                        ));
                    }
                }
            }
            if let Some(c) = p.crop {
                if [c[0] as usize, c[1] as usize] != hw {
                    return Err(err(
                        m,
                        format!("{who}: crop {c:?} differs from the input's spatial size {hw:?}"),
                    ));
                }
            }
        }
    }
    for (spec, &id) in meta.outputs.iter().zip(&graph.outputs) {
        let t = &graph.tensors[id];
        if spec.shape != t.shape {
            return Err(err(
                m,
                format!(
                    "output {:?} has shape {:?}, graph tensor {:?} has {:?}",
                    spec.name, spec.shape, t.name, t.shape
                ),
            ));
        }
    }
    if !meta.labels.is_empty() {
        let classes = graph.tensors[graph.outputs[0]]
            .shape
            .last()
            .copied()
            .unwrap_or(1);
        if meta.labels.len() != classes {
            return Err(err(
                m,
                format!(
                    "{} labels for an output with {classes} classes",
                    meta.labels.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Validate a complete model: its graph against its weights, then its metadata against the graph.
pub fn validate_model(model: &Model) -> Result<()> {
    validate_graph(&model.graph, model.weights.bytes().len())?;
    validate_meta(&model.meta, &model.graph)
}
