//! Graph fusions applied at conversion: activation patterns, BatchNorm and Pad folding,
//! bias and residual folding into convolutions, channel-shuffle detection, and layer
//! normalization rebuilt from the primitive ops tract expands it into.

use ferrolite_runtime::ir::{Activation, BinaryOp, Op, PadMode, ReduceOp, TensorId};

use crate::work::WorkGraph;

/// Apply every fusion until none applies.
pub fn fuse(g: &mut WorkGraph) {
    let passes: &[fn(&mut WorkGraph) -> bool] = &[
        remove_identity_reshapes,
        merge_reshapes,
        binary_bounds_to_clip,
        merge_clips,
        hard_sigmoid,
        self_gated_activation,
        reduce_mean,
        layer_norm,
        affine_into_layer_norm,
        fold_affine_into_linear,
        pad_into_conv,
        subsample_into_pointwise,
        channel_shuffle,
        concat_into_shuffle,
        split_into_shuffle,
        batch_norm,
        residual_into_conv,
        activation_into_producer,
    ];
    loop {
        let mut changed = false;
        for pass in passes {
            while pass(g) {
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    canonical_activations(g);
}

fn node_op(g: &WorkGraph, i: usize) -> Option<&Op> {
    g.nodes[i].as_ref().map(|n| &n.op)
}

/// The single-use producer of `t` with its index, if `t` is read only once.
fn sole_producer(g: &WorkGraph, t: TensorId) -> Option<usize> {
    if !g.single_use(t) {
        return None;
    }
    g.producer(t)
}

/// Remove node `i`, making its first output an alias of `to`.
fn bypass(g: &mut WorkGraph, i: usize, to: TensorId) {
    let out = g.nodes[i].as_ref().expect("live node").outputs[0];
    g.nodes[i] = None;
    g.replace_uses(out, to);
}

fn shape(g: &WorkGraph, t: TensorId) -> &[usize] {
    &g.tensors[t].shape
}

/// Find `(node index, non-const input, const input)` for a live binary node.
fn binary_with_const(
    g: &WorkGraph,
    i: usize,
) -> Option<(BinaryOp, Activation, TensorId, TensorId)> {
    let n = g.nodes[i].as_ref()?;
    let Op::Binary { op, activation } = n.op else {
        return None;
    };
    let (a, b) = (n.inputs[0], n.inputs[1]);
    let a_const = g.const_of(a).is_some();
    let b_const = g.const_of(b).is_some();
    match (a_const, b_const) {
        (false, true) => Some((op, activation, a, b)),
        (true, false)
            if matches!(
                op,
                BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min
            ) =>
        {
            Some((op, activation, b, a))
        }
        _ => None,
    }
}

fn remove_identity_reshapes(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        if matches!(n.op, Op::Reshape) && shape(g, n.inputs[0]) == shape(g, n.outputs[0]) {
            let (inp, out) = (n.inputs[0], n.outputs[0]);
            if g.outputs.contains(&out) && g.inputs.contains(&inp) {
                continue;
            }
            bypass(g, i, inp);
            return true;
        }
    }
    false
}

fn merge_reshapes(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        if !matches!(n.op, Op::Reshape) {
            continue;
        }
        let x = n.inputs[0];
        if let Some(p) = sole_producer(g, x) {
            if matches!(node_op(g, p), Some(Op::Reshape)) {
                let src = g.nodes[p].as_ref().unwrap().inputs[0];
                g.nodes[i].as_mut().unwrap().inputs[0] = src;
                g.nodes[p] = None;
                return true;
            }
        }
    }
    false
}

/// `max(x, a)` / `min(x, b)` with scalar constants become clips.
fn binary_bounds_to_clip(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some((op, act, x, c)) = binary_with_const(g, i) else {
            continue;
        };
        if !act.is_none() {
            continue;
        }
        let out = g.nodes[i].as_ref().unwrap().outputs[0];
        if shape(g, x) != shape(g, out) {
            continue;
        }
        let Some(v) = g.scalar_const(c) else { continue };
        let clip = match op {
            BinaryOp::Max => Activation::Clip {
                min: v,
                max: f32::MAX,
            },
            BinaryOp::Min => Activation::Clip {
                min: f32::MIN,
                max: v,
            },
            _ => continue,
        };
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::Unary { activation: clip };
        n.inputs = vec![x];
        return true;
    }
    false
}

