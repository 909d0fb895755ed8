//! f32 dense and grouped 2-D convolution on NHWC activations (direct, no im2col).
//!
//! Weights are packed `[groups][kh][kw][cin/g][cout/g]` ([`pack_weights`]) so the innermost
//! loop runs over contiguous output channels of one group. The AVX-512 kernel tiles with
//! [`for_each_tile`]: a register tile is a run of output pixels by a block of output
//! channels. Tiles whose windows stay clear of the left and right padding read their pixels
//! at a fixed stride; the others read each pixel through its own input offset
//! ([`Tile::tap_rows`]), a row of zeros standing in for the padding, and on maps narrower
//! than a tile (ResNet's 7x7 stage) tiles run across row ends. Border pixels and small maps
//! thus run full tiles instead of latency-bound single pixels. The AVX2 and NEON kernels
//! still tile within rows and run border pixels one at a time.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
pub mod neon;
pub mod scalar;

use super::Act;

/// Geometry of a 2-D window operation on NHWC tensors (shared by conv, dwconv and pools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvGeom {
    /// Batch.
    pub n: usize,
    /// Input height, width, channels.
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Output height, width, channels.
    pub oh: usize,
    pub ow: usize,
    pub o: usize,
    /// Kernel, stride, dilation.
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Top and left padding (bottom/right are implied by the output size).
    pub pt: usize,
    pub pl: usize,
    /// Convolution groups (1 for pools).
    pub groups: usize,
}

impl ConvGeom {
    /// Input rows `iy` of output row `oy` tap `ky`, or `None` when in the padding.
    #[inline(always)]
    pub fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky * self.dh)
            .checked_sub(self.pt)
            .filter(|&v| v < self.h)
    }
    /// Kernel rows `ky_lo..ky_hi` whose input row is inside the image for output row `oy`
    /// (a contiguous range; empty when every tap is padding).
    pub fn valid_ky(&self, oy: usize) -> std::ops::Range<usize> {
        let mut valid = (0..self.kh).filter(|&ky| self.in_y(oy, ky).is_some());
        match valid.next() {
            Some(lo) => lo..valid.next_back().unwrap_or(lo) + 1,
            None => 0..0,
        }
    }
    /// Output columns `[lo, hi)` whose taps all fall inside the input row (no padding).
    pub fn interior_x(&self) -> (usize, usize) {
        interior(self.ow, self.sw, self.dw, self.kw, self.pl, self.w)
    }
    /// Input column of output column `ox` tap `kx`, or `None` when in the padding.
    #[inline(always)]
    pub fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.sw + kx * self.dw)
            .checked_sub(self.pl)
            .filter(|&v| v < self.w)
    }
}

/// Output positions `[lo, hi)` along one axis (output size `out`, stride `s`, dilation `d`,
/// kernel `k`, leading padding `pad`, input size `size`) whose taps all fall inside the input.
pub fn interior(
    out: usize,
    s: usize,
    d: usize,
    k: usize,
    pad: usize,
    size: usize,
) -> (usize, usize) {
    if s == 0 || k == 0 {
        return (0, 0);
    }
    let ext = (k - 1).saturating_mul(d);
    let limit = size.saturating_add(pad);
    if limit <= ext {
        return (0, 0);
    }
    // Need o*s >= pad and o*s + ext < size + pad.
    let hi = ((limit - ext - 1) / s + 1).min(out);
    (pad.div_ceil(s).min(hi), hi)
}

/// One register tile: `P` output pixels of image `n` consecutive in row-major order from
/// `(oy, ox)` on (within one row when rows are at least `P` wide, the last tile of a row
/// overlapping its predecessor; otherwise across row ends, a map with fewer pixels than the
/// tile repeating its last pixel), by channels `start..start + width` of group `gi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile<const P: usize> {
    pub n: usize,
    pub gi: usize,
    pub start: usize,
    pub width: usize,
    /// The first pixel.
    pub oy: usize,
    pub ox: usize,
    /// The group's first input channel, and the tile's first output channel.
    in_channel: usize,
    out_channel: usize,
    /// For a run tile (pixels of one row whose taps never fall into the left or right
    /// padding): the distance in `x` between neighbouring pixels' windows.
    pub run_stride: Option<usize>,
}

