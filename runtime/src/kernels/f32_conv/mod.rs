//! f32 dense and grouped 2-D convolution on NHWC activations (direct, no im2col).
//!
//! Weights are packed `[groups][kh][kw][cin/g][cout/g]` ([`pack_weights`]) so the innermost
//! loop runs over contiguous output channels of one group.

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
