//! AVX-512 direct NHWC convolution: one output pixel at a time, output channels of a group in
//! 16-lane registers (up to 4 registers per pass), taps broadcast from the input row.

use core::arch::x86_64::*;

use super::ConvArgs;
use crate::kernels::f32_eltwise::scalar::activation;

const LANES: usize = 16;
const REGS: usize = 4;

/// Direct convolution for any geometry; output channels per group in chunks of 64.
pub fn conv_direct_16c(a: ConvArgs<'_>) {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return super::scalar::conv_direct(a);
    }
    // SAFETY: avx512f is available (checked above); all memory accesses inside are
    // bounds-checked slice operations or loads/stores at offsets proven in-bounds there.
    unsafe { conv(a) }
}

#[target_feature(enable = "avx512f")]
unsafe fn conv(a: ConvArgs<'_>) {
    let g = a.g;
    let groups = g.groups.max(1);
    let (cg, og) = (g.c / groups, g.o / groups);
    if g.o == 0 {
        return;
    }
    let wg = g.kh * g.kw * cg * og;
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                let yrow = &mut a.y[pix * g.o..(pix + 1) * g.o];
                for gi in 0..groups {
                    let wgrp = &a.w[gi * wg..(gi + 1) * wg];
                    let mut start = 0;
                    while start < og {
                        let width = (og - start).min(LANES * REGS);
                        let regs = width.div_ceil(LANES);
                        let tail = width - (regs - 1) * LANES;
                        let tail_mask: __mmask16 = if tail == LANES {
                            0xFFFF
                        } else {
                            (1u16 << tail) - 1
                        };
                        let mask = |r: usize| if r + 1 == regs { tail_mask } else { 0xFFFF };
                        let mut acc = [_mm512_setzero_ps(); REGS];
                        let bias = &a.bias[gi * og + start..gi * og + start + width];
                        for (r, acc_r) in acc.iter_mut().enumerate().take(regs) {
                            // SAFETY: lanes selected by the mask lie within `bias`.
                            *acc_r = _mm512_maskz_loadu_ps(mask(r), bias.as_ptr().add(r * LANES));
                        }
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_y(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_x(ox, kx) else { continue };
                                let xrow =
                                    &a.x[((n * g.h + iy) * g.w + ix) * g.c + gi * cg..][..cg];
                                let wtap = &wgrp[(ky * g.kw + kx) * cg * og..][..cg * og];
                                for (ic, &xv) in xrow.iter().enumerate() {
                                    let xb = _mm512_set1_ps(xv);
                                    let wrow = &wtap[ic * og + start..ic * og + start + width];
                                    for (r, acc_r) in acc.iter_mut().enumerate().take(regs) {
                                        // SAFETY: masked lanes lie within `wrow`.
                                        let w = _mm512_maskz_loadu_ps(
                                            mask(r),
                                            wrow.as_ptr().add(r * LANES),
                                        );
                                        *acc_r = _mm512_fmadd_ps(xb, w, *acc_r);
                                    }
                                }
                            }
                        }
                        let out = &mut yrow[gi * og + start..gi * og + start + width];
                        for (r, acc_r) in acc.iter().enumerate().take(regs) {
                            // SAFETY: masked lanes lie within `out`.
                            _mm512_mask_storeu_ps(out.as_mut_ptr().add(r * LANES), mask(r), *acc_r);
                        }
                        start += width;
                    }
                }
                if let Some(res) = a.residual {
                    for (y, &v) in yrow.iter_mut().zip(&res[pix * g.o..(pix + 1) * g.o]) {
                        *y += v;
                    }
                }
                activation(a.act, yrow);
            }
        }
    }
}