impl<const P: usize> Tile<P> {
    /// The tile of channels `start..start + width` of group `gi` (of `cg` input and `og`
    /// output channels) whose first pixel is `(y, x)`.
    #[inline(always)]
    fn new(
        g: &ConvGeom,
        n: usize,
        (gi, cg, og): (usize, usize, usize),
        start: usize,
        width: usize,
        (y, x): (usize, usize),
    ) -> Self {
        let reach = (g.kw.max(1) - 1) * g.dw;
        let one_row = x + P <= g.ow;
        let interior = x * g.sw >= g.pl && (x + P - 1) * g.sw + reach < g.w + g.pl;
        Tile {
            n,
            gi,
            start,
            width,
            oy: y,
            ox: x,
            in_channel: gi * cg,
            out_channel: gi * og + start,
            run_stride: (one_row && interior).then_some(g.sw * g.c),
        }
    }

    /// Offset in `x` of the group's first input channel at input pixel `(iy, ix)`.
    #[inline(always)]
    fn input_offset(&self, g: &ConvGeom, iy: usize, ix: usize) -> usize {
        ((self.n * g.h + iy) * g.w + ix) * g.c + self.in_channel
    }

    /// For a run tile: the offset in `x` of the group's first input channel that the first
    /// pixel reads at tap `(ky, kx)` (pixel `p` reads `p · run_stride` further on), `None`
    /// when that tap row is padding.
    #[inline(always)]
    pub fn run_tap(&self, g: &ConvGeom, ky: usize, kx: usize) -> Option<usize> {
        let iy = g.in_y(self.oy, ky)?;
        let ix = self.ox * g.sw + kx * g.dw - g.pl;
        Some(self.input_offset(g, iy, ix))
    }

    /// Every pixel `(oy, ox)` of the tile.
    pub fn pixels(&self, g: &ConvGeom) -> [(usize, usize); P] {
        let mut px = [(self.oy, self.ox); P];
        for p in 1..P {
            let (y, x) = px[p - 1];
            px[p] = match (x + 1 == g.ow, y + 1 == g.oh) {
                (false, _) => (y, x + 1),
                (true, false) => (y + 1, 0),
                // Fewer pixels than the tile: repeat the last one.
                (true, true) => (y, x),
            };
        }
        px
    }

    /// Offset in `x` of the group's first input channel that each pixel of `px`
    /// ([`Tile::pixels`]) reads at tap `(ky, kx)`, `None` for a pixel whose tap is padding;
    /// `None` overall when every pixel's tap is padding.
    #[inline(always)]
    pub fn tap_rows(
        &self,
        g: &ConvGeom,
        px: &[(usize, usize); P],
        ky: usize,
        kx: usize,
    ) -> Option<[Option<usize>; P]> {
        let mut any = false;
        let rows = core::array::from_fn(|p| {
            let (oy, ox) = px[p];
            let off = self.input_offset(g, g.in_y(oy, ky)?, g.in_x(ox, kx)?);
            any = true;
            Some(off)
        });
        any.then_some(rows)
    }

    /// Offset in `y` (and the residual) of the tile's first channel at output pixel `(oy, ox)`.
    #[inline(always)]
    pub fn out_offset(&self, g: &ConvGeom, (oy, ox): (usize, usize)) -> usize {
        ((self.n * g.oh + oy) * g.ow + ox) * g.o + self.out_channel
    }

    /// Offsets in `y` of the tile's first channel at each of its pixels.
    #[inline(always)]
    pub fn out_offsets(&self, g: &ConvGeom) -> [usize; P] {
        match self.run_stride {
            Some(_) => {
                let first = self.out_offset(g, (self.oy, self.ox));
                core::array::from_fn(|p| first + p * g.o)
            }
            None => self.pixels(g).map(|px| self.out_offset(g, px)),
        }
    }
}

