//! aarch64 NEON int8 GEMM over the shared packed panels (16 columns, four `k` adjacent per
//! column: the `sdot` operand order), byte-identical to `scalar`.
//!
//! - `qgemm_4x16_dot` (CPUs with dotprod, e.g. Cortex-A76 / Raspberry Pi 5): `sdot` by lane,
//!   four rows against a panel, 16 accumulators. `sdot` multiplies signed bytes, so
//!   activations enter as `a ^ 0x80 = a - 128` and `128 * Σ_k B[k][j]`, summed once per
//!   panel with `sdot` against ones, is added back: exact modulo 2^32, like the scalar sum.
//! - `qgemm_2x16_mull` (any ARMv8, e.g. Cortex-A72 / Raspberry Pi 4): bytes widened to 16
//!   bits, products (|255 · 128| < 2^15, exact) pairwise accumulated into 32 bits
//!   (`sadalp`), two rows against a panel.
//!
//! Both end in the output stage of [`crate::kernels::requant`] in the scalar's order:
//! `f32(acc) * scale`, then `+ f32(r - zr) * rscale` (no fused multiply-add), clamp, round
//! half to even (`fcvtns`), add the zero point.

use core::arch::aarch64::*;
use core::arch::asm;

use super::{check_lengths, padded_k, QGemmParams, QOps, RawOut, KR, NR};

/// int8 GEMM with `sdot` 4x16 tiles; falls back to [`qgemm_2x16_mull`] on CPUs without
/// dotprod, so calling it is always sound.
pub fn qgemm_4x16_dot(p: QGemmParams<'_>) {
    if !std::arch::is_aarch64_feature_detected!("dotprod") {
        return qgemm_2x16_mull(p);
    }
    check_lengths(&p);
    if p.m == 0 || p.n == 0 {
        return;
    }
    let o = QOps::new(p);
    // SAFETY: dotprod was detected above; check_lengths proved every extent read/written.
    unsafe { gemm_dot(&o) }
}

/// int8 GEMM with widening multiplies, 2x16 tiles (any ARMv8 NEON).
pub fn qgemm_2x16_mull(p: QGemmParams<'_>) {
    check_lengths(&p);
    if p.m == 0 || p.n == 0 {
        return;
    }
    let o = QOps::new(p);
    for panel in 0..o.n.div_ceil(NR) {
        let mut i = 0;
        while i < o.m {
            // SAFETY: rows i..i+2 (or i) < m, panel < ceil(n/NR), extents checked.
            unsafe {
                if i + 2 <= o.m {
                    let acc = mull_tile::<2>(&o, i, panel);
                    store_rows(&o, i, panel, &acc);
                    i += 2;
                } else {
                    let acc = mull_tile::<1>(&o, i, panel);
                    store_rows(&o, i, panel, &acc);
                    i += 1;
                }
            }
        }
    }
}

