//! Element-wise ops: binary ops (same layout, per-channel operand on channels-last data,
//! generic broadcasting) and unary functions, f32 and int8 (add / multiply with rescaling,
//! any function through a 256-entry table). Flat steps split into blocks of elements (a
//! multiple of every vector width, so a block boundary never moves a vector tail), per-
//! channel ones into blocks of pixels.

use super::arena::{walk2, Buf, Cx, Loc, Out, Outs, Place};
use super::planner::{act_of, bin_of, clamp_bounds, per_tensor, q8_io, q8_unsupported};
use super::planner::{Lowered, Planner};
use super::step::{blocks, Step, Work};
use crate::error::{Error, Result};
use crate::ir::{BinaryOp, Op};
use crate::kernels::f32_copy::copy_view;
use crate::kernels::qs8_eltwise::QBinary;
use crate::kernels::requant::Requant;
use crate::kernels::walk::Walk;
use crate::kernels::{Act, BinOp};

/// Elements per unit of a flat step (a multiple of 64).
pub(crate) const BLOCK: usize = 1024;
/// Pixels per unit of a per-channel step.
const PIXELS: usize = 16;

/// Elements `units` cover in a flat step of `len` elements.
pub(crate) fn flat_span(units: &std::ops::Range<usize>, len: usize) -> std::ops::Range<usize> {
    (units.start * BLOCK).min(len)..(units.end * BLOCK).min(len)
}

/// Binary op on identical layouts, then an activation.
#[derive(Debug)]
pub(crate) struct BinaryFlat {
    pub op: BinOp,
    pub a: Loc,
    pub b: Loc,
    pub act: Act,
    pub out: Loc,
}

impl Step for BinaryFlat {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, BLOCK)]
    }

    fn work(&self) -> Work {
        let n = self.out.len;
        Work::moves(blocks(n, BLOCK), 1, 12 * n as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let s = flat_span(&out.units(), self.out.len);
        let (a, b) = (cx.get(self.a)?, cx.get(self.b)?);
        let y = out.f32(0)?;
        (cx.k.f32_binary.f)(self.op, &a[s.clone()], &b[s], y);
        (cx.k.f32_activation.f)(self.act, y);
        Ok(())
    }
}

/// Binary op with a per-channel operand on channels-last data, then an activation.
#[derive(Debug)]
pub(crate) struct BinaryChannel {
    pub op: BinOp,
    pub full: Loc,
    pub chan: Loc,
    pub c: usize,
    pub swap: bool,
    pub act: Act,
    pub out: Loc,
}

impl Step for BinaryChannel {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, PIXELS * self.c)]
    }

    fn work(&self) -> Work {
        let n = self.out.len;
        let pixels = n / self.c.max(1);
        Work::moves(blocks(pixels, PIXELS), 1, 8 * n as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let s = out.span(0);
        let (full, chan) = (cx.get(self.full)?, cx.get(self.chan)?);
        let y = out.f32(0)?;
        (cx.k.f32_binary_channel.f)(self.op, &full[s], chan, self.c, self.swap, y);
        (cx.k.f32_activation.f)(self.act, y);
        Ok(())
    }
}

/// Generic broadcasting binary op; walk over `[out, a, b]`. One unit.
#[derive(Debug)]
pub(crate) struct BinaryWalk {
    pub op: BinOp,
    pub a: Loc,
    pub b: Loc,
    pub walk: Walk<3>,
    pub act: Act,
    pub out: Loc,
}

impl Step for BinaryWalk {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (a, b) = (cx.get(self.a)?, cx.get(self.b)?);
        let y = out.f32(0)?;
        let f = cx.k.f32_binary_strided.f;
        let op = self.op;
        self.walk.run(|[oy, oa, ob], len, [sy, sa, sb]| {
            f(op, len, &a[oa..], sa, &b[ob..], sb, &mut y[oy..], sy);
        });
        (cx.k.f32_activation.f)(self.act, y);
        Ok(())
    }
}

/// An element-wise function: a copy into the output's layout, then the function in place.
/// Flat (block split) when both sides share a dense layout, else one strided walk.
#[derive(Debug)]
pub(crate) struct Unary {
    pub x: Loc,
    /// Over `[out strides, x strides]`, or `None` for identical dense layouts.
    pub walk: Option<Walk<2>>,
    pub act: Act,
    pub out: Loc,
}

impl Step for Unary {
    fn outs(&self) -> Vec<Out> {
        match self.walk {
            None => vec![Out::f32(self.out, BLOCK)],
            Some(_) => vec![Out::f32(self.out, self.out.len)],
        }
    }