/// Call `f` on every tile of `g`: `P` output pixels by at most `channels` output channels of
/// one group, channel blocks outermost so a block's weights stay in cache across all pixels.
pub fn for_each_tile<const P: usize>(g: &ConvGeom, channels: usize, mut f: impl FnMut(&Tile<P>)) {
    let groups = g.groups.max(1);
    let (cg, og) = (g.c / groups, g.o / groups);
    let pixels = g.oh * g.ow;
    if pixels == 0 || P == 0 {
        return;
    }
    for n in 0..g.n {
        for gi in 0..groups {
            let mut start = 0;
            while start < og {
                let width = (og - start).min(channels);
                if g.ow >= P {
                    // Tiles within each row, the last overlapping its predecessor: only
                    // the row ends can touch the left or right padding.
                    for y in 0..g.oh {
                        let mut x = 0;
                        while x < g.ow {
                            f(&Tile::new(
                                g,
                                n,
                                (gi, cg, og),
                                start,
                                width,
                                (y, x.min(g.ow - P)),
                            ));
                            x += P;
                        }
                    }
                } else {
                    // Rows narrower than a tile: tiles run across row ends, the last one
                    // starting at `pixels - P` (or at 0 for a map smaller than a tile).
                    let (mut y, mut x, mut first) = (0, 0, 0);
                    while first < pixels {
                        if first + P > pixels {
                            let last = pixels.saturating_sub(P);
                            (y, x) = (last / g.ow, last % g.ow);
                        }
                        f(&Tile::new(g, n, (gi, cg, og), start, width, (y, x)));
                        first += P;
                        x += P;
                        while x >= g.ow {
                            (y, x) = (y + 1, x - g.ow);
                        }
                    }
                }
                start += width;
            }
        }
    }
}

/// Raw view of a convolution's operands for the x86 kernels (pointers proven in range by
/// [`check_lengths`]).
#[cfg(target_arch = "x86_64")]
pub(super) struct Operands {
    pub(super) g: ConvGeom,
    /// Input and output channels per group, packed weights per group.
    pub(super) cg: usize,
    pub(super) og: usize,
    pub(super) wg: usize,
    pub(super) x: *const f32,
    pub(super) w: *const f32,
    pub(super) bias: *const f32,
    pub(super) residual: Option<*const f32>,
    pub(super) y: *mut f32,
    pub(super) act: Act,
}

#[cfg(target_arch = "x86_64")]
impl Operands {
    /// The raw view of `a` (check it with [`check_lengths`] before dereferencing).
    pub(super) fn new(a: ConvArgs<'_>) -> Operands {
        let g = *a.g;
        let groups = g.groups.max(1);
        let (cg, og) = (g.c / groups, g.o / groups);
        Operands {
            g,
            cg,
            og,
            wg: g.kh * g.kw * cg * og,
            x: a.x.as_ptr(),
            w: a.w.as_ptr(),
            bias: a.bias.as_ptr(),
            residual: a.residual.map(|r| r.as_ptr()),
            y: a.y.as_mut_ptr(),
            act: a.act,
        }
    }

    /// Pointers to the `cg` input channels each pixel `px` of `t` reads at tap `(ky, kx)`
    /// (`zeros`, a row of `cg` zeros, for padding), or `None` when the whole tile is padding
    /// there.
    #[inline(always)]
    pub(super) fn tap_pointers<const P: usize>(
        &self,
        t: &Tile<P>,
        px: &[(usize, usize); P],
        (ky, kx): (usize, usize),
        zeros: &[f32],
    ) -> Option<[*const f32; P]> {
        let rows = t.tap_rows(&self.g, px, ky, kx)?;
        Some(rows.map(|r| match r {
            Some(off) => self.x.wrapping_add(off),
            None => zeros.as_ptr(),
        }))
    }

    /// Taps of a kernel row that tile `t` reads per step: a run tile with one group and no
    /// column dilation reads a whole kernel row as one contiguous stretch of input (and of
    /// packed weights); other tiles read one tap at a time.
    pub(super) fn taps_per_step<const P: usize>(&self, t: &Tile<P>) -> usize {
        if t.run_stride.is_some() && self.g.groups.max(1) == 1 && self.g.dw == 1 {
            self.g.kw.max(1)
        } else {
            1
        }
    }