macro_rules! sdot_lane {
    ($name:ident, $lane:literal) => {
        /// `acc[j] += Σ_t b[4j+t] * a[4*LANE+t]` (signed bytes).
        ///
        /// # Safety
        /// The CPU must have dotprod.
        #[target_feature(enable = "neon,dotprod")]
        #[inline]
        unsafe fn $name(mut acc: int32x4_t, b: int8x16_t, a: int8x16_t) -> int32x4_t {
            // SAFETY: register-only instruction, available per the function's features.
            unsafe {
                asm!(
                    concat!("sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[", $lane, "]"),
                    acc = inout(vreg) acc,
                    b = in(vreg) b,
                    a = in(vreg) a,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
            acc
        }
    };
}
sdot_lane!(sdot_lane0, "0");
sdot_lane!(sdot_lane1, "1");
sdot_lane!(sdot_lane2, "2");
sdot_lane!(sdot_lane3, "3");

/// `acc[j] += Σ_t b[4j+t] * a[4j+t]` (signed bytes).
///
/// # Safety
/// The CPU must have dotprod.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn sdot(mut acc: int32x4_t, b: int8x16_t, a: int8x16_t) -> int32x4_t {
    // SAFETY: register-only instruction, available per the function's features.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {b:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            b = in(vreg) b,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// # Safety
/// dotprod available, `check_lengths` held, `m, n > 0`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn gemm_dot(o: &QOps) {
    let groups = padded_k(o.k) / KR;
    for panel in 0..o.n.div_ceil(NR) {
        // SAFETY: the panel holds `groups` groups of NR*KR bytes (check_lengths).
        let bp = unsafe { o.b.add(panel * o.panel_stride()) };
        // 128 * Σ_k B[k][j] for the 16 columns of this panel.
        let mut colsum = [vdupq_n_s32(0); 4];
        let ones = vdupq_n_s8(1);
        for g in 0..groups {
            for (q, s) in colsum.iter_mut().enumerate() {
                // SAFETY: group g, quarter q of the panel.
                *s = unsafe { sdot(*s, vld1q_s8(bp.add(g * NR * KR + 16 * q)), ones) };
            }
        }
        let fix: [int32x4_t; 4] = std::array::from_fn(|q| vshlq_n_s32::<7>(colsum[q]));
        let mut i = 0;
        while i < o.m {
            let rows = (o.m - i).min(4);
            // SAFETY: rows i..i+rows < m; the panel as above.
            unsafe {
                match rows {
                    4 => dot_rows::<4>(o, i, panel, bp, groups, &fix),
                    3 => dot_rows::<3>(o, i, panel, bp, groups, &fix),
                    2 => dot_rows::<2>(o, i, panel, bp, groups, &fix),
                    _ => dot_rows::<1>(o, i, panel, bp, groups, &fix),
                }
            }
            i += rows;
        }
    }
}

/// Sixteen bytes of row `row` of A from `k = kk`, zero-filled past the row's end, as
/// signed bytes `a - 128`.
///
/// # Safety
/// `row < m`, `kk < k`, `check_lengths` held.
#[inline(always)]
unsafe fn a16_flipped(o: &QOps, row: usize, kk: usize) -> int8x16_t {
    // SAFETY: row `row` holds k bytes at a + row*lda; the 16-byte load is used only when
    // kk + 16 <= k, the tail copies bytes kk..k.
    unsafe {
        let src = o.a.add(row * o.lda + kk);
        let bytes = if kk + 16 <= o.k {
            vld1q_u8(src)
        } else {
            let mut tmp = [0u8; 16];
            std::ptr::copy_nonoverlapping(src, tmp.as_mut_ptr(), o.k - kk);
            vld1q_u8(tmp.as_ptr())
        };
        vreinterpretq_s8_u8(veorq_u8(bytes, vdupq_n_u8(0x80)))
    }
}

/// Rows `i..i+R` of one panel with `sdot`, then the output stage.
///
/// # Safety
/// dotprod available; `i + R <= m`; `bp` the panel's packed bytes (`groups` groups).
#[target_feature(enable = "neon,dotprod")]
unsafe fn dot_rows<const R: usize>(
    o: &QOps,
    i: usize,
    panel: usize,
    bp: *const i8,
    groups: usize,
    fix: &[int32x4_t; 4],
) {
    let mut acc = [*fix; R];
    let mut g = 0;
    while g < groups {
        let lanes = (groups - g).min(4);
        // SAFETY: 4g < k (g < groups = ceil(k/4)); rows < m.
        let a: [int8x16_t; R] = std::array::from_fn(|r| unsafe { a16_flipped(o, i + r, g * KR) });
        for lane in 0..lanes {
            // SAFETY: group g + lane < groups of the panel.
            let b: [int8x16_t; 4] =
                std::array::from_fn(|q| unsafe { vld1q_s8(bp.add((g + lane) * NR * KR + 16 * q)) });
            for r in 0..R {
                for q in 0..4 {
                    // SAFETY: dotprod available (function features).
                    acc[r][q] = unsafe {
                        match lane {
                            0 => sdot_lane0(acc[r][q], b[q], a[r]),
                            1 => sdot_lane1(acc[r][q], b[q], a[r]),
                            2 => sdot_lane2(acc[r][q], b[q], a[r]),
                            _ => sdot_lane3(acc[r][q], b[q], a[r]),
                        }
                    };
                }
            }
        }
        g += lanes;
    }
    // SAFETY: forwarded contract.
    unsafe { store_rows(o, i, panel, &acc) };
}

/// Rows `i..i+R` of one panel with widening multiplies.
///
/// # Safety
/// `i + R <= m`, `panel < ceil(n/NR)`, `check_lengths` held.
#[inline(always)]
unsafe fn mull_tile<const R: usize>(o: &QOps, i: usize, panel: usize) -> [[int32x4_t; 4]; R] {
    let groups = padded_k(o.k) / KR;
    // SAFETY: NEON is baseline on aarch64; the panel holds `groups` groups of 64 bytes,
    // a_word reads only inside row i+r (its contract: row < m, 4g < k).
    unsafe {
        let bp = o.b.add(panel * o.panel_stride());
        let zero = vdupq_n_s32(0);
        // Per row and quarter: pair sums for the low (cols 0,1) and high (cols 2,3) halves.
        let mut lo = [[zero; 4]; R];
        let mut hi = [[zero; 4]; R];
        for g in 0..groups {
            let a: [int16x8_t; R] = std::array::from_fn(|r| {
                let w = o.a_word(i + r, g) as u64;
                let rep = vcreate_u8(w | (w << 32));
                vreinterpretq_s16_u16(vmovl_u8(rep))
            });
            for q in 0..4 {
                let b = vld1q_s8(bp.add(g * NR * KR + 16 * q));
                let (bl, bh) = (vmovl_s8(vget_low_s8(b)), vmovl_high_s8(b));
                for r in 0..R {
                    lo[r][q] = vpadalq_s16(lo[r][q], vmulq_s16(a[r], bl));
                    hi[r][q] = vpadalq_s16(hi[r][q], vmulq_s16(a[r], bh));
                }
            }
        }
        std::array::from_fn(|r| std::array::from_fn(|q| vpaddq_s32(lo[r][q], hi[r][q])))
    }
}

/// Bias and the output stage for rows `i..i+R` of one panel.
///
/// # Safety
/// `i + R <= m`, `panel < ceil(n/NR)`, `check_lengths` held.
#[inline(always)]
unsafe fn store_rows<const R: usize>(o: &QOps, i: usize, panel: usize, acc: &[[int32x4_t; 4]; R]) {
    let j0 = panel * NR;
    let w = NR.min(o.n - j0);
    // Bias and scale of the panel's columns, zero-padded past n.
    let mut bias = [0i32; NR];
    let mut scale = [0f32; NR];
    let scale_ptr = match o.out {
        RawOut::U8 { scale, .. } | RawOut::F32 { scale, .. } => scale,
    };
    // SAFETY: bias and scale hold n values (check_lengths); j0 + w <= n.
    unsafe {
        std::ptr::copy_nonoverlapping(o.bias.add(j0), bias.as_mut_ptr(), w);
        std::ptr::copy_nonoverlapping(scale_ptr.add(j0), scale.as_mut_ptr(), w);
    }
    for (r, row) in acc.iter().enumerate() {
        let at = (i + r) * o.ldc + j0;
        // SAFETY: NEON baseline; `at..at+w` lies in row i+r of C and of the residual
        // (check_lengths: rows < m, columns < n).
        unsafe {
            let t: [float32x4_t; 4] = std::array::from_fn(|q| {
                let v = vaddq_s32(row[q], vld1q_s32(bias.as_ptr().add(4 * q)));
                vmulq_f32(vcvtq_f32_s32(v), vld1q_f32(scale.as_ptr().add(4 * q)))
            });
            match o.out {
                RawOut::F32 { c, .. } => {
                    let mut tmp = [0f32; NR];
                    for (q, &x) in t.iter().enumerate() {
                        vst1q_f32(tmp.as_mut_ptr().add(4 * q), x);
                    }
                    std::ptr::copy_nonoverlapping(tmp.as_ptr(), c.add(at), w);
                }
                RawOut::U8 { c, rq, res, .. } => {
                    let mut t = t;
                    if let Some((rp, zr, rs)) = res {
                        let mut rb = [0u8; NR];
                        std::ptr::copy_nonoverlapping(rp.add(at), rb.as_mut_ptr(), w);
                        let rb = vld1q_u8(rb.as_ptr());
                        let r16 = [vmovl_u8(vget_low_u8(rb)), vmovl_high_u8(rb)];
                        for (q, x) in t.iter_mut().enumerate() {
                            let half = r16[q / 2];
                            let r32 = if q % 2 == 0 {
                                vmovl_u16(vget_low_u16(half))
                            } else {
                                vmovl_high_u16(half)
                            };
                            let d = vsubq_s32(vreinterpretq_s32_u32(r32), vdupq_n_s32(zr));
                            *x = vaddq_f32(*x, vmulq_f32(vcvtq_f32_s32(d), vdupq_n_f32(rs)));
                        }
                    }
                    let mut q8 = [0i32; NR];
                    for (q, &x) in t.iter().enumerate() {
                        let x = vminnmq_f32(vmaxnmq_f32(x, vdupq_n_f32(rq.lo)), vdupq_n_f32(rq.hi));
                        let v = vaddq_s32(vcvtnq_s32_f32(x), vdupq_n_s32(rq.zero_point));
                        vst1q_s32(q8.as_mut_ptr().add(4 * q), v);
                    }
                    for (j, &v) in q8[..w].iter().enumerate() {
                        *c.add(at + j) = v as u8;
                    }
                }
            }
        }
    }
}