    fn work(&self) -> Work {
        match self.walk {
            None => Work::moves(blocks(self.out.len, BLOCK), 1, 8 * self.out.len as u64),
            Some(_) => Work::single(),
        }
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let x = cx.get(self.x)?;
        let s = flat_span(&out.units(), self.out.len);
        let y = out.f32(0)?;
        match &self.walk {
            None => {
                (cx.k.f32_copy.f)(s.len(), &x[s], 1, y, 1);
            }
            Some(w) => copy_view(cx.k.f32_copy.f, w, x, 0, y, 0),
        }
        (cx.k.f32_activation.f)(self.act, y);
        Ok(())
    }
}

/// An element-wise function of 8-bit values through a 256-entry table.
#[derive(Debug)]
pub(crate) struct Lut {
    pub table: Vec<u8>,
    pub x: Loc,
    pub out: Loc,
}

impl Step for Lut {
    fn outs(&self) -> Vec<Out> {
        vec![Out::bytes(self.out, BLOCK)]
    }

    fn work(&self) -> Work {
        Work::moves(blocks(self.out.len, BLOCK), 1, 2 * self.out.len as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let s = flat_span(&out.units(), self.out.len);
        let x = &cx.bytes(self.x)?[s];
        for (v, &q) in out.bytes(0)?.iter_mut().zip(x) {
            *v = self.table[q as usize];
        }
        Ok(())
    }
}

/// Add or multiply of two 8-bit tensors; `b` is either the same shape as `a` or one value
/// per (batch, channel) of channels-last data (`chan > 0`, squeeze-excite gating).
#[derive(Debug)]
pub(crate) struct QBinaryStep {
    pub p: QBinary,
    pub a: Loc,
    pub b: Loc,
    /// Channels of `a` when `b` is per channel, else 0.
    pub chan: usize,
    pub out: Loc,
}

impl Step for QBinaryStep {
    fn outs(&self) -> Vec<Out> {
        let per = if self.chan == 0 {
            BLOCK
        } else {
            PIXELS * self.chan
        };
        vec![Out::bytes(self.out, per)]
    }