    /// For a tile with a [`Tile::run_stride`]: pointer to the input pixel 0 reads from tap
    /// `(ky, kx)` on, `None` when that tap row is padding.
    #[inline(always)]
    pub(super) fn run_input<const P: usize>(
        &self,
        t: &Tile<P>,
        ky: usize,
        kx: usize,
    ) -> Option<*const f32> {
        Some(self.x.wrapping_add(t.run_tap(&self.g, ky, kx)?))
    }

    /// Pointer to the packed weights of tap `(ky, kx)` for the channels of tile `t`.
    #[inline(always)]
    pub(super) fn tap_weights<const P: usize>(
        &self,
        t: &Tile<P>,
        ky: usize,
        kx: usize,
    ) -> *const f32 {
        self.w
            .wrapping_add(t.gi * self.wg + (ky * self.g.kw + kx) * self.cg * self.og + t.start)
    }
}

/// Arguments of a convolution call. `x` is `[n,h,w,c]`, `y` and `residual` are `[n,oh,ow,o]`.
pub struct ConvArgs<'a> {
    pub g: &'a ConvGeom,
    pub x: &'a [f32],
    /// Packed weights (layout defined by the kernel family).
    pub w: &'a [f32],
    /// Bias of length `o` (zeros when the op has none).
    pub bias: &'a [f32],
    pub residual: Option<&'a [f32]>,
    pub y: &'a mut [f32],
    pub act: Act,
}

/// Signature of a dense / grouped convolution kernel.
pub type ConvFn = fn(ConvArgs<'_>);

/// Pack OIHW weights (`[o][c/g][kh][kw]`) into `[g][kh][kw][c/g][o/g]`.
pub fn pack_weights(g: &ConvGeom, oihw: &[f32]) -> Vec<f32> {
    let groups = g.groups.max(1);
    let (cg, og) = (g.c / groups, g.o / groups);
    let mut out = vec![0.0; oihw.len()];
    for gi in 0..groups {
        for oc in 0..og {
            for ic in 0..cg {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let src = (((gi * og + oc) * cg + ic) * g.kh + ky) * g.kw + kx;
                        let dst = (((gi * g.kh + ky) * g.kw + kx) * cg + ic) * og + oc;
                        out[dst] = oihw[src];
                    }
                }
            }
        }
    }
    out
}

/// Assert that every slice of `a` covers its geometry (the SIMD kernels' pointer arithmetic
/// relies on it); `false` when there is nothing to compute.
pub fn check_lengths(a: &ConvArgs<'_>) -> bool {
    let g = a.g;
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .expect("conv: tensor size overflows usize")
    };
    let groups = g.groups.max(1);
    assert!(
        g.c.is_multiple_of(groups) && g.o.is_multiple_of(groups),
        "conv: channels not divisible by groups"
    );
    let out = prod(&[g.n, g.oh, g.ow, g.o]);
    if out == 0 {
        return false;
    }
    assert!(
        a.x.len() >= prod(&[g.n, g.h, g.w, g.c]),
        "conv: x too short"
    );
    assert!(
        a.w.len() >= prod(&[g.kh, g.kw, g.c / groups, g.o]),
        "conv: weights too short"
    );
    assert!(a.bias.len() >= g.o, "conv: bias too short");
    assert!(a.y.len() >= out, "conv: y too short");
    if let Some(r) = a.residual {
        assert!(r.len() >= out, "conv: residual too short");
    }
    true
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The direct convolution kernels, best first (see [`super::registry::select`]).
pub static CONV: &[Entry<ConvFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_conv::avx512::conv_direct_8x32, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_conv::avx2::conv_direct_6x16, needs = [Avx2, Fma]),
    #[cfg(target_arch = "aarch64")]
    kernel!(f32_conv::neon::conv_direct_6x16, needs = [Neon]),
    #[cfg(all(target_arch = "arm", ferrolite_arm_neon))]
    kernel!(f32_conv::neon::conv_direct_4x8, needs = [Neon]),
    kernel!(f32_conv::scalar::conv_direct),
];