fn merge_clips(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Unary {
            activation: Activation::Clip { min, max },
        } = n.op
        else {
            continue;
        };
        let x = n.inputs[0];
        let Some(p) = sole_producer(g, x) else {
            continue;
        };
        if let Some(Op::Unary {
            activation:
                Activation::Clip {
                    min: pmin,
                    max: pmax,
                },
        }) = node_op(g, p)
        {
            let (pmin, pmax) = (*pmin, *pmax);
            let src = g.nodes[p].as_ref().unwrap().inputs[0];
            let n = g.nodes[i].as_mut().unwrap();
            n.op = Op::Unary {
                activation: Activation::Clip {
                    min: min.max(pmin),
                    max: max.min(pmax),
                },
            };
            n.inputs[0] = src;
            g.nodes[p] = None;
            return true;
        }
    }
    false
}

/// `clip(x * a + b, 0, 1)` becomes HardSigmoid.
fn hard_sigmoid(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Unary {
            activation: Activation::Clip { min, max },
        } = n.op
        else {
            continue;
        };
        if min != 0.0 || max != 1.0 {
            continue;
        }
        let Some(add) = sole_producer(g, n.inputs[0]) else {
            continue;
        };
        let Some((BinaryOp::Add, Activation::None, y, cb)) = binary_with_const(g, add) else {
            continue;
        };
        let Some(beta) = g.scalar_const(cb) else {
            continue;
        };
        let Some(mul) = sole_producer(g, y) else {
            continue;
        };
        let Some((BinaryOp::Mul, Activation::None, x, ca)) = binary_with_const(g, mul) else {
            continue;
        };
        let Some(alpha) = g.scalar_const(ca) else {
            continue;
        };
        if shape(g, x) != shape(g, g.nodes[i].as_ref().unwrap().outputs[0]) {
            continue;
        }
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::Unary {
            activation: Activation::HardSigmoid { alpha, beta },
        };
        n.inputs = vec![x];
        g.nodes[add] = None;
        g.nodes[mul] = None;
        return true;
    }
    false
}

/// `x * hardsigmoid(x)` becomes HardSwish, `x * sigmoid(x)` becomes SiLU.
fn self_gated_activation(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Binary {
            op: BinaryOp::Mul,
            activation: Activation::None,
        } = n.op
        else {
            continue;
        };
        for (gate, other) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
            let Some(p) = sole_producer(g, gate) else {
                continue;
            };
            let Some(pn) = &g.nodes[p] else { continue };
            if pn.inputs[0] != other {
                continue;
            }
            let fused = match pn.op {
                Op::Unary {
                    activation: Activation::Sigmoid,
                } => Activation::Silu,
                Op::Unary {
                    activation: Activation::HardSigmoid { alpha, beta },
                } if (alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6 => {
                    Activation::HardSwish
                }
                _ => continue,
            };
            let n = g.nodes[i].as_mut().unwrap();
            n.op = Op::Unary { activation: fused };
            n.inputs = vec![other];
            g.nodes[p] = None;
            return true;
        }
    }
    false
}

/// `sum(x, axes) * (1 / count)` becomes a mean.
fn reduce_mean(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some((BinaryOp::Mul, Activation::None, r, c)) = binary_with_const(g, i) else {
            continue;
        };
        let Some(v) = g.scalar_const(c) else { continue };
        let Some(p) = sole_producer(g, r) else {
            continue;
        };
        let Some(Op::Reduce {
            op: ReduceOp::Sum,
            axes,
            keep_dims,
        }) = node_op(g, p).cloned()
        else {
            continue;
        };
        let src = g.nodes[p].as_ref().unwrap().inputs[0];
        let count: usize = axes.iter().map(|&a| shape(g, src)[a]).product();
        if count == 0 || ((v * count as f32) - 1.0).abs() > 1e-5 {
            continue;
        }
        if shape(g, r) != shape(g, g.nodes[i].as_ref().unwrap().outputs[0]) {
            continue;
        }
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            keep_dims,
        };
        n.inputs = vec![src];
        g.nodes[p] = None;
        return true;
    }
    false
}

