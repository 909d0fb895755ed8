//! Where tensors live (regions of the activation arena or of the plan's constants, and the
//! physical strides of their logical axes) and the views a step gets of that memory while
//! it runs: read-only input regions, its own scratch, and the part of its outputs that the
//! work units it was handed write.

use std::marker::PhantomData;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::ir::{DType, Tensor};
use crate::kernels::walk::{row_major_strides, Walk};
use crate::kernels::{Kernels, OutMat};

/// Arena and scratch alignment in f32 elements (64 bytes).
pub(crate) const ALIGN: usize = 16;

/// Which buffer a [`Loc`] points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Buf {
    /// The session's activation arena.
    Arena,
    /// The plan's materialised constants.
    Const,
}

/// A dense region of `len` elements at `off` (in f32 slots) in `buf`. Regions of 8-bit
/// tensors count bytes in `len` from the start of their (slot-aligned) region.
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

/// Physical strides: NHWC for rank-4 activations, row-major otherwise.
pub(crate) fn physical_strides(t: &Tensor) -> Vec<usize> {
    let s = &t.shape;
    if s.len() == 4 && !t.is_const() {
        let (c, h, w) = (s[1], s[2], s[3]);
        vec![h * w * c, 1, w * c, c]
    } else {
        row_major_strides(s)
    }
}

/// Whether a tensor's elements are stored as bytes (8-bit quantized).
pub(crate) fn is_byte(t: &Tensor) -> bool {
    matches!(t.dtype, DType::I8 | DType::U8)
}

/// Arena slots (f32-sized) a runtime tensor occupies: 8-bit tensors pack four per slot.
pub(crate) fn slots(t: &Tensor) -> usize {
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

/// A two-view walk over `shape`, or a graph error naming `node` when the rank is too high.
pub(crate) fn walk2(node: &str, shape: &[usize], a: &[usize], b: &[usize]) -> Result<Walk<2>> {
    Walk::new(shape, [a, b])
        .ok_or_else(|| Error::graph(node, "rank too large for the strided walker"))
}

/// `n` rounded up to a multiple of [`ALIGN`].
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// One output region of a step and how its work units map onto it: units `a..b` write
/// exactly elements `min(a * per_unit, len)..min(b * per_unit, len)` of the region (bytes
/// for an 8-bit region). Disjoint unit ranges therefore write disjoint memory, which is what
/// lets threads run disjoint ranges of one step at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Out {
    pub loc: Loc,
    pub per_unit: usize,
    pub bytes: bool,
    /// For a column split: the region is a `rows x width` matrix of row stride `ld`, and
    /// units `a..b` write columns `a * per_unit..b * per_unit` (clipped) of every row.
    pub cols: Option<Cols>,
}

/// The matrix shape of a column-split output (see [`Out::cols`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cols {
    pub rows: usize,
    pub ld: usize,
    pub width: usize,
}

impl Out {
    /// An f32 output region.
    pub fn f32(loc: Loc, per_unit: usize) -> Out {
        Out {
            loc,
            per_unit,
            bytes: false,
            cols: None,
        }
    }

    /// An 8-bit output region.
    pub fn bytes(loc: Loc, per_unit: usize) -> Out {
        Out {
            loc,
            per_unit,
            bytes: true,
            cols: None,
        }
    }

    /// This output split by columns: units are blocks of `per_unit` columns of a
    /// `rows x width` matrix of row stride `ld`.
    pub fn by_columns(self, rows: usize, ld: usize, width: usize) -> Out {
        Out {
            cols: Some(Cols { rows, ld, width }),
            ..self
        }
    }

    /// Element span written by `units`.
    pub fn span(&self, units: &Range<usize>) -> Range<usize> {
        let at = |u: usize| u.saturating_mul(self.per_unit).min(self.loc.len);
        at(units.start)..at(units.end).max(at(units.start))
    }

