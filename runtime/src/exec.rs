//! The executor: a [`Session`] owns a model, its [`Plan`], the activation arena, scratch
//! and output buffers (all allocated once in `new`), and runs the plan's steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ir::ReduceOp;
use crate::kernels::f16_dwconv::F16DwArgs;
use crate::kernels::f16_gemm::F16GemmParams;
use crate::kernels::f32_conv::ConvArgs;
use crate::kernels::f32_copy::copy_view;
use crate::kernels::f32_gemm::{pack_b_into, packed_len, GemmParams};
use crate::kernels::walk::{row_major_strides, Walk, MAX_WALK_RANK};
use crate::kernels::{self, Act, Kernels};
use crate::plan::{Buf, Loc, Mat, Plan, Step};
use crate::weights::Model;

/// A loaded model ready to run repeatedly without allocating.
pub struct Session {
    model: Arc<Model>,
    plan: Plan,
    arena: Vec<f32>,
    /// Index of the first 64-byte-aligned element of `arena`.
    base: usize,
    scratch: Vec<f32>,
    outputs: Vec<Vec<f32>>,
    /// Walks `[tensor strides, logical strides]` per input and `[logical, tensor]` per output.
    in_walks: Vec<Walk<2>>,
    out_walks: Vec<Walk<2>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("arena_bytes", &self.plan.arena_bytes())
            .field("steps", &self.plan.steps().len())
            .field("isa", &self.isa())
            .finish()
    }
}

/// Read access to every tensor except the one being written.
pub(crate) struct Reader<'a> {
    lo: &'a [f32],
    hi: &'a [f32],
    hi_start: usize,
    consts: &'a [f32],
}

impl<'a> Reader<'a> {
    pub(crate) fn get(&self, l: Loc) -> Result<&'a [f32]> {
        let bad = || {
            Error::Unsupported(format!(
                "internal: tensor region {l:?} overlaps the output being written"
            ))
        };
        match l.buf {
            Buf::Const => self.consts.get(l.off..l.off + l.len).ok_or_else(bad),
            Buf::Arena if l.len == 0 => Ok(&[]),
            Buf::Arena if l.off + l.len <= self.lo.len() => Ok(&self.lo[l.off..l.off + l.len]),
            Buf::Arena if l.off >= self.hi_start => self
                .hi
                .get(l.off - self.hi_start..l.off - self.hi_start + l.len)
                .ok_or_else(bad),
            Buf::Arena => Err(bad()),
        }
    }
}

/// Split the arena into the output region (mutable) and everything else (readable).
pub(crate) fn split<'a>(
    arena: &'a mut [f32],
    consts: &'a [f32],
    out: Loc,
) -> Result<(Reader<'a>, &'a mut [f32])> {
    if out.buf != Buf::Arena || out.off + out.len > arena.len() {
        return Err(Error::Unsupported(format!(
            "internal: bad output region {out:?}"
        )));
    }
    let (lo, rest) = arena.split_at_mut(out.off);
    let (o, hi) = rest.split_at_mut(out.len);
    Ok((
        Reader {
            lo,
            hi,
            hi_start: out.off + out.len,
            consts,
        },
        o,
    ))
}

impl Session {
    /// Plan `model` with the best kernels for this CPU (honouring `FERROLITE_ISA`).
    pub fn new(model: Arc<Model>) -> Result<Session> {
        let k = kernels::from_env()?;
        Session::with_kernels(model, k)
    }