/// `mean(t, axes)` node of `t` over the last axis with kept dims: the index of the node
/// producing `m` (read once), and `t`.
fn mean_over_last_axis(g: &WorkGraph, m: TensorId) -> Option<(usize, TensorId)> {
    let p = sole_producer(g, m)?;
    let n = g.nodes[p].as_ref()?;
    let Op::Reduce {
        op: ReduceOp::Mean,
        axes,
        keep_dims: true,
    } = &n.op
    else {
        return None;
    };
    let t = n.inputs[0];
    let last = shape(g, t).len().checked_sub(1)?;
    (axes.as_slice() == [last]).then_some((p, t))
}

/// `1 / sqrt(v + eps)` of a positive scalar `eps`, as one `Add` with a fused reciprocal
/// square root or as an `Add` then a `Rsqrt`: the nodes (read once) and `(v, eps)`.
fn inverse_std(g: &WorkGraph, r: TensorId) -> Option<(Vec<usize>, TensorId, f32)> {
    let p = sole_producer(g, r)?;
    let (nodes, add) = match node_op(g, p)? {
        Op::Binary {
            op: BinaryOp::Add,
            activation: Activation::Rsqrt,
        } => (vec![p], p),
        Op::Unary {
            activation: Activation::Rsqrt,
        } => {
            let a = sole_producer(g, g.nodes[p].as_ref()?.inputs[0])?;
            let plain_add = Op::Binary {
                op: BinaryOp::Add,
                activation: Activation::None,
            };
            if node_op(g, a)? != &plain_add {
                return None;
            }
            (vec![p, a], a)
        }
        _ => return None,
    };
    let n = g.nodes[add].as_ref()?;
    let (v, c) = if g.const_of(n.inputs[1]).is_some() {
        (n.inputs[0], n.inputs[1])
    } else {
        (n.inputs[1], n.inputs[0])
    };
    let eps = g.scalar_const(c)?;
    (eps > 0.0 && eps.is_finite() && g.const_of(v).is_none()).then_some((nodes, v, eps))
}

/// The longest common prefix of two node names without its trailing separators, e.g.
/// `block.norm1` from `block.norm1.mean` and `block.norm1.sub`.
fn common_name(a: &str, b: &str) -> String {
    let len: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    a[..len]
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

/// `(x - mean(x)) * rsqrt(mean((x - mean(x))²) + eps)` over the last axis (the expansion of
/// ONNX LayerNormalization) becomes one LayerNorm with unit scale and zero shift; the
/// affine that usually follows is folded in by [`affine_into_layer_norm`].
fn layer_norm(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Binary {
            op: BinaryOp::Mul,
            activation: Activation::None,
        } = n.op
        else {
            continue;
        };
        let out = n.outputs[0];
        for (d, r) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
            let Some((std_nodes, ms, epsilon)) = inverse_std(g, r) else {
                continue;
            };
            let Some((var_mean, sq)) = mean_over_last_axis(g, ms) else {
                continue;
            };
            let Some(square) = sole_producer(g, sq) else {
                continue;
            };
            let sq_node = g.nodes[square].as_ref().unwrap();
            let squares_d = match sq_node.op {
                Op::Binary {
                    op: BinaryOp::Mul,
                    activation: Activation::None,
                } => sq_node.inputs == [d, d],
                Op::Binary {
                    op: BinaryOp::Pow,
                    activation: Activation::None,
                } => sq_node.inputs[0] == d && g.scalar_const(sq_node.inputs[1]) == Some(2.0),
                _ => false,
            };
            let mut users = g.consumers(d);
            users.sort_unstable();
            let mut expected = vec![square, i];
            expected.sort_unstable();
            if !squares_d || g.outputs.contains(&d) || users != expected {
                continue;
            }
            let Some(sub) = g.producer(d) else { continue };
            let sub_node = g.nodes[sub].as_ref().unwrap();
            let Op::Binary {
                op: BinaryOp::Sub,
                activation: Activation::None,
            } = sub_node.op
            else {
                continue;
            };
            let (x, mu) = (sub_node.inputs[0], sub_node.inputs[1]);
            let Some((mean, mean_of)) = mean_over_last_axis(g, mu) else {
                continue;
            };
            if mean_of != x || shape(g, x) != shape(g, out) || shape(g, x) != shape(g, d) {
                continue;
            }
            let dim = *shape(g, x).last().unwrap();
            let name = common_name(
                &g.nodes[mean].as_ref().unwrap().name,
                &g.nodes[sub].as_ref().unwrap().name,
            );
            let name = if name.is_empty() {
                g.nodes[sub].as_ref().unwrap().name.clone()
            } else {
                name
            };
            let scale = g.add_const(format!("{name}.scale"), vec![dim], vec![1.0; dim]);
            let shift = g.add_const(format!("{name}.shift"), vec![dim], vec![0.0; dim]);
            for k in std_nodes.into_iter().chain([var_mean, square, sub, mean]) {
                g.nodes[k] = None;
            }
            let n = g.nodes[i].as_mut().unwrap();
            n.name = name;
            n.op = Op::LayerNorm { epsilon };
            n.inputs = vec![x, scale, shift];
            return true;
        }
    }
    false
}

