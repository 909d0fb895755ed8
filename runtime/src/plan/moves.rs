//! Data movement: Concat, Split, Slice, Reshape, Transpose, ChannelShuffle and Pad, on f32
//! and 8-bit tensors alike (one generic step per kind over the element type). A two-group
//! channel shuffle of channels-last data becomes pairwise interleaves, split over pixels;
//! the other copies are strided walks run as one unit.

use std::fmt::Debug;

use super::arena::{is_row_major, walk2, Cx, Loc, Out, Outs, Place};
use super::planner::{Lowered, Planner};
use super::step::{blocks, Step, Work};
use crate::error::{Error, Result};
use crate::ir::{Op, PadMode};
use crate::kernels::f32_copy::copy_view;
use crate::kernels::f32_copy::scalar::{copy_strided, interleave2};
use crate::kernels::walk::{row_major_strides, Walk, MAX_WALK_RANK};
use crate::kernels::Kernels;

/// Kernel name of every 8-bit data movement step.
const BYTE_COPY: &str = "u8_copy::scalar::copy_strided";
/// Pixels per unit of an interleave.
const PIXELS: usize = 64;

/// An element type data movement runs on: f32, or the bytes of 8-bit tensors.
pub(crate) trait Elem: Copy + Send + Sync + Debug + 'static {
    /// Input region `l`.
    fn read<'a>(cx: &Cx<'a>, l: Loc) -> Result<&'a [Self]>;
    /// Output `i` of the running units.
    fn write<'b>(out: &'b mut Outs<'_>, i: usize) -> Result<&'b mut [Self]>;
    /// An output region of this element type.
    fn out(loc: Loc, per_unit: usize) -> Out;
    /// The strided row copy kernel.
    fn copy(k: &Kernels) -> fn(usize, &[Self], usize, &mut [Self], usize);
    /// The pairwise interleave kernel.
    #[allow(clippy::type_complexity)]
    fn interleave(
        k: &Kernels,
    ) -> fn(usize, usize, &[Self], usize, &[Self], usize, &mut [Self], usize);
    /// Scratch viewed as elements.
    fn scratch(s: &mut [f32]) -> &mut [Self];
    /// f32 scratch slots for `n` elements.
    fn slots(n: usize) -> usize;
}

impl Elem for f32 {
    fn read<'a>(cx: &Cx<'a>, l: Loc) -> Result<&'a [f32]> {
        cx.get(l)
    }
    fn write<'b>(out: &'b mut Outs<'_>, i: usize) -> Result<&'b mut [f32]> {
        out.f32(i)
    }
    fn out(loc: Loc, per_unit: usize) -> Out {
        Out::f32(loc, per_unit)
    }
    fn copy(k: &Kernels) -> fn(usize, &[f32], usize, &mut [f32], usize) {
        k.f32_copy.f
    }
    fn interleave(
        k: &Kernels,
    ) -> fn(usize, usize, &[f32], usize, &[f32], usize, &mut [f32], usize) {
        k.f32_interleave2.f
    }
    fn scratch(s: &mut [f32]) -> &mut [f32] {
        s
    }
    fn slots(n: usize) -> usize {
        n
    }
}

impl Elem for u8 {
    fn read<'a>(cx: &Cx<'a>, l: Loc) -> Result<&'a [u8]> {
        cx.bytes(l)
    }
    fn write<'b>(out: &'b mut Outs<'_>, i: usize) -> Result<&'b mut [u8]> {
        out.bytes(i)
    }
    fn out(loc: Loc, per_unit: usize) -> Out {
        Out::bytes(loc, per_unit)
    }
    fn copy(_: &Kernels) -> fn(usize, &[u8], usize, &mut [u8], usize) {
        copy_strided::<u8>
    }
    fn interleave(_: &Kernels) -> fn(usize, usize, &[u8], usize, &[u8], usize, &mut [u8], usize) {
        interleave2::<u8>
    }
    fn scratch(s: &mut [f32]) -> &mut [u8] {
        bytemuck::cast_slice_mut(s)
    }
    fn slots(n: usize) -> usize {
        n.div_ceil(4)
    }
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