    /// Plan `model` with an explicit kernel set (tests, benchmarks, forced tiers).
    pub fn with_kernels(model: Arc<Model>, kernels: Kernels) -> Result<Session> {
        let plan = Plan::new(&model, &kernels)?;
        let arena = vec![0.0f32; plan.arena_len + 16];
        let base = match arena.as_ptr().align_offset(64) {
            b if b < 16 => b,
            _ => 0,
        };
        let scratch = vec![0.0f32; plan.scratch_len];
        let mut in_walks = Vec::new();
        let mut out_walks = Vec::new();
        let mut outputs = Vec::new();
        for (list, walks, is_in) in [
            (&plan.inputs, &mut in_walks, true),
            (&plan.outputs, &mut out_walks, false),
        ] {
            for &t in list.iter() {
                let p = plan.places[t].as_ref().ok_or_else(|| {
                    Error::graph("", format!("model input/output tensor {t} has no storage"))
                })?;
                let byte = model.graph.tensors.get(t).is_some_and(crate::plan::is_byte);
                if is_in && byte {
                    return Err(Error::Unsupported(
                        "8-bit model inputs (feed f32 and quantize inside the model)".into(),
                    ));
                }
                let rm = row_major_strides(&p.shape);
                let w = if is_in {
                    Walk::new(&p.shape, [&p.strides, &rm])
                } else {
                    Walk::new(&p.shape, [&rm, &p.strides])
                };
                walks.push(w.ok_or_else(|| Error::Unsupported("tensor rank too large".into()))?);
                if !is_in {
                    outputs.push(vec![0.0; p.loc.len]);
                }
            }
        }
        Ok(Session {
            model,
            plan,
            arena,
            base,
            scratch,
            outputs,
            in_walks,
            out_walks,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Logical (NCHW) shapes of the model inputs.
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.plan
            .inputs
            .iter()
            .map(|&t| self.plan.shape(t).to_vec())
            .collect()
    }

    /// Logical shapes of the model outputs.
    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.plan
            .outputs
            .iter()
            .map(|&t| self.plan.shape(t).to_vec())
            .collect()
    }

    /// The execution plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Name of the kernel tier in use.
    pub fn isa(&self) -> &'static str {
        self.plan.kernels().isa.name()
    }

    /// Output `i` of the last run, logical row-major; empty if `i` is out of range.
    /// 8-bit outputs hold their integer values as f32.
    pub fn output(&self, i: usize) -> &[f32] {
        self.outputs.get(i).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Run the model on logical row-major inputs (one slice per model input).
    pub fn run(&mut self, inputs: &[&[f32]]) -> Result<()> {
        self.run_inner(inputs, None)
    }

    /// Run and time every step (one duration per [`Plan::steps`] entry).
    pub fn run_profiled(&mut self, inputs: &[&[f32]]) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(self.plan.steps.len());
        self.run_inner(inputs, Some(&mut times))?;
        Ok(times)
    }