/// Node `i` as `y op c`: an add, subtract, multiply or divide of the sole output of node `p`
/// by a constant `c` (the constant second for subtract and divide), without activation and
/// without broadcasting `y` to a larger shape. Returns `(op, y, c, p)`: the shape of the
/// affine steps that fold into their producer.
fn affine_after_producer(g: &WorkGraph, i: usize) -> Option<(BinaryOp, TensorId, TensorId, usize)> {
    let (op, Activation::None, y, c) = binary_with_const(g, i)? else {
        return None;
    };
    if !matches!(
        op,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
    ) {
        return None;
    }
    let n = g.nodes[i].as_ref()?;
    if matches!(op, BinaryOp::Sub | BinaryOp::Div) && n.inputs[0] != y {
        return None;
    }
    if shape(g, n.outputs[0]) != shape(g, y) {
        return None;
    }
    Some((op, y, c, sole_producer(g, y)?))
}

/// Multiplications and additions by constants varying only along the last axis after a
/// LayerNorm fold into its scale and shift.
fn affine_into_layer_norm(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some((op, y, c, p)) = affine_after_producer(g, i) else {
            continue;
        };
        let pn = g.nodes[p].as_ref().unwrap();
        if !matches!(pn.op, Op::LayerNorm { .. }) {
            continue;
        }
        let last = shape(g, y).len() - 1;
        let Some(vals) = per_channel(g, c, shape(g, y), last) else {
            continue;
        };
        let (st, sh) = (pn.inputs[1], pn.inputs[2]);
        let (Some(mut scale), Some(mut shift)) = (g.const_of(st).cloned(), g.const_of(sh).cloned())
        else {
            continue;
        };
        for ((s, h), v) in scale.iter_mut().zip(shift.iter_mut()).zip(&vals) {
            match op {
                BinaryOp::Mul => {
                    *s *= v;
                    *h *= v;
                }
                BinaryOp::Div => {
                    *s /= v;
                    *h /= v;
                }
                BinaryOp::Add => *h += v,
                _ => *h -= v,
            }
        }
        let name = g.nodes[p].as_ref().unwrap().name.clone();
        let dim = scale.len();
        let st = g.add_const(format!("{name}.scale"), vec![dim], scale);
        let sh = g.add_const(format!("{name}.shift"), vec![dim], shift);
        let pn = g.nodes[p].as_mut().unwrap();
        pn.inputs[1] = st;
        pn.inputs[2] = sh;
        bypass(g, i, y);
        return true;
    }
    false
}

/// Per-output-channel values of a constant broadcast against a linear layer output, if it
/// only varies along the channel axis (`axis`) of an output of `shape`.
fn per_channel(g: &WorkGraph, c: TensorId, out_shape: &[usize], axis: usize) -> Option<Vec<f32>> {
    let data = g.const_of(c)?;
    let cshape = shape(g, c);
    let channels = out_shape[axis];
    if data.len() == 1 {
        return Some(vec![data[0]; channels]);
    }
    if data.len() != channels || cshape.len() > out_shape.len() {
        return None;
    }
    // The single non-unit constant axis must align with `axis` under right-aligned broadcast.
    let offset = out_shape.len() - cshape.len();
    let ok = cshape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || i + offset == axis);
    ok.then(|| data.clone())
}

