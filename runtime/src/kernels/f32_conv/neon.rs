//! NEON direct NHWC convolution, register-tiled like the AVX2 kernel: [`PX`] output pixels
//! of one row by up to [`CHANNELS`] output channels of a group (6x16 on aarch64 with its 32
//! vector registers, 4x8 on 32-bit ARM with 16). Each packed weight vector is loaded once per
//! (tap, input channel) and reused by every pixel of the tile, whose input value is
//! broadcast, so the multiply-adds rather than the loads set the pace (this matters most for
//! the 3-channel stem conv). Pixels whose window crosses the left or right border run one at
//! a time, skipping padded taps; padded rows are skipped for the whole row. A row's interior
//! that is not a multiple of the tile ends with a tile overlapping its predecessor. Channel
//! counts that are not a multiple of 4 end with a partial vector (loads and stores through a
//! small stack buffer, so nothing outside the tensors is touched).

use super::{check_lengths, ConvArgs, ConvGeom};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::neon_ops::{self as v, F32x4, VecAct};
use crate::kernels::Act;

/// Lanes of a register.
const LANES: usize = 4;
/// Output pixels per register tile.
#[cfg(target_arch = "aarch64")]
const PX: usize = 6;
#[cfg(target_arch = "arm")]
const PX: usize = 4;
/// Channel registers per tile row.
#[cfg(target_arch = "aarch64")]
const G: usize = 4;
#[cfg(target_arch = "arm")]
const G: usize = 2;
/// Output channels per tile.
const CHANNELS: usize = G * LANES;

/// NEON direct convolution with 6-pixel by 16-channel tiles (aarch64), for any groups,
/// kernel, stride, dilation and padding. Panics (like the scalar kernel) when a slice is too
/// short for the geometry.
#[cfg(target_arch = "aarch64")]
pub fn conv_direct_6x16(a: ConvArgs<'_>) {
    conv(a)
}

/// NEON direct convolution with 4-pixel by 8-channel tiles (32-bit ARM), for any groups,
/// kernel, stride, dilation and padding. Panics (like the scalar kernel) when a slice is too
/// short for the geometry.
#[cfg(target_arch = "arm")]
pub fn conv_direct_4x8(a: ConvArgs<'_>) {
    conv(a)
}

/// Raw view of the operands (pointers proven in range by [`check_lengths`]).
struct Ops {
    g: ConvGeom,
    /// Input and output channels per group, packed weights per group.
    cg: usize,
    og: usize,
    wg: usize,
    x: *const f32,
    w: *const f32,
    bias: *const f32,
    residual: Option<*const f32>,
    y: *mut f32,
    act: Act,
    vact: Option<VecAct>,
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

fn conv(a: ConvArgs<'_>) {
    if !check_lengths(&a) {
        return;
    }
    let g = *a.g;
    let groups = g.groups.max(1);
    let (cg, og) = (g.c / groups, g.o / groups);
    let o = Ops {
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
        vact: VecAct::of(a.act),
    };
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
                    // SAFETY: check_lengths proved x, w, bias, residual and y cover the
                    // geometry; the row lies inside it, `[ox0, ox1)` is its interior and
                    // `width` <= 4 * the register count chosen here.
                    unsafe {
                        match width.div_ceil(LANES) {
                            #[cfg(target_arch = "aarch64")]
                            4 => columns::<4>(&o, &row, ox0, ox1),
                            #[cfg(target_arch = "aarch64")]
                            3 => columns::<3>(&o, &row, ox0, ox1),
                            2 => columns::<2>(&o, &row, ox0, ox1),
                            _ => columns::<1>(&o, &row, ox0, ox1),
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
/// `check_lengths` held for the operands of `o`, `row` lies inside the geometry, `[ox0, ox1)`
/// is `g.interior_x()` and `4 * (R - 1) < row.width <= 4 * R`.
#[inline(always)]
unsafe fn columns<const R: usize>(o: &Ops, row: &Row, ox0: usize, ox1: usize) {
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
            } else if ox < ox0 || ox >= ox1 {
                tile::<1, R, true>(o, row, ox);
                ox += 1;
            } else {
                tile::<1, R, false>(o, row, ox);
                ox += 1;
            }
        }
    }
}

/// Channel register `r` of a tile row `R` registers wide at `p` (its first channel): full,
/// or the `last` lanes of the final register.
///
/// # Safety
/// `p..p + 4 * (R - 1) + last` must be readable, with `r < R` and `1 <= last <= 4`.
#[inline(always)]
unsafe fn load<const R: usize>(p: *const f32, r: usize, last: usize) -> F32x4 {
    // SAFETY: caller contract; only the last register may be partial.
    unsafe {
        if r + 1 == R && last < LANES {
            v::load_partial(p.add(r * LANES), last)
        } else {
            v::load(p.add(r * LANES))
        }
    }
}

/// `P` output pixels starting at column `ox` by `R` channel registers: bias, every valid
/// tap, then residual, activation and the store of `row.width` channels. With `BORDER`, taps
/// whose input column is padding are skipped (only used with `P == 1`).
///
/// # Safety
/// As [`columns`]; `ox + P <= ow`, and without `BORDER` columns `ox..ox+P` are interior.
#[inline(always)]
unsafe fn tile<const P: usize, const R: usize, const BORDER: bool>(o: &Ops, row: &Row, ox: usize) {
    let g = &o.g;
    // Lanes of the last register (the others are full).
    let last = row.width - (R - 1) * LANES;
    let ch0 = row.gi * o.og + row.start;
    // SAFETY: channels ch0..ch0+width < o of the bias.
    let b: [F32x4; R] = core::array::from_fn(|r| unsafe { load::<R>(o.bias.add(ch0), r, last) });
    let mut acc = [b; P];
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
            // og channels, of which start..start+width are read.
            unsafe {
                let xp =
                    o.x.add(((row.n * g.h + iy) * g.w + ix) * g.c + row.gi * o.cg);
                let wp =
                    o.w.add(row.gi * o.wg + (ky * g.kw + kx) * o.cg * o.og + row.start);
                for ic in 0..o.cg {
                    let wv: [F32x4; R] =
                        core::array::from_fn(|r| load::<R>(wp.add(ic * o.og), r, last));
                    for (p, accp) in acc.iter_mut().enumerate() {
                        let xv = v::load_dup(xp.add(p * sx + ic));
                        for r in 0..R {
                            accp[r] = v::mul_add(accp[r], xv, wv[r]);
                        }
                    }
                }
            }
        }
    }
    for (p, accp) in acc.iter().enumerate() {
        let off = ((row.n * g.oh + row.oy) * g.ow + ox + p) * g.o + ch0;
        for (r, &a) in accp.iter().enumerate() {
            let mut x = a;
            // SAFETY: channels ch0..ch0+width < o of output pixel ox+p, inside y and
            // residual.
            unsafe {
                if let Some(res) = o.residual {
                    x = v::add(x, load::<R>(res.add(off), r, last));
                }
                if let Some(va) = o.vact {
                    x = va.apply(x);
                }
                if r + 1 == R && last < LANES {
                    v::store_partial(o.y.add(off + r * LANES), x, last);
                } else {
                    v::store(o.y.add(off + r * LANES), x);
                }
            }
        }
        if o.vact.is_none() {
            // SAFETY: y[off..off+width] was just written and is inside y; no other
            // reference to it is live.
            activation(o.act, unsafe {
                std::slice::from_raw_parts_mut(o.y.add(off), row.width)
            });
        }
    }
}