    fn run_inner(
        &mut self,
        inputs: &[&[f32]],
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<()> {
        let plan = &self.plan;
        if inputs.len() != plan.inputs.len() {
            return Err(Error::Input(format!(
                "expected {} inputs, got {}",
                plan.inputs.len(),
                inputs.len()
            )));
        }
        let arena_len = plan.arena_len;
        let arena = &mut self.arena[self.base..self.base + arena_len];
        let copy = plan.kernels.f32_copy.f;
        for (i, (&t, data)) in plan.inputs.iter().zip(inputs).enumerate() {
            let Some(p) = plan.places[t].as_ref() else {
                continue;
            };
            if data.len() != p.loc.len {
                let name = self
                    .model
                    .graph
                    .tensors
                    .get(t)
                    .map(|t| t.name.as_str())
                    .unwrap_or("?");
                return Err(Error::Input(format!(
                    "input {i} {name:?} (shape {:?}): expected {} values, got {}",
                    p.shape,
                    p.loc.len,
                    data.len()
                )));
            }
            let dst = &mut arena[p.loc.off..p.loc.off + p.loc.len];
            copy_view(copy, &self.in_walks[i], data, 0, dst, 0);
        }
        for step in &plan.steps {
            let start = times.as_ref().map(|_| Instant::now());
            exec_step(&plan.kernels, step, arena, &plan.consts, &mut self.scratch)?;
            if let (Some(t), Some(s)) = (times.as_deref_mut(), start) {
                t.push(s.elapsed());
            }
        }
        for (i, &t) in plan.outputs.iter().enumerate() {
            let Some(p) = plan.places[t].as_ref() else {
                continue;
            };
            let byte = self
                .model
                .graph
                .tensors
                .get(t)
                .map(|t| (crate::plan::is_byte(t), t.dtype));
            if let (Some((true, dtype)), Buf::Arena) = (byte, p.loc.buf) {
                let bytes: &[u8] = bytemuck::cast_slice(&arena[p.loc.off..]);
                let signed = dtype == crate::ir::DType::I8;
                let out = &mut self.outputs[i];
                self.out_walks[i].run(|[d, s], n, [sd, ss]| {
                    for j in 0..n {
                        let b = bytes[s + j * ss];
                        out[d + j * sd] = if signed { b as i8 as f32 } else { b as f32 };
                    }
                });
                continue;
            }
            let src = match p.loc.buf {
                Buf::Arena => &arena[p.loc.off..p.loc.off + p.loc.len],
                Buf::Const => &plan.consts[p.loc.off..p.loc.off + p.loc.len],
            };
            copy_view(copy, &self.out_walks[i], src, 0, &mut self.outputs[i], 0);
        }
        Ok(())
    }
}

/// Execute one step.
fn exec_step(
    k: &Kernels,
    step: &Step,
    arena: &mut [f32],
    consts: &[f32],
    scratch: &mut [f32],
) -> Result<()> {
    let copy = k.f32_copy.f;
    match step {
        Step::Nop => {}
        Step::Gemm {
            pre,
            a,
            b,
            bias,
            residual,
            c,
            post,
            m,
            n,
            k: kk,
            act,
            out,
        } => {
            let (rd, o) = split(arena, consts, *out)?;
            if let Some(g) = pre {
                copy_view(
                    copy,
                    &g.walk,
                    rd.get(g.loc)?,
                    g.off,
                    &mut scratch[g.scratch..],
                    0,
                );
            }
            let residual = residual.map(|l| rd.get(l)).transpose()?;
            let c_off = match c {
                Mat::Scratch(s) => *s,
                Mat::Loc(_) => scratch.len(),
            };
            let (s_lo, s_hi) = scratch.split_at_mut(c_off);
            let a = match a {
                Mat::Loc(l) => rd.get(*l)?,
                Mat::Scratch(s) => &s_lo[*s..],
            };
            let c_slice: &mut [f32] = match c {
                Mat::Loc(_) => &mut *o,
                Mat::Scratch(_) => &mut *s_hi,
            };
            (k.f32_gemm.f)(GemmParams {
                m: *m,
                n: *n,
                k: *kk,
                a,
                lda: *kk,
                b,
                bias: bias.as_deref(),
                residual,
                c: c_slice,
                ldc: *n,
                act: *act,
            });
            if let Some(g) = post {
                copy_view(copy, &g.walk, s_hi, 0, o, g.off);
            }
        }
        Step::GemmF16 {
            a,
            b,
            bias,
            residual,
            m,
            n,
            k: kk,
            act,
            out,
        } => {
            let (rd, c) = split(arena, consts, *out)?;
            (k.f16_gemm.f)(F16GemmParams {
                m: *m,
                n: *n,
                k: *kk,
                a: rd.get(*a)?,
                lda: *kk,
                b,
                bias: bias.as_deref(),
                residual: residual.map(|l| rd.get(l)).transpose()?,
                c,
                ldc: *n,
                act: *act,
            });
        }
        Step::DwConvF16 {
            geom,
            x,
            w,
            bias,
            residual,
            act,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            (k.f16_dwconv.f)(F16DwArgs {
                g: geom,
                x: rd.get(*x)?,
                w,
                bias,
                residual: residual.map(|l| rd.get(l)).transpose()?,
                y,
                act: *act,
            });
        }
        Step::MatMul {
            batches,
            m,
            n,
            k: kk,
            sa,
            sb,
            sbp,
            sc,
            out,
        } => {
            let (rd, o) = split(arena, consts, *out)?;
            let (lo, c) = scratch.split_at_mut(*sc);
            let (lo, bp) = lo.split_at_mut(*sbp);
            for (ga, gb, gc) in batches {
                copy_view(copy, &ga.walk, rd.get(ga.loc)?, ga.off, &mut lo[*sa..], 0);
                copy_view(copy, &gb.walk, rd.get(gb.loc)?, gb.off, &mut lo[*sb..], 0);
                pack_b_into(*kk, *n, &lo[*sb..], *n, &mut bp[..packed_len(*kk, *n)]);
                (k.f32_gemm.f)(GemmParams {
                    m: *m,
                    n: *n,
                    k: *kk,
                    a: &lo[*sa..],
                    lda: *kk,
                    b: bp,
                    bias: None,
                    residual: None,
                    c,
                    ldc: *n,
                    act: Act::None,
                });
                copy_view(copy, &gc.walk, c, 0, o, gc.off);
            }
        }
        Step::GroupGemm {
            x,
            b,
            bias,
            residual,
            m,
            c,
            o,
            cg,
            og,
            act,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let (x, residual) = (rd.get(*x)?, residual.map(|l| rd.get(l)).transpose()?);
            for (gi, bg) in b.iter().enumerate() {
                if *m == 0 {
                    break;
                }
                (k.f32_gemm.f)(GemmParams {
                    m: *m,
                    n: *og,
                    k: *cg,
                    a: &x[gi * cg..],
                    lda: *c,
                    b: bg,
                    bias: Some(&bias[gi * og..(gi + 1) * og]),
                    residual: residual.map(|r| &r[gi * og..]),
                    c: &mut y[gi * og..],
                    ldc: *o,
                    act: *act,
                });
            }
        }
        Step::Conv {
            depthwise,
            geom,
            x,
            w,
            bias,
            residual,
            act,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let args = ConvArgs {
                g: geom,
                x: rd.get(*x)?,
                w,
                bias,
                residual: residual.map(|l| rd.get(l)).transpose()?,
                y,
                act: *act,
            };
            if *depthwise {
                (k.f32_dwconv.f)(args)
            } else {
                (k.f32_conv.f)(args)
            }
        }
        Step::BinaryFlat { op, a, b, act, out } => {
            let (rd, y) = split(arena, consts, *out)?;
            (k.f32_binary.f)(*op, rd.get(*a)?, rd.get(*b)?, y);
            (k.f32_activation.f)(*act, y);
        }
        Step::BinaryChannel {
            op,
            full,
            chan,
            c,
            swap,
            act,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            (k.f32_binary_channel.f)(*op, rd.get(*full)?, rd.get(*chan)?, *c, *swap, y);
            (k.f32_activation.f)(*act, y);
        }
        Step::BinaryWalk {
            op,
            a,
            b,
            walk,
            act,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let (a, b) = (rd.get(*a)?, rd.get(*b)?);
            let f = k.f32_binary_strided.f;
            walk.run(|[oy, oa, ob], len, [sy, sa, sb]| {
                f(*op, len, &a[oa..], sa, &b[ob..], sb, &mut y[oy..], sy);
            });
            (k.f32_activation.f)(*act, y);
        }
        Step::Copy { parts, act } => {
            for p in parts {
                let (rd, y) = split(arena, consts, p.dst)?;
                copy_view(copy, &p.walk, rd.get(p.src)?, p.src_off, y, p.dst_off);
                (k.f32_activation.f)(*act, y);
            }
        }
        Step::InvertedResidual(ir) => {
            let (rd, y) = split(arena, consts, ir.out)?;
            let residual = ir.residual.map(|l| rd.get(l)).transpose()?;
            crate::fused::run(k, ir, rd.get(ir.x)?, residual, y, scratch)?;
        }
        Step::Interleave { parts } => {
            for p in parts {
                let (rd, y) = split(arena, consts, p.out)?;
                let (a, b) = (rd.get(p.a)?, rd.get(p.b)?);
                (k.f32_interleave2.f)(
                    p.pixels,
                    p.n,
                    a.get(p.a_off..).unwrap_or_default(),
                    p.sa,
                    b.get(p.b_off..).unwrap_or_default(),
                    p.sb,
                    y,
                    p.sy,
                );
            }
        }
        Step::CopyVia {
            gather,
            scatter,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            copy_view(
                copy,
                &gather.walk,
                rd.get(gather.loc)?,
                gather.off,
                &mut scratch[gather.scratch..],
                0,
            );
            copy_view(
                copy,
                &scatter.walk,
                &scratch[scatter.scratch..],
                0,
                y,
                scatter.off,
            );
        }
        Step::Affine {
            x,
            scale,
            shift,
            c,
            inner,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            (k.f32_affine.f)(rd.get(*x)?, scale, shift, *c, *inner, y);
        }
        Step::Pool {
            max,
            include_pad,
            geom,
            x,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            if *max {
                (k.f32_maxpool.f)(geom, rd.get(*x)?, y)
            } else {
                (k.f32_avgpool.f)(geom, *include_pad, rd.get(*x)?, y)
            }
        }
        Step::GlobalAvg { n, hw, c, x, out } => {
            let (rd, y) = split(arena, consts, *out)?;
            (k.f32_global_avg.f)(*n, *hw, *c, rd.get(*x)?, y);
        }
        Step::Reduce {
            op,
            x,
            walk,
            count,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let x = rd.get(*x)?;
            reduce(*op, walk, x, y, *count);
        }
        Step::LayerNorm {
            x,
            walk,
            len,
            sx,
            sy,
            scale,
            shift,
            epsilon,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let x = rd.get(*x)?;
            let f = k.f32_layer_norm.f;
            walk.run(|[oy, ox], rows, [ry, rx]| {
                for j in 0..rows {
                    f(
                        *len,
                        &x[ox + j * rx..],
                        *sx,
                        scale,
                        shift,
                        *epsilon,
                        &mut y[oy + j * ry..],
                        *sy,
                    );
                }
            });
        }
        Step::Softmax {
            x,
            walk,
            len,
            sx,
            sy,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            let x = rd.get(*x)?;
            let f = k.f32_softmax.f;
            walk.run(|[oy, ox], rows, [ry, rx]| {
                for j in 0..rows {
                    f(*len, &x[ox + j * rx..], *sx, &mut y[oy + j * ry..], *sy);
                }
            });
        }
        Step::Pad {
            x,
            out_shape,
            in_strides,
            out_strides,
            maps,
            value,
            out,
        } => {
            let (rd, y) = split(arena, consts, *out)?;
            pad(
                rd.get(*x)?,
                out_shape,
                in_strides,
                out_strides,
                maps,
                *value,
                y,
            )?;
        }
        Step::Quant {
            quantize,
            stride,
            dim,
            scales,
            zps,
            lo,
            hi,
            x,
            out,
        } => {
            let signed = *lo < 0.0;
            if *quantize && *dim == 1 {
                let (rd, y) = crate::exec_q8::split_bytes(arena, consts, *out)?;
                let zp = zps[0] as i32;
                (k.qs8_quantize.f)(rd.get(*x)?, scales[0], zp, *lo as i32, *hi as i32, y);
            } else if *quantize {
                let (rd, y) = crate::exec_q8::split_bytes(arena, consts, *out)?;
                let x = rd.get(*x)?;
                for (i, (y, &v)) in y.iter_mut().zip(x).enumerate() {
                    let ch = (i / stride) % dim;
                    let q = ((v / scales[ch]).round_ties_even() + zps[ch]).clamp(*lo, *hi);
                    *y = if signed { q as i8 as u8 } else { q as u8 };
                }
            } else {
                let (rd, y) = split(arena, consts, *out)?;
                let x = rd.bytes(*x)?;
                for (i, (y, &b)) in y.iter_mut().zip(x).enumerate() {
                    let ch = (i / stride) % dim;
                    let q = if signed { b as i8 as f32 } else { b as f32 };
                    *y = (q - zps[ch]) * scales[ch];
                }
            }
        }
        Step::Bytes(inner) => crate::exec_q8::exec_bytes(inner, arena, consts, scratch)?,
        Step::Q8(q) => crate::exec_q8::exec_q8(k, q, arena, consts, scratch)?,
    }
    Ok(())
}

/// Generic strided reduction: `walk` is over the input as `[in, out]`.
fn reduce(op: ReduceOp, walk: &Walk<2>, x: &[f32], y: &mut [f32], count: usize) {
    let init = match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Max => f32::NEG_INFINITY,
        ReduceOp::Min => f32::INFINITY,
    };
    y.fill(init);
    macro_rules! go {
        ($f:expr) => {
            walk.run(|[ox, oy], n, [sx, sy]| {
                for j in 0..n {
                    let t = &mut y[oy + j * sy];
                    *t = $f(*t, x[ox + j * sx]);
                }
            })
        };
    }
    match op {
        ReduceOp::Sum | ReduceOp::Mean => go!(|a: f32, b: f32| a + b),
        ReduceOp::Max => go!(|a: f32, b: f32| a.max(b)),
        ReduceOp::Min => go!(|a: f32, b: f32| a.min(b)),
    }
    if op == ReduceOp::Mean && count > 0 {
        let inv = 1.0 / count as f32;
        y.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Pad through per-axis source maps (`usize::MAX` = fill with `value`).
fn pad(
    x: &[f32],
    shape: &[usize],
    in_strides: &[usize],
    out_strides: &[usize],
    maps: &[Vec<usize>],
    value: f32,
    y: &mut [f32],
) -> Result<()> {
    let r = shape.len();
    if r > MAX_WALK_RANK {
        return Err(Error::Unsupported(format!("Pad of rank {r}")));
    }
    if shape.contains(&0) {
        return Ok(());
    }
    let mut idx = [0usize; MAX_WALK_RANK];
    loop {
        let mut src = 0usize;
        let mut dst = 0usize;
        let mut fill = false;
        for a in 0..r {
            let m = maps[a][idx[a]];
            fill |= m == usize::MAX;
            src = src.wrapping_add(m.wrapping_mul(in_strides[a]));
            dst += idx[a] * out_strides[a];
        }
        y[dst] = if fill { value } else { x[src] };
        let mut a = r;
        loop {
            if a == 0 {
                return Ok(());
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}