/// Multiplications and additions by per-channel constants after a convolution or dense
/// layer fold into its weights and bias (this is how BatchNorm disappears).
fn fold_affine_into_linear(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some((op, y, c, p)) = affine_after_producer(g, i) else {
            continue;
        };
        let pn = g.nodes[p].as_ref().unwrap();
        let axis = match pn.op {
            Op::Conv2d {
                activation: Activation::None,
                has_residual: false,
                ..
            } => 1,
            Op::FullyConnected {
                activation: Activation::None,
                ..
            } => shape(g, y).len() - 1,
            _ => continue,
        };
        let Some(vals) = per_channel(g, c, shape(g, y), axis) else {
            continue;
        };
        let (wt, bias) = (pn.inputs[1], pn.inputs.get(2).copied());
        let oc = shape(g, y)[axis];
        let mut bias_vals = match bias {
            Some(b) => g.const_of(b).cloned().unwrap_or_else(|| vec![0.0; oc]),
            None => vec![0.0; oc],
        };
        match op {
            BinaryOp::Mul | BinaryOp::Div => {
                let scale: Vec<f32> = if op == BinaryOp::Mul {
                    vals
                } else {
                    vals.iter().map(|v| 1.0 / v).collect()
                };
                let mut w = g.const_of(wt).cloned().unwrap_or_default();
                let per_o = w.len() / oc.max(1);
                for (o, s) in scale.iter().enumerate() {
                    for v in &mut w[o * per_o..(o + 1) * per_o] {
                        *v *= s;
                    }
                    bias_vals[o] *= s;
                }
                let name = g.tensors[wt].name.clone();
                let wshape = shape(g, wt).to_vec();
                let new_w = g.add_const(name, wshape, w);
                g.nodes[p].as_mut().unwrap().inputs[1] = new_w;
            }
            _ => {
                for (o, v) in vals.iter().enumerate() {
                    bias_vals[o] += if op == BinaryOp::Add { *v } else { -*v };
                }
            }
        }
        let bname = format!("{}.bias", g.nodes[p].as_ref().unwrap().name);
        let new_b = g.add_const(bname, vec![oc], bias_vals);
        let pn = g.nodes[p].as_mut().unwrap();
        if pn.inputs.len() > 2 {
            pn.inputs[2] = new_b;
        } else {
            pn.inputs.push(new_b);
        }
        match &mut pn.op {
            Op::Conv2d { has_bias, .. } | Op::FullyConnected { has_bias, .. } => *has_bias = true,
            _ => unreachable!("checked above"),
        }
        bypass(g, i, y);
        return true;
    }
    false
}

/// A zero Pad on the spatial axes feeding a convolution becomes the convolution's padding.
fn pad_into_conv(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Pad {
            pads,
            mode: PadMode::Constant { value },
        } = &n.op
        else {
            continue;
        };
        if *value != 0.0 || pads.len() != 4 || pads[0] != (0, 0) || pads[1] != (0, 0) {
            continue;
        }
        let out = n.outputs[0];
        let consumers = g.consumers(out);
        if g.outputs.contains(&out) || consumers.len() != 1 {
            continue;
        }
        let ci = consumers[0];
        let c = g.nodes[ci].as_ref().unwrap();
        if c.inputs[0] != out || !matches!(c.op, Op::Conv2d { .. }) {
            continue;
        }
        let (ph, pw) = (pads[2], pads[3]);
        let src = n.inputs[0];
        if let Some(Op::Conv2d { window, .. }) = g.nodes[ci].as_mut().map(|n| &mut n.op) {
            window.pads[0] += ph.0;
            window.pads[2] += ph.1;
            window.pads[1] += pw.0;
            window.pads[3] += pw.1;
        }
        g.nodes[ci].as_mut().unwrap().inputs[0] = src;
        g.nodes[i] = None;
        return true;
    }
    false
}

/// Spatial subsampling (`x[:, :, ::s]`) feeding a 1x1 convolution becomes its stride.
fn subsample_into_pointwise(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Conv2d { window, .. } = &n.op else {
            continue;
        };
        if window.kernel != [1, 1] || window.pads != [0; 4] {
            continue;
        }
        let x = n.inputs[0];
        let Some(p) = sole_producer(g, x) else {
            continue;
        };
        let Some(Op::Slice {
            axis,
            start: 0,
            end,
            step,
        }) = node_op(g, p).cloned()
        else {
            continue;
        };
        let src = g.nodes[p].as_ref().unwrap().inputs[0];
        if !(axis == 2 || axis == 3) || end != shape(g, src)[axis] {
            continue;
        }
        let a = axis - 2;
        if window.strides[a] != 1 || window.dilations[a] != 1 {
            continue;
        }
        let n = g.nodes[i].as_mut().unwrap();
        if let Op::Conv2d { window, .. } = &mut n.op {
            window.strides[a] = step;
        }
        n.inputs[0] = src;
        g.nodes[p] = None;
        return true;
    }
    false
}