    /// The f32 slots the region occupies.
    fn slots(&self) -> Range<usize> {
        let n = if self.bytes {
            self.loc.len.div_ceil(4)
        } else {
            self.loc.len
        };
        self.loc.off..self.loc.off + n
    }
}

/// The activation arena as raw memory, shared by the threads running one step.
#[derive(Clone, Copy)]
pub(crate) struct Arena<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `Arena` only hands out regions through `Cx::get` (read-only, never overlapping
// the running step's outputs) and `Outs` (disjoint element spans for disjoint unit ranges),
// so threads sharing it never access the same memory with one of them writing.
unsafe impl Send for Arena<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for Arena<'_> {}

impl<'a> Arena<'a> {
    /// View `arena` (borrowed mutably for `'a`) as raw memory.
    pub fn new(arena: &'a mut [f32]) -> Arena<'a> {
        Arena {
            ptr: arena.as_mut_ptr(),
            len: arena.len(),
            _borrow: PhantomData,
        }
    }

    /// Slots `r` for reading.
    ///
    /// # Safety
    /// No thread may write any of these slots while the returned slice lives.
    unsafe fn read(&self, r: Range<usize>) -> Option<&'a [f32]> {
        if r.start > r.end || r.end > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above); the caller guarantees no concurrent writer.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.end - r.start) })
    }

    /// Bytes `r` of the arena for writing.
    ///
    /// # Safety
    /// No other live slice (on any thread) may overlap these bytes.
    unsafe fn write_bytes(&self, r: Range<usize>) -> Option<&'a mut [u8]> {
        if r.start > r.end || r.end > self.len * 4 {
            return None;
        }
        // SAFETY: in bounds; exclusivity is the caller's guarantee.
        Some(unsafe {
            std::slice::from_raw_parts_mut((self.ptr as *mut u8).add(r.start), r.end - r.start)
        })
    }
}

/// What one thread running one step can read and use: inputs (arena regions that are not
/// the step's outputs, and constants), its own scratch, and the kernel set.
pub(crate) struct Cx<'a> {
    pub k: &'a Kernels,
    arena: Arena<'a>,
    consts: &'a [f32],
    outs: &'a [Out],
    /// This thread's scratch (no other thread touches it).
    pub scratch: &'a mut [f32],
}

impl<'a> Cx<'a> {
    /// The view of one step's run on one thread.
    pub fn new(
        k: &'a Kernels,
        arena: Arena<'a>,
        consts: &'a [f32],
        outs: &'a [Out],
        scratch: &'a mut [f32],
    ) -> Cx<'a> {
        Cx {
            k,
            arena,
            consts,
            outs,
            scratch,
        }
    }

    /// An input region (f32 slots). Errors if it overlaps an output of the running step.
    pub fn get(&self, l: Loc) -> Result<&'a [f32]> {
        let bad = || {
            Error::Unsupported(format!(
                "internal: tensor region {l:?} overlaps the output being written"
            ))
        };
        match l.buf {
            Buf::Const => self.consts.get(l.off..l.off + l.len).ok_or_else(bad),
            Buf::Arena if l.len == 0 => Ok(&[]),
            Buf::Arena => {
                let r = l.off..l.off + l.len;
                if self
                    .outs
                    .iter()
                    .any(|o| o.loc.buf == Buf::Arena && overlaps(&o.slots(), &r))
                {
                    return Err(bad());
                }
                // SAFETY: the region overlaps none of the running step's outputs, the only
                // memory written while this step runs.
                unsafe { self.arena.read(r) }.ok_or_else(bad)
            }
        }
    }

    /// The bytes of an 8-bit input region.
    pub fn bytes(&self, l: Loc) -> Result<&'a [u8]> {
        let s = self.get(Loc {
            len: l.len.div_ceil(4),
            ..l
        })?;
        Ok(&bytemuck::cast_slice(s)[..l.len])
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The parts of a step's outputs that one range of its work units writes.
pub(crate) struct Outs<'a> {
    arena: Arena<'a>,
    outs: &'a [Out],
    units: Range<usize>,
}

