//! AVX2+FMA direct NHWC convolution, register-tiled: [`PX`] output pixels of one row by up
//! to 16 output channels of a group. Each packed weight vector is loaded once per (tap, input
//! channel) and reused by all pixels of the tile, whose input values are broadcast, so the
//! FMA units rather than the loads set the pace; this matters most for the first 3x3
//! stride-2 layer with 3 input channels, where a pixel-at-a-time loop is latency-bound.
//! Pixels whose window crosses the left or right border run one at a time, skipping padded
//! taps; padded rows are skipped for the whole row. A row's interior that is not a multiple
//! of the tile ends with a tile overlapping its predecessor.

use core::arch::x86_64::*;

use super::{check_lengths, ConvArgs, Operands};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::simd::avx2::{apply_act, lane_mask};
use crate::kernels::simd::vectorised;

/// Lanes of a register.
const LANES: usize = 8;
/// Output pixels per register tile.
const PX: usize = 6;
/// Output channels per tile (two registers).
const CHANNELS: usize = 2 * LANES;

/// Direct convolution for any groups, kernel, stride, dilation and padding.
///
/// Falls back to the scalar kernel when the CPU lacks AVX2 or FMA, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx2` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the geometry.
pub fn conv_direct_6x16(a: ConvArgs<'_>) {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        return super::scalar::conv_direct(a);
    }
    if !check_lengths(&a) {
        return;
    }
    // SAFETY: avx2 and fma were detected just above; `check_lengths` proved x, w, bias, residual
    // and y cover the full geometry.
    unsafe { conv(a) }
}

/// One tile row: image `n`, output row `oy`, group `gi`, channels `start..start+width` of
/// the group, kernel rows `ky` inside the image.
struct Row {
    n: usize,
    oy: usize,
    gi: usize,
    start: usize,
    width: usize,
    ky: std::ops::Range<usize>,
}

/// # Safety
/// AVX2 and FMA must be available and `check_lengths(&a)` must have returned `true`.
#[target_feature(enable = "avx2,fma")]
unsafe fn conv(a: ConvArgs<'_>) {
    let o = Operands::new(a);
    let (g, og) = (o.g, o.og);
    let groups = g.groups.max(1);
    let (ox0, ox1) = g.interior_x();
    for n in 0..g.n {
        for oy in 0..g.oh {
            let ky = g.valid_ky(oy);
            for gi in 0..groups {
                let mut start = 0;
                while start < og {
                    let width = (og - start).min(CHANNELS);
                    let row = Row {
                        n,
                        oy,
                        gi,
                        start,
                        width,
                        ky: ky.clone(),
                    };
                    // SAFETY: forwarded contract; every ox below is < ow and interior
                    // tiles stay inside [ox0, ox1).
                    unsafe {
                        if width > LANES {
                            columns::<2>(&o, &row, ox0, ox1);
                        } else {
                            columns::<1>(&o, &row, ox0, ox1);
                        }
                    }
                    start += width;
                }
            }
        }
    }
}

/// Every output column of one tile row, `R` channel registers wide.
///
/// # Safety
/// As [`conv`]; `row` lies inside the geometry and `[ox0, ox1)` is `g.interior_x()`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn columns<const R: usize>(o: &Operands, row: &Row, ox0: usize, ox1: usize) {
    let mut ox = 0;
    while ox < o.g.ow {
        // SAFETY: forwarded contract; interior tiles lie within [ox0, ox1).
        unsafe {
            if ox >= ox0 && ox + PX <= ox1 {
                tile::<PX, R, false>(o, row, ox);
                ox += PX;
            } else if ox >= ox0 && ox < ox1 && ox1 - ox0 >= PX {
                // The interior remainder: one full tile ending at ox1, overlapping the
                // previous one (its pixels are recomputed to the same values).
                tile::<PX, R, false>(o, row, ox1 - PX);
                ox = ox1;
            } else {
                let border = ox < ox0 || ox >= ox1;
                if border {
                    tile::<1, R, true>(o, row, ox);
                } else {
                    tile::<1, R, false>(o, row, ox);
                }
                ox += 1;
            }
        }
    }
}

/// `P` output pixels starting at column `ox` by `R` channel registers: accumulate every
/// valid tap, then residual, activation and a masked store. With `BORDER`, taps whose input
/// column is padding are skipped (only used with `P == 1`).
///
/// # Safety
/// As [`columns`]; without `BORDER`, columns `ox..ox+P` are interior.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const P: usize, const R: usize, const BORDER: bool>(
    o: &Operands,
    row: &Row,
    ox: usize,
) {
    let g = &o.g;
    let masks: [__m256i; R] = core::array::from_fn(|r| lane_mask(row.width - r * LANES));
    let ch0 = row.gi * o.og + row.start;
    let mut acc = [[_mm256_setzero_ps(); R]; P];
    for r in 0..R {
        // SAFETY: masked lanes are channels ch0.. < o of the bias.
        let b = unsafe { _mm256_maskload_ps(o.bias.add(ch0 + r * LANES), masks[r]) };
        for accp in acc.iter_mut() {
            accp[r] = b;
        }
    }
    let sx = g.sw * g.c;
    for ky in row.ky.clone() {
        let iy = row.oy * g.sh + ky * g.dh - g.pt;
        for kx in 0..g.kw {
            let ix = if BORDER {
                match g.in_x(ox, kx) {
                    Some(ix) => ix,
                    None => continue,
                }
            } else {
                ox * g.sw + kx * g.dw - g.pl
            };
            // SAFETY: (iy, ix) is inside image n, and so is every pixel p < P of the tile
            // (interior columns); the weights of tap (ky, kx) of group gi hold cg rows of
            // og channels.
            unsafe {
                let xp =
                    o.x.add(((row.n * g.h + iy) * g.w + ix) * g.c + row.gi * o.cg);
                let wp =
                    o.w.add(row.gi * o.wg + (ky * g.kw + kx) * o.cg * o.og + row.start);
                for ic in 0..o.cg {
                    let wv: [__m256; R] = core::array::from_fn(|r| {
                        _mm256_maskload_ps(wp.add(ic * o.og + r * LANES), masks[r])
                    });
                    for (p, accp) in acc.iter_mut().enumerate() {
                        let xv = _mm256_set1_ps(*xp.add(p * sx + ic));
                        for r in 0..R {
                            accp[r] = _mm256_fmadd_ps(xv, wv[r], accp[r]);
                        }
                    }
                }
            }
        }
    }
    let vec_act = vectorised(o.act);
    for (p, accp) in acc.iter().enumerate() {
        let off = ((row.n * g.oh + row.oy) * g.ow + ox + p) * g.o + ch0;
        for r in 0..R {
            let mut v = accp[r];
            // SAFETY: masked lanes are channels ch0.. < o of output pixel ox+p, inside y
            // and residual.
            unsafe {
                if let Some(res) = o.residual {
                    v = _mm256_add_ps(v, _mm256_maskload_ps(res.add(off + r * LANES), masks[r]));
                }
                if vec_act {
                    v = apply_act(o.act, v);
                }
                _mm256_maskstore_ps(o.y.add(off + r * LANES), masks[r], v);
            }
        }
        if !vec_act {
            // SAFETY: y[off..off+width] was just written and is inside y; no other
            // reference to it is live.
            activation(o.act, unsafe {
                std::slice::from_raw_parts_mut(o.y.add(off), row.width)
            });
        }
    }
}