/// Reshape `[N,C,H,W] -> [N,g,C/g,H,W]`, swap axes 1 and 2, reshape back: a channel shuffle.
fn channel_shuffle(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        if !matches!(n.op, Op::Reshape) {
            continue;
        }
        let out_shape = shape(g, n.outputs[0]).to_vec();
        let Some(t) = sole_producer(g, n.inputs[0]) else {
            continue;
        };
        let Some(Op::Transpose { perm }) = node_op(g, t) else {
            continue;
        };
        if perm != &[0, 2, 1, 3, 4] {
            continue;
        }
        let tin = g.nodes[t].as_ref().unwrap().inputs[0];
        let Some(r) = sole_producer(g, tin) else {
            continue;
        };
        if !matches!(node_op(g, r), Some(Op::Reshape)) {
            continue;
        }
        let src = g.nodes[r].as_ref().unwrap().inputs[0];
        let s5 = shape(g, tin).to_vec();
        let s4 = shape(g, src).to_vec();
        if s4.len() != 4
            || s4 != out_shape
            || s5 != [s4[0], s5[1], s4[1] / s5[1].max(1), s4[2], s4[3]]
        {
            continue;
        }
        let groups = s5[1];
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::ChannelShuffle { groups, splits: 1 };
        n.inputs = vec![src];
        g.nodes[t] = None;
        g.nodes[r] = None;
        return true;
    }
    false
}

/// A channel Concat read only by a channel shuffle becomes the shuffle's inputs (the
/// shuffle then reads the pieces in place instead of a concatenated copy).
fn concat_into_shuffle(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        if !matches!(n.op, Op::ChannelShuffle { .. }) || n.inputs.len() != 1 {
            continue;
        }
        let Some(c) = sole_producer(g, n.inputs[0]) else {
            continue;
        };
        let Some(Op::Concat { axis: 1 }) = node_op(g, c) else {
            continue;
        };
        let pieces = g.nodes[c].as_ref().unwrap().inputs.clone();
        g.nodes[i].as_mut().unwrap().inputs = pieces;
        g.nodes[c] = None;
        return true;
    }
    false
}

/// Channel slices that cut a shuffle's output into equal consecutive parts (ShuffleNet's
/// channel split) become the shuffle's outputs, so no slice copies remain.
fn split_into_shuffle(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::ChannelShuffle { groups, splits: 1 } = n.op else {
            continue;
        };
        let t = n.outputs[0];
        let c = shape(g, t).get(1).copied().unwrap_or(0);
        let users = g.consumers(t);
        if g.outputs.contains(&t) || users.len() < 2 || c % users.len() != 0 {
            continue;
        }
        let part = c / users.len();
        let mut pieces: Vec<(usize, TensorId, usize)> = Vec::new();
        for &u in &users {
            let node = g.nodes[u].as_ref().unwrap();
            match node.op {
                Op::Slice {
                    axis: 1,
                    start,
                    end,
                    step: 1,
                } if end == start + part && start % part == 0 && node.inputs == [t] => {
                    pieces.push((start, node.outputs[0], u));
                }
                _ => break,
            }
        }
        pieces.sort_unstable();
        let covers =
            pieces.len() == users.len() && pieces.iter().enumerate().all(|(k, p)| p.0 == k * part);
        if !covers {
            continue;
        }
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::ChannelShuffle {
            groups,
            splits: pieces.len(),
        };
        n.outputs = pieces.iter().map(|p| p.1).collect();
        for p in &pieces {
            g.nodes[p.2] = None;
        }
        return true;
    }
    false
}

/// A per-channel multiply followed by a per-channel add on a 4-D tensor (an unfolded
/// BatchNorm) becomes one BatchNorm op.
fn batch_norm(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some((BinaryOp::Add, Activation::None, y, cb)) = binary_with_const(g, i) else {
            continue;
        };
        let ys = shape(g, y).to_vec();
        if ys.len() != 4 || shape(g, g.nodes[i].as_ref().unwrap().outputs[0]) != ys {
            continue;
        }
        let Some(m) = sole_producer(g, y) else {
            continue;
        };
        let Some((BinaryOp::Mul, Activation::None, x, cs)) = binary_with_const(g, m) else {
            continue;
        };
        if shape(g, x) != ys {
            continue;
        }
        let (Some(scale), Some(shift)) = (per_channel(g, cs, &ys, 1), per_channel(g, cb, &ys, 1))
        else {
            continue;
        };
        let c = ys[1];
        let name = g.nodes[i].as_ref().unwrap().name.clone();
        let st = g.add_const(format!("{name}.scale"), vec![c], scale);
        let sh = g.add_const(format!("{name}.shift"), vec![c], shift);
        let n = g.nodes[i].as_mut().unwrap();
        n.op = Op::BatchNorm;
        n.inputs = vec![x, st, sh];
        g.nodes[m] = None;
        return true;
    }
    false
}