    fn work(&self) -> Work {
        let n = self.out.len;
        let units = match n.checked_div(self.chan) {
            None => blocks(n, BLOCK),
            Some(pixels) => blocks(pixels, PIXELS),
        };
        Work::moves(units, 1, 3 * n as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (av, bv) = (cx.bytes(self.a)?, cx.bytes(self.b)?);
        let f = cx.k.qs8_binary.f;
        let s = out.span(0);
        let y = out.bytes(0)?;
        if self.chan == 0 {
            f(&self.p, &av[s.clone()], &bv[s], y);
            return Ok(());
        }
        // `bv` holds one value per (batch, channel); `av` is [n, hw, c].
        let c = self.chan;
        let per_batch = av.len() / (bv.len() / c).max(1);
        for (j, yr) in y.chunks_exact_mut(c).enumerate() {
            let at = s.start + j * c;
            let gates = &bv[at / per_batch.max(1) * c..][..c];
            f(&self.p, &av[at..at + c], gates, yr);
        }
        Ok(())
    }
}

/// Lower a Binary or Unary node.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    let node = p.node(i);
    match (&node.op, byte_input) {
        (Op::Binary { op, activation }, false) => {
            lower_binary(p, i, bin_of(*op), act_of(*activation))
        }
        (Op::Unary { activation }, false) => {
            let x = p.place(p.input(node, 0)?)?.clone();
            let out = p.place(p.output(node)?)?.clone();
            let flat = x.strides == out.strides && x.loc.len == out.loc.len;
            let walk = if flat {
                None
            } else {
                Some(walk2(&node.name, &out.shape, &out.strides, &x.strides)?)
            };
            let step = Unary {
                x: x.loc,
                walk,
                act: act_of(*activation),
                out: out.loc,
            };
            Ok(Lowered::plain(step, p.k.f32_activation.name))
        }
        (Op::Unary { activation }, true) => lower_lut(p, i, *activation),
        (Op::Binary { op, activation }, true) => lower_q8_binary(p, i, *op, *activation),
        _ => Err(q8_unsupported(node)),
    }
}

fn lower_binary(p: &mut Planner<'_>, i: usize, op: BinOp, act: Act) -> Result<Lowered> {
    let node = p.node(i);
    let a = p.place(p.input(node, 0)?)?.clone();
    let b = p.place(p.input(node, 1)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let r = out.shape.len();
    let bcast = |pl: &Place| -> (Vec<usize>, Vec<usize>) {
        let lead = r - pl.shape.len();
        let mut sh = vec![1; r];
        let mut st = vec![0; r];
        for d in 0..pl.shape.len() {
            sh[lead + d] = pl.shape[d];
            st[lead + d] = if pl.shape[d] == 1 { 0 } else { pl.strides[d] };
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
    let full = |sh: &[usize], st: &[usize]| sh == out.shape.as_slice() && st == ost.as_slice();
    let k = p.k;
    if full(&ash, &ast) && full(&bsh, &bst) {
        let s = BinaryFlat {
            op,
            a: a.loc,
            b: b.loc,
            act,
            out: out.loc,
        };
        return Ok(Lowered::plain(s, k.f32_binary.name));
    }
    let nhwc = r == 4 && out.strides[1] == 1 && out.loc.buf == Buf::Arena;
    let per_channel =
        |sh: &[usize]| r == 4 && sh[0] == 1 && sh[1] == out.shape[1] && sh[2] == 1 && sh[3] == 1;
    let channel = |full: &Place, chan: &Place, swap| BinaryChannel {
        op,
        full: full.loc,
        chan: chan.loc,
        c: out.shape[1],
        swap,
        act,
        out: out.loc,
    };
    if nhwc && full(&ash, &ast) && per_channel(&bsh) {
        return Ok(Lowered::plain(
            channel(&a, &b, false),
            k.f32_binary_channel.name,
        ));
    }
    if nhwc && full(&bsh, &bst) && per_channel(&ash) {
        return Ok(Lowered::plain(
            channel(&b, &a, true),
            k.f32_binary_channel.name,
        ));
    }
    let walk = Walk::new(&out.shape, [&ost, &ast, &bst])
        .ok_or_else(|| Error::graph(&node.name, "rank too large for the strided walker"))?;
    let s = BinaryWalk {
        op,
        a: a.loc,
        b: b.loc,
        walk,
        act,
        out: out.loc,
    };
    Ok(Lowered::plain(s, k.f32_binary_strided.name))
}

fn lower_lut(p: &mut Planner<'_>, i: usize, act: crate::ir::Activation) -> Result<Lowered> {
    let node = p.node(i);
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let ((sx, zx), (sy, zy), out_f32) = q8_io(p, node)?;
    if out_f32 || x.strides != out.strides {
        return Err(q8_unsupported(node));
    }
    let mut v: Vec<f32> = (0..256).map(|q| (q - zx) as f32 * sx).collect();
    crate::kernels::f32_eltwise::scalar::activation(act_of(act), &mut v);
    let rq = Requant::new(zy, 0, 255);
    let table = v.iter().map(|&f| rq.finish(f / sy)).collect();
    let step = Lut {
        table,
        x: x.loc,
        out: out.loc,
    };
    Ok(Lowered::plain(step, "u8_lut::scalar::lookup"))
}

fn lower_q8_binary(
    p: &mut Planner<'_>,
    i: usize,
    op: BinaryOp,
    act: crate::ir::Activation,
) -> Result<Lowered> {
    let node = p.node(i);
    let name = node.name.as_str();
    let ((sx, zx), (sy, zy), out_f32) = q8_io(p, node)?;
    if out_f32 || node.inputs.len() != 2 || !matches!(op, BinaryOp::Add | BinaryOp::Mul) {
        return Err(q8_unsupported(node));
    }
    let x = p.place(node.inputs[0])?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let b_id = node.inputs[1];
    let b = p.place(b_id)?.clone();
    let (sb, zb) = per_tensor(p.tensor(b_id)?, name)?;
    // Both operands commute: `a` is the full-size one.
    let ((x, sx, zx), (b, sb, zb)) = if b.shape == out.shape {
        ((b, sb, zb), (x, sx, zx))
    } else {
        ((x, sx, zx), (b, sb, zb))
    };
    if x.shape != out.shape || x.strides != out.strides {
        return Err(q8_unsupported(node));
    }
    let chan = if b.shape == x.shape && b.strides == x.strides {
        0
    } else if x.shape.len() == 4 && x.strides[1] == 1 && b.shape == [x.shape[0], x.shape[1], 1, 1] {
        x.shape[1]
    } else {
        return Err(q8_unsupported(node));
    };
    let (qmin, qmax) = clamp_bounds(act, sy, zy, name)?;
    let mul = op == BinaryOp::Mul;
    let (ma, mb) = if mul {
        (sx * sb / sy, 0.0)
    } else {
        (sx / sy, sb / sy)
    };
    let step = QBinaryStep {
        p: QBinary {
            mul,
            za: zx,
            zb,
            ma,
            mb,
            rq: Requant::new(zy, qmin, qmax),
        },
        a: x.loc,
        b: b.loc,
        chan,
        out: out.loc,
    };
    Ok(Lowered::new(step, p.k.qs8_binary.name, 0, 0))
}