/// Strided copies (Concat, Split, Slice, Transpose, a Reshape changing layout, a general
/// channel shuffle). The parts write one or several outputs.
#[derive(Debug)]
pub(crate) struct CopyParts<T> {
    pub parts: Vec<CopyPart>,
    /// The distinct destination regions, in order of first use.
    pub dsts: Vec<Loc>,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Elem> CopyParts<T> {
    fn new(parts: Vec<CopyPart>) -> CopyParts<T> {
        let mut dsts: Vec<Loc> = Vec::new();
        for p in &parts {
            if !dsts.contains(&p.dst) {
                dsts.push(p.dst);
            }
        }
        CopyParts {
            parts,
            dsts,
            _elem: std::marker::PhantomData,
        }
    }
}

impl<T: Elem> Step for CopyParts<T> {
    fn outs(&self) -> Vec<Out> {
        self.dsts.iter().map(|&d| T::out(d, d.len)).collect()
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let copy = T::copy(cx.k);
        for p in &self.parts {
            let i = self.dsts.iter().position(|&d| d == p.dst).unwrap_or(0);
            let src = T::read(cx, p.src)?;
            copy_view(copy, &p.walk, src, p.src_off, T::write(out, i)?, p.dst_off);
        }
        Ok(())
    }
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
    pub out: Loc,
    pub sy: usize,
}

/// Pairwise interleaves of strided rows (a two-group channel shuffle on channels-last data,
/// with its concat and split folded in), one part per output; splits over pixels.
#[derive(Debug)]
pub(crate) struct Interleave<T> {
    pub parts: Vec<InterleavePart>,
    pub pixels: usize,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Elem> Step for Interleave<T> {
    fn outs(&self) -> Vec<Out> {
        self.parts
            .iter()
            .map(|p| T::out(p.out, PIXELS * p.sy))
            .collect()
    }

    fn work(&self) -> Work {
        let bytes: usize = self.parts.iter().map(|p| 2 * p.out.len).sum();
        let size = std::mem::size_of::<T>() as u64;
        Work::moves(blocks(self.pixels, PIXELS), 1, bytes as u64 * size)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let units = out.units();
        let p0 = (units.start * PIXELS).min(self.pixels);
        let pixels = (units.end * PIXELS).min(self.pixels) - p0;
        let f = T::interleave(cx.k);
        for (i, p) in self.parts.iter().enumerate() {
            let (a, b) = (T::read(cx, p.a)?, T::read(cx, p.b)?);
            f(
                pixels,
                p.n,
                a.get(p.a_off + p0 * p.sa..).unwrap_or_default(),
                p.sa,
                b.get(p.b_off + p0 * p.sb..).unwrap_or_default(),
                p.sb,
                T::write(out, i)?,
                p.sy,
            );
        }
        Ok(())
    }
}

/// Copy through a row-major scratch region (a Reshape between two non-row-major layouts).
#[derive(Debug)]
pub(crate) struct CopyVia<T> {
    pub x: Loc,
    /// Over `[scratch, tensor]`, then `[tensor, scratch]`.
    pub gather: Walk<2>,
    pub scatter: Walk<2>,
    pub out: Loc,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Elem> Step for CopyVia<T> {
    fn outs(&self) -> Vec<Out> {
        vec![T::out(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn scratch(&self) -> usize {
        T::slots(self.x.len)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let copy = T::copy(cx.k);
        let x = T::read(cx, self.x)?;
        let s = T::scratch(cx.scratch);
        copy_view(copy, &self.gather, x, 0, s, 0);
        copy_view(copy, &self.scatter, s, 0, T::write(out, 0)?, 0);
        Ok(())
    }
}

/// Pad with per-axis source-coordinate maps (`usize::MAX` = constant fill). f32 only.
#[derive(Debug)]
pub(crate) struct Pad {
    pub x: Loc,
    pub out_shape: Vec<usize>,
    pub in_strides: Vec<usize>,
    pub out_strides: Vec<usize>,
    pub maps: Vec<Vec<usize>>,
    pub value: f32,
    pub out: Loc,
}

impl Step for Pad {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (x, y) = (cx.get(self.x)?, out.f32(0)?);
        let (shape, maps) = (&self.out_shape, &self.maps);
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
                src = src.wrapping_add(m.wrapping_mul(self.in_strides[a]));
                dst += idx[a] * self.out_strides[a];
            }
            y[dst] = if fill { self.value } else { x[src] };
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
}

/// Lower a data movement node: f32 steps, or the same steps on bytes for 8-bit tensors.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    if !byte_input {
        return lower_as::<f32>(p, i);
    }
    let node = p.node(i);
    match node.op {
        Op::Pad { .. } => Err(Error::Unsupported(format!(
            "node {:?}: {} of an 8-bit tensor is not implemented",
            node.name,
            node.op.name()
        ))),
        _ => {
            let mut l = lower_as::<u8>(p, i)?;
            l.kernel = BYTE_COPY;
            Ok(l)
        }
    }
}

/// The output places of node `i`.
fn out_places(p: &Planner<'_>, i: usize) -> Result<Vec<Place>> {
    p.node(i)
        .outputs
        .iter()
        .map(|&t| p.place(t).cloned())
        .collect()
}

fn copy_step<T: Elem>(p: &Planner<'_>, parts: Vec<CopyPart>) -> Lowered {
    Lowered::plain(CopyParts::<T>::new(parts), p.k.f32_copy.name)
}

/// One copy of all of `src` into all of `out` through `walk`.
fn one_part(src: &Place, out: &Place, walk: Walk<2>) -> Vec<CopyPart> {
    vec![CopyPart {
        src: src.loc,
        src_off: 0,
        dst: out.loc,
        dst_off: 0,
        walk,
    }]
}

fn lower_as<T: Elem>(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    match &node.op {
        Op::Concat { axis } => {
            let mut parts = Vec::new();
            let mut at = 0;
            for &t in &node.inputs {
                let pl = p.place(t)?.clone();
                parts.push(CopyPart {
                    src: pl.loc,
                    src_off: 0,
                    dst: out.loc,
                    dst_off: at * out.strides[*axis],
                    walk: walk2(name, &pl.shape, &out.strides, &pl.strides)?,
                });
                at += pl.shape[*axis];
            }
            Ok(copy_step::<T>(p, parts))
        }
        Op::Split { axis, .. } => {
            let mut parts = Vec::new();
            let mut at = 0;
            for pl in out_places(p, i)? {
                parts.push(CopyPart {
                    src: x.loc,
                    src_off: at * x.strides[*axis],
                    dst: pl.loc,
                    dst_off: 0,
                    walk: walk2(name, &pl.shape, &pl.strides, &x.strides)?,
                });
                at += pl.shape[*axis];
            }
            Ok(copy_step::<T>(p, parts))
        }
        Op::Slice {
            axis, start, step, ..
        } => {
            let mut st = x.strides.clone();
            st[*axis] *= *step;
            let walk = walk2(name, &out.shape, &out.strides, &st)?;
            let mut parts = one_part(&x, &out, walk);
            if out.loc.len > 0 {
                parts[0].src_off = start * x.strides[*axis];
            }
            Ok(copy_step::<T>(p, parts))
        }
        Op::Reshape => lower_reshape::<T>(p, name, &x, &out),
        Op::Transpose { perm } => {
            let st: Vec<usize> = perm.iter().map(|&a| x.strides[a]).collect();
            let walk = walk2(name, &out.shape, &out.strides, &st)?;
            Ok(copy_step::<T>(p, one_part(&x, &out, walk)))
        }
        Op::ChannelShuffle { groups, .. } => lower_shuffle::<T>(p, i, name, *groups),
        Op::Pad { pads, mode } => lower_pad(&x, &out, pads, mode),
        other => Err(Error::Unsupported(format!(
            "node {name:?}: {} is not a data movement",
            other.name()
        ))),
    }
}

/// A Reshape that does not alias its input: a copy when either side is row-major, else a
/// copy through row-major scratch.
fn lower_reshape<T: Elem>(p: &Planner<'_>, name: &str, x: &Place, out: &Place) -> Result<Lowered> {
    let out_rm = is_row_major(&out.shape, &out.strides);
    let in_rm = is_row_major(&x.shape, &x.strides);
    let x_rm = row_major_strides(&x.shape);
    let out_rmst = row_major_strides(&out.shape);
    if out_rm || in_rm {
        let walk = if out_rm {
            walk2(name, &x.shape, &x_rm, &x.strides)?
        } else {
            walk2(name, &out.shape, &out.strides, &out_rmst)?
        };
        return Ok(copy_step::<T>(p, one_part(x, out, walk)));
    }
    let step = CopyVia::<T> {
        x: x.loc,
        gather: walk2(name, &x.shape, &x_rm, &x.strides)?,
        scatter: walk2(name, &out.shape, &out.strides, &out_rmst)?,
        out: out.loc,
        _elem: std::marker::PhantomData,
    };
    Ok(Lowered::plain(step, p.k.f32_copy.name))
}

/// Lower a (fused concat →) channel shuffle (→ split) of node `i`: pairwise interleaves
/// when it is a two-group shuffle of channels-last data, otherwise one strided copy per
/// (output, group, input) run of channels.
fn lower_shuffle<T: Elem>(
    p: &mut Planner<'_>,
    i: usize,
    name: &str,
    groups: usize,
) -> Result<Lowered> {
    let node = p.node(i);
    let ins: Vec<Place> = node
        .inputs
        .iter()
        .map(|&t| p.place(t).cloned())
        .collect::<Result<_>>()?;
    let outs = out_places(p, i)?;
    let g = groups.max(1);
    let c: usize = ins.iter().map(|pl| pl.shape[1]).sum();
    let splits = outs.len().max(1);
    let s = c / splits;
    let channels_last = |pl: &Place| {
        pl.shape.len() == 4 && {
            let (c, w) = (pl.shape[1], pl.shape[3]);
            pl.strides == [pl.shape[2] * w * c, 1, w * c, c]
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
                out: out.loc,
                sy: s,
            })
            .collect();
        let step = Interleave::<T> {
            parts,
            pixels,
            _elem: std::marker::PhantomData,
        };
        return Ok(Lowered::plain(step, p.k.f32_interleave2.name));
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
    Ok(copy_step::<T>(p, parts))
}

fn lower_pad(x: &Place, out: &Place, pads: &[(usize, usize)], mode: &PadMode) -> Result<Lowered> {
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
    let step = Pad {
        x: x.loc,
        out_shape: out.shape.clone(),
        in_strides: x.strides.clone(),
        out_strides: out.strides.clone(),
        maps,
        value,
        out: out.loc,
    };
    Ok(Lowered::plain(step, "pad::scalar::pad_mapped"))
}

/// Whether a node is data movement (lowered by this family whatever its element type).
pub(crate) fn is_move(op: &Op) -> bool {
    matches!(
        op,
        Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Reshape
            | Op::Transpose { .. }
            | Op::Pad { .. }
            | Op::ChannelShuffle { .. }
    )
}
