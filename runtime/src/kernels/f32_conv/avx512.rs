//! AVX-512 NHWC convolution, register-tiled: [`PX`] output pixels (a row-major run, see
//! [`super::for_each_tile`]) by up to 32 output channels of a group. Each packed weight vector
//! is loaded once per (tap, input channel) and reused by all pixels of the tile, whose input
//! values are broadcast, so the FMA units rather than the loads set the pace. Run tiles (one
//! row, no padded columns) read their pixels at a fixed stride, a whole kernel row at a time
//! when it is contiguous; border tiles read each pixel through its own pointer, the zero row
//! where a tap is padding, so border pixels and small maps also run full tiles.

use core::arch::x86_64::*;

use super::{check_lengths, for_each_tile, ConvArgs, Operands, Tile};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::simd::avx512::{apply_act, lane_mask};
use crate::kernels::simd::vectorised;

/// Lanes of a register.
const LANES: usize = 16;
/// Output pixels per register tile.
const PX: usize = 8;
/// Output channels per tile (two registers).
const CHANNELS: usize = 2 * LANES;

/// Direct convolution for any groups, kernel, stride, dilation and padding.
///
/// Falls back to the scalar kernel when the CPU lacks AVX-512F, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx512` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the geometry.
pub fn conv_direct_8x32(a: ConvArgs<'_>) {
    if !(std::arch::is_x86_feature_detected!("avx512f")) {
        return super::scalar::conv_direct(a);
    }
    if !check_lengths(&a) {
        return;
    }
    // SAFETY: AVX-512F was detected just above; `check_lengths` proved x, w, bias,
    // residual and y cover the full geometry.
    unsafe { conv(&Operands::new(a)) }
}

/// # Safety
/// AVX-512F must be available and `check_lengths` must have returned `true` for the
/// arguments `o` views.
#[target_feature(enable = "avx512f")]
unsafe fn conv(o: &Operands) {
    // What padded taps of border tiles read.
    let zeros = vec![0.0; o.cg];
    for_each_tile::<PX>(&o.g, CHANNELS, |t| {
        // SAFETY: forwarded contract; the tile lies inside the geometry.
        unsafe {
            match (t.run_stride, t.width > LANES) {
                (Some(sx), true) => run_tile::<2>(o, t, sx),
                (Some(sx), false) => run_tile::<1>(o, t, sx),
                (None, true) => border_tile::<2>(o, t, &zeros),
                (None, false) => border_tile::<1>(o, t, &zeros),
            }
        }
    });
}

/// `acc[p][r] += x · w[ic][r]` for `ic < len`, with `x` pixel `p`'s input value `ic` and
/// `w` the packed weights at `wp` (rows `og` apart): one step of taps of a tile, written out
/// in place so the accumulators stay in registers.
macro_rules! fma_step {
    ($acc:ident, $wp:expr, $masks:expr, $og:expr, $len:expr, |$p:ident, $ic:ident| $x:expr) => {
        for $ic in 0..$len {
            let wv: [__m512; R] = core::array::from_fn(|r| {
                _mm512_maskz_loadu_ps($masks[r], $wp.add($ic * $og + r * LANES))
            });
            for ($p, accp) in $acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps($x);
                for r in 0..R {
                    accp[r] = _mm512_fmadd_ps(xv, wv[r], accp[r]);
                }
            }
        }
    };
}

/// A run tile by `R` channel registers: pixel `p` reads `sx · p` after the first.
///
/// # Safety
/// As [`conv`]; `t` is a run tile from [`for_each_tile`] on the same geometry, with
/// `16 * (R - 1) < t.width <= 16 * R`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn run_tile<const R: usize>(o: &Operands, t: &Tile<PX>, sx: usize) {
    let masks: [__mmask16; R] = core::array::from_fn(|r| lane_mask(t.width - r * LANES));
    // SAFETY: forwarded contract.
    let mut acc = unsafe { bias::<R>(o, t, &masks) };
    let step = o.taps_per_step(t);
    for ky in 0..o.g.kh {
        for kx in (0..o.g.kw).step_by(step) {
            let Some(xp) = o.run_input(t, ky, kx) else {
                continue;
            };
            let wp = o.tap_weights(t, ky, kx);
            // SAFETY: pixel p of a run tile reads step·cg channels sx·p after pixel 0, inside
            // the same image row; the packed weights of those taps are step·cg rows of og
            // channels, of which start..start+width are read.
            unsafe {
                fma_step!(acc, wp, masks, o.og, step * o.cg, |p, ic| *xp
                    .add(p * sx + ic))
            };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store::<R>(o, t, &acc, &masks) };
}

/// A border tile by `R` channel registers: each pixel reads every tap through its own
/// pointer, the zero row where the tap is padding; taps that are padding for the whole tile
/// are skipped.
///
/// # Safety
/// As [`run_tile`], for any tile.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn border_tile<const R: usize>(o: &Operands, t: &Tile<PX>, zeros: &[f32]) {
    let masks: [__mmask16; R] = core::array::from_fn(|r| lane_mask(t.width - r * LANES));
    // SAFETY: forwarded contract.
    let mut acc = unsafe { bias::<R>(o, t, &masks) };
    let px = t.pixels(&o.g);
    for ky in 0..o.g.kh {
        for kx in 0..o.g.kw {
            let Some(rows) = o.tap_pointers(t, &px, (ky, kx), zeros) else {
                continue;
            };
            let wp = o.tap_weights(t, ky, kx);
            // SAFETY: every row pointer holds cg channels, a pixel of the input or the zero
            // row; the weights of tap (ky, kx) of group gi are cg rows of og channels.
            unsafe { fma_step!(acc, wp, masks, o.og, o.cg, |p, ic| *rows[p].add(ic)) };
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store::<R>(o, t, &acc, &masks) };
}

/// The tile's accumulators, each pixel starting from the bias.
///
/// # Safety
/// As [`run_tile`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn bias<const R: usize>(
    o: &Operands,
    t: &Tile<PX>,
    masks: &[__mmask16; R],
) -> [[__m512; R]; PX] {
    let ch0 = t.gi * o.og + t.start;
    // SAFETY: masked lanes are channels ch0.. < o of the bias.
    let b: [__m512; R] = core::array::from_fn(|r| unsafe {
        _mm512_maskz_loadu_ps(masks[r], o.bias.add(ch0 + r * LANES))
    });
    [b; PX]
}

/// Residual, activation and the masked store of a finished tile.
///
/// # Safety
/// As [`run_tile`].
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const R: usize>(
    o: &Operands,
    t: &Tile<PX>,
    acc: &[[__m512; R]; PX],
    masks: &[__mmask16; R],
) {
    let vec_act = vectorised(o.act);
    for (off, accp) in t.out_offsets(&o.g).into_iter().zip(acc) {
        for r in 0..R {
            let mut v = accp[r];
            // SAFETY: masked lanes are channels of an output pixel, inside y and residual.
            unsafe {
                if let Some(res) = o.residual {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[r], res.add(off + r * LANES)));
                }
                if vec_act {
                    v = apply_act(o.act, v);
                }
                _mm512_mask_storeu_ps(o.y.add(off + r * LANES), masks[r], v);
            }
        }
        if !vec_act {
            // SAFETY: y[off..off+width] was just written and is inside y; no other
            // reference to it is live.
            activation(o.act, unsafe {
                std::slice::from_raw_parts_mut(o.y.add(off), t.width)
            });
        }
    }
}