/// `conv(x) + skip` becomes a convolution with a fused residual input.
fn residual_into_conv(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Binary {
            op: BinaryOp::Add,
            activation,
        } = n.op
        else {
            continue;
        };
        let out = n.outputs[0];
        for (y, skip) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
            if y == skip || g.const_of(skip).is_some() {
                continue;
            }
            if shape(g, y) != shape(g, out) || shape(g, skip) != shape(g, out) {
                continue;
            }
            let Some(p) = sole_producer(g, y) else {
                continue;
            };
            let Some(Op::Conv2d {
                activation: Activation::None,
                has_residual: false,
                ..
            }) = node_op(g, p)
            else {
                continue;
            };
            // The skip value must exist before the convolution runs.
            let skip_ready = g.inputs.contains(&skip) || g.producer(skip).is_some_and(|q| q < p);
            if !skip_ready {
                continue;
            }
            let pn = g.nodes[p].as_mut().unwrap();
            pn.inputs.push(skip);
            if let Op::Conv2d {
                activation: a,
                has_residual,
                ..
            } = &mut pn.op
            {
                *a = activation;
                *has_residual = true;
            }
            let has_bias = matches!(
                g.nodes[p].as_ref().unwrap().op,
                Op::Conv2d { has_bias: true, .. }
            );
            if !has_bias {
                let oc = shape(g, y)[1];
                let name = format!("{}.bias", g.nodes[p].as_ref().unwrap().name);
                let b = g.add_const(name, vec![oc], vec![0.0; oc]);
                let pn = g.nodes[p].as_mut().unwrap();
                let skip = pn.inputs.pop().unwrap();
                pn.inputs.push(b);
                pn.inputs.push(skip);
                if let Op::Conv2d { has_bias, .. } = &mut pn.op {
                    *has_bias = true;
                }
            }
            bypass(g, i, y);
            return true;
        }
    }
    false
}

/// A standalone activation after a convolution, dense layer or binary op fuses into it.
fn activation_into_producer(g: &mut WorkGraph) -> bool {
    for i in 0..g.nodes.len() {
        let Some(n) = &g.nodes[i] else { continue };
        let Op::Unary { activation } = n.op else {
            continue;
        };
        if !fusable(activation) {
            continue;
        }
        let x = n.inputs[0];
        let Some(p) = sole_producer(g, x) else {
            continue;
        };
        let pn = g.nodes[p].as_mut().unwrap();
        let slot = match &mut pn.op {
            Op::Conv2d { activation: a, .. }
            | Op::FullyConnected { activation: a, .. }
            | Op::Binary { activation: a, .. } => a,
            _ => continue,
        };
        if !slot.is_none() {
            continue;
        }
        *slot = activation;
        bypass(g, i, x);
        return true;
    }
    false
}

fn fusable(a: Activation) -> bool {
    matches!(
        a,
        Activation::Relu
            | Activation::Clip { .. }
            | Activation::LeakyRelu { .. }
            | Activation::HardSwish
            | Activation::HardSigmoid { .. }
            | Activation::Sigmoid
            | Activation::Silu
            | Activation::Tanh
            | Activation::Gelu
    )
}

/// `Clip { 0, f32::MAX }` is spelled `Relu` everywhere.
fn canonical_activations(g: &mut WorkGraph) {
    for n in g.nodes.iter_mut().flatten() {
        let slot = match &mut n.op {
            Op::Conv2d { activation, .. }
            | Op::FullyConnected { activation, .. }
            | Op::Binary { activation, .. }
            | Op::Unary { activation } => activation,
            _ => continue,
        };
        if let Activation::Clip { min, max } = *slot {
            if min == 0.0 && max == f32::MAX {
                *slot = Activation::Relu;
            }
        }
    }
}
