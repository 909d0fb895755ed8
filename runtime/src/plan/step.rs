//! The step interface every op family implements: a step owns its parameters (packed
//! weights, geometry, regions), says what its outputs are and how its work divides into
//! units, and runs any range of those units. The executor hands disjoint unit ranges to
//! threads; a unit's results never depend on which range it ran in, so any thread count
//! gives the same bytes.

use std::fmt::Debug;
use std::ops::Range;

use super::arena::{Cx, Out, Outs};
use crate::error::Result;
use crate::kernels::f32_conv::ConvGeom;

/// How a step's work divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// Independent units (output rows, blocks of elements, ...); `run` takes any sub-range.
    pub units: usize,
    /// Fewest units worth giving a thread (a register tile of rows, a few cache lines).
    pub grain: usize,
    /// Estimated single-thread time of the whole step in nanoseconds, from its
    /// multiply-accumulates and bytes moved: too small a step stays on the calling thread.
    pub cost_ns: u64,
}

/// Multiply-accumulates per nanosecond assumed by [`Work::compute`] (about what one core's
/// vector kernels sustain), and bytes per nanosecond by [`Work::moves`].
const MACS_PER_NS: u64 = 40;
const BYTES_PER_NS: u64 = 16;

impl Work {
    /// Work that does not split (one unit).
    pub fn single() -> Work {
        Work {
            units: 1,
            grain: 1,
            cost_ns: 0,
        }
    }

    /// Work of `macs` multiply-accumulates reading and writing `bytes` over `units`: its cost
    /// is whichever bound is higher (a single-row GEMM is bound by streaming its weights).
    pub fn compute(units: usize, grain: usize, macs: u64, bytes: u64) -> Work {
        Work {
            units,
            grain: grain.max(1),
            cost_ns: (macs / MACS_PER_NS).max(bytes / BYTES_PER_NS),
        }
    }

    /// Memory-bound work moving `bytes` (read plus written) over `units`.
    pub fn moves(units: usize, grain: usize, bytes: u64) -> Work {
        Work {
            units,
            grain: grain.max(1),
            cost_ns: bytes / BYTES_PER_NS,
        }
    }

    /// The range of units of part `t` of `parts`: contiguous, in order, boundaries on
    /// multiples of the grain, together covering every unit.
    pub fn part(&self, t: usize, parts: usize) -> Range<usize> {
        let chunks = self.units.div_ceil(self.grain);
        let at = |p: usize| (p * chunks / parts.max(1) * self.grain).min(self.units);
        at(t)..at(t + 1)
    }
}

/// One executable step.
pub(crate) trait Step: Send + Sync + Debug {
    /// The regions the step writes and how its units map onto them (see [`Out`]).
    fn outs(&self) -> Vec<Out>;
    /// How the work divides.
    fn work(&self) -> Work;
    /// f32 slots of scratch one thread needs to run any range of units.
    fn scratch(&self) -> usize {
        0
    }
    /// Run units `units` (a sub-range of `0..work().units`), writing their part of the
    /// outputs through `out`.
    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()>;
}

/// A contiguous range of output rows of one image of a window op, as a geometry of its own.
#[derive(Debug, Clone)]
pub(crate) struct RowBand {
    /// Image index.
    pub image: usize,
    /// First output row (in the image).
    pub oy0: usize,
    /// The band's geometry: `n = 1`, `oh` its rows, `h` and `pt` over its input rows.
    pub geom: ConvGeom,
    /// Input rows `lo..hi` of the image that the band reads.
    pub rows: Range<usize>,
}

impl RowBand {
    /// Output rows `oy0..oy1` of image `image` of `g`.
    pub fn new(g: &ConvGeom, image: usize, oy0: usize, oy1: usize) -> RowBand {
        let reach = g.kh.saturating_sub(1) * g.dh + 1;
        let lo = (oy0 * g.sh).saturating_sub(g.pt).min(g.h);
        let hi = ((oy1.max(oy0 + 1) - 1) * g.sh + reach)
            .saturating_sub(g.pt)
            .min(g.h)
            .max(lo);
        RowBand {
            image,
            oy0,
            geom: ConvGeom {
                n: 1,
                h: hi - lo,
                oh: oy1 - oy0,
                // Rows wholly in the bottom padding read nothing (h is 0), whatever pt is.
                pt: (g.pt + lo).saturating_sub(oy0 * g.sh),
                ..*g
            },
            rows: lo..hi,
        }
    }

    /// Offset (elements) of the band's first input row, for `c` input channels.
    pub fn x_offset(&self, g: &ConvGeom) -> usize {
        (self.image * g.h + self.rows.start) * g.w * g.c
    }

    /// Elements of the band's input rows (of every image it covers).
    pub fn x_len(&self, g: &ConvGeom) -> usize {
        self.geom.n * self.rows.len() * g.w * g.c
    }

    /// Offset (elements) of the band's first output row, for `ch` output channels.
    pub fn y_offset(&self, g: &ConvGeom, ch: usize) -> usize {
        (self.image * g.oh + self.oy0) * g.ow * ch
    }

    /// Elements of the band's output rows, for `ch` output channels.
    pub fn y_len(&self, ch: usize) -> usize {
        self.geom.n * self.geom.oh * self.geom.ow * ch
    }
}

/// Cut output rows `units` (over `n * oh`, image-major) of `g` into per-image bands, or one
/// whole-batch geometry when the range is every row (so a one-thread run makes the same
/// single kernel call as before rows could be split).
pub(crate) fn row_bands(g: &ConvGeom, units: Range<usize>, mut f: impl FnMut(&RowBand)) {
    let oh = g.oh.max(1);
    if units.start == 0 && units.end >= g.n * g.oh {
        f(&RowBand {
            image: 0,
            oy0: 0,
            geom: *g,
            rows: 0..g.h,
        });
        return;
    }
    let mut u = units.start;
    while u < units.end {
        let (image, oy0) = (u / oh, u % oh);
        let oy1 = (oy0 + (units.end - u)).min(oh);
        f(&RowBand::new(g, image, oy0, oy1));
        u += oy1 - oy0;
    }
}

/// Units of a block-split flat step of `len` elements, `block` per unit.
pub(crate) fn blocks(len: usize, block: usize) -> usize {
    len.div_ceil(block.max(1))
}