impl<'a> Outs<'a> {
    /// The outputs of units `units` of a step whose output regions are `outs`.
    ///
    /// # Safety
    /// While this value lives, no other `Outs` of an overlapping unit range of the same step
    /// may exist, and no other code may access the step's output regions.
    pub unsafe fn new(arena: Arena<'a>, outs: &'a [Out], units: Range<usize>) -> Outs<'a> {
        Outs { arena, outs, units }
    }

    /// The units this value covers.
    pub fn units(&self) -> Range<usize> {
        self.units.clone()
    }

    /// Element span of output `i` that the units write (relative to its region).
    pub fn span(&self, i: usize) -> Range<usize> {
        self.outs.get(i).map_or(0..0, |o| o.span(&self.units))
    }

    fn region(&mut self, i: usize, bytes: bool) -> Result<&mut [u8]> {
        let bad = || Error::Unsupported(format!("internal: step output {i} is not writable"));
        let o = *self.outs.get(i).ok_or_else(bad)?;
        if o.loc.buf != Buf::Arena || o.bytes != bytes || o.cols.is_some() {
            return Err(bad());
        }
        let span = o.span(&self.units);
        let size = if bytes { 1 } else { 4 };
        let base = o.loc.off * 4;
        let r = base + span.start * size..base + span.end * size;
        // SAFETY: the span lies inside output `i`'s region, which no reader touches (`Cx::get`
        // refuses it); other threads hold disjoint unit ranges, whose spans are disjoint
        // (`Out::span` is monotone in the unit index); and the `&mut self` borrow keeps this
        // the only live slice handed out by this value.
        unsafe { self.arena.write_bytes(r) }.ok_or_else(bad)
    }

    /// Output `i` (f32) for these units.
    pub fn f32(&mut self, i: usize) -> Result<&mut [f32]> {
        let b = self.region(i, false)?;
        bytemuck::try_cast_slice_mut(b)
            .map_err(|_| Error::Unsupported("internal: misaligned output region".to_string()))
    }

    /// Output `i` (8-bit) for these units.
    pub fn bytes(&mut self, i: usize) -> Result<&mut [u8]> {
        self.region(i, true)
    }

    /// The columns of column-split output `i` these units write, as a GEMM output from
    /// their first column (`T` f32 or u8, as the region holds).
    pub fn columns<T: bytemuck::Pod>(&mut self, i: usize) -> Result<OutMat<'_, T>> {
        let bad = || Error::Unsupported(format!("internal: step output {i} is not a matrix"));
        let o = *self.outs.get(i).ok_or_else(bad)?;
        let size = std::mem::size_of::<T>();
        let Some(c) = o.cols else { return Err(bad()) };
        if o.loc.buf != Buf::Arena || size != if o.bytes { 1 } else { 4 } {
            return Err(bad());
        }
        let at = |u: usize| u.saturating_mul(o.per_unit).min(c.width);
        let (c0, c1) = (
            at(self.units.start),
            at(self.units.end).max(at(self.units.start)),
        );
        let len = match (c.rows, c1 - c0) {
            (0, _) | (_, 0) => 0,
            (r, w) => (r - 1) * c.ld + w,
        };
        if c0 + len > o.loc.len || c.width > c.ld {
            return Err(bad());
        }
        let start = o.loc.off * 4 + c0 * size;
        if start + len * size > self.arena.len * 4 {
            return Err(bad());
        }
        // SAFETY: the view lies inside output `i`'s region (checked), which no reader touches
        // (`Cx::get` refuses it). Other threads hold disjoint unit ranges, so disjoint column
        // ranges of the same rows: a GEMM writes only its own columns of each row, so no
        // element is written by two threads. The `&mut self` borrow keeps this the only view
        // handed out by this value.
        Ok(unsafe { OutMat::from_raw((self.arena.ptr as *mut u8).add(start) as *mut T, len) })
    }
}
