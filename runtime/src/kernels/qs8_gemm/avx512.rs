//! AVX-512 VNNI int8 GEMM: 8x32 register tiles. Each `vpdpbusd` multiplies four consecutive
//! bytes of one A row (broadcast as a 32-bit word) with one packed B group (16 columns x 4
//! `k`, one zmm) and adds the four products into the 16 column accumulators, so a `k` group
//! of a tile is 2 B loads, 8 broadcast loads and 16 `vpdpbusd`. Accumulators start from the
//! bias; the output stage ([`crate::kernels::requant`]'s rule) runs in registers with masked
//! loads and stores for the column tail. `vpdpbusd` neither saturates nor loses bits (four
//! u8 x i8 products fit 18 bits; the i32 sum wraps like the scalar `wrapping_add`).
//!
//! On Zen 4 (512-bit operations run as two 256-bit halves) 256-bit `vpdpbusd` tiles (8x16,
//! 8x24, 6x32, 12x16) measured 2-30 % slower than these 512-bit ones, except where a 512-bit
//! register would be mostly padding: a last panel of at most 8 columns (`n % 16` in 1..=8,
//! e.g. `n = 24`) runs on 256-bit registers.

use core::arch::x86_64::*;

use super::{check_lengths, QGemmParams, QOps, RawOut, KR, NR};

/// Rows per register tile.
const MR: usize = 8;
/// Packed panels (16 columns each) per register tile.
const PR: usize = 2;
/// Panels per tile of a single-row product (batch-1 FC): more independent accumulators
/// (eight measured no faster: that product streams B from L2 / L3).
const PR_ROW: usize = 4;
/// Bytes of packed B one strip may hold (half of a 32 KiB L1).
const STRIP_BYTES: usize = 16 * 1024;

/// Whether this CPU has every feature the VNNI kernel uses.
fn has_vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// AVX-512 VNNI quantized GEMM with 8x32 tiles (see [`super::QGemmParams`]); output
/// byte-identical to [`super::scalar::qgemm_1x16`].
///
/// Falls back to [`super::avx2::qgemm_6x8`] when the CPU lacks AVX-512 F/BW/VL/VNNI, so
/// calling it is always sound. Panics (like the scalar kernel) when a slice is too short.
pub fn qgemm_8x32(p: QGemmParams<'_>) {
    if !has_vnni() {
        return super::avx2::qgemm_6x8(p);
    }
    check_lengths(&p);
    if p.m == 0 || p.n == 0 {
        return;
    }
    // SAFETY: the four features were detected just above; `check_lengths` proved every row
    // of A and C (and of the residual), the bias, the scales and the packed B hold the
    // elements the kernel reads or writes.
    unsafe { gemm(&QOps::new(p)) }
}

/// # Safety
/// AVX-512 F/BW/VL/VNNI must be available and `check_lengths` must hold with `m, n > 0`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm(o: &QOps) {
    let panels = o.n.div_ceil(NR);
    if o.m == 1 {
        // SAFETY: m == 1 and all panels are inside the checked extents.
        unsafe { row_vector(o, panels) };
        return;
    }
    // One strip of B (whole register tiles of panels, about 16 KiB) at a time against every
    // row tile, so the strip stays in L1 while the rows of A stream past it.
    let strip = (STRIP_BYTES / o.panel_stride().max(1) / PR).max(1) * PR;
    // Rows split into ceil(m / MR) tiles of nearly equal height (49 rows run as 7x7, not
    // 6x8 + 1), so no thin, latency-bound edge tile remains.
    let tiles = o.m.div_ceil(MR);
    let (base, taller) = (o.m / tiles, o.m % tiles);
    let mut p0 = 0;
    while p0 < panels {
        let p1 = (p0 + strip).min(panels);
        let mut i = 0;
        for t in 0..tiles {
            let rows = base + usize::from(t < taller);
            // SAFETY: rows i..i+rows (rows <= MR, summing to m) and panels p0..p1 are inside
            // the checked extents.
            unsafe {
                match rows {
                    8 => row_tile::<8>(o, i, p0, p1),
                    7 => row_tile::<7>(o, i, p0, p1),
                    6 => row_tile::<6>(o, i, p0, p1),
                    5 => row_tile::<5>(o, i, p0, p1),
                    4 => row_tile::<4>(o, i, p0, p1),
                    3 => row_tile::<3>(o, i, p0, p1),
                    2 => row_tile::<2>(o, i, p0, p1),
                    1 => row_tile::<1>(o, i, p0, p1),
                    _ => {}
                }
            }
            i += rows;
        }
        p0 = p1;
    }
}

/// Whether panels `..p1` end with B's last panel and that panel is at most half full
/// (`n % 16` in 1..=8): its 8 columns then run as one 256-bit register per row instead of a
/// mostly empty 512-bit one (a 24-column output costs 24 lanes of work, not 32).
fn ends_half(o: &QOps, p1: usize) -> bool {
    p1 == o.n.div_ceil(NR) && matches!(o.n % NR, 1..=8)
}

/// Rows `i..i+R` against panels `p0..p1`, two panels at a time.
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and `p1 <= ceil(n / NR)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn row_tile<const R: usize>(o: &QOps, i: usize, p0: usize, p1: usize) {
    let half = ends_half(o, p1);
    let whole = p1 - usize::from(half);
    let mut p = p0;
    while p + PR <= whole {
        // SAFETY: forwarded caller contract; panels p, p+1 exist.
        unsafe { tile::<R, PR, false>(o, i, p) };
        p += PR;
    }
    // SAFETY: forwarded caller contract; panels p..whole (and the half panel `whole` when
    // `half`) exist.
    unsafe {
        match (whole - p, half) {
            (0, true) => tile::<R, 0, true>(o, i, p),
            (1, false) => tile::<R, 1, false>(o, i, p),
            (1, true) => tile::<R, 1, true>(o, i, p),
            _ => {}
        }
    }
}

/// A single row (matrix-vector product, e.g. a fully connected layer at batch 1): four
/// panels per tile so four independent accumulators are in flight.
///
/// # Safety
/// As [`gemm`], with `m == 1` and `panels == ceil(n / NR)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn row_vector(o: &QOps, panels: usize) {
    let half = ends_half(o, panels);
    let whole = panels - usize::from(half);
    let mut p = 0;
    while p + PR_ROW <= whole {
        // SAFETY: forwarded caller contract; panels p..p+4 exist.
        unsafe { tile::<1, PR_ROW, false>(o, 0, p) };
        p += PR_ROW;
    }
    // SAFETY: forwarded caller contract; panels p..whole (and the half panel `whole` when
    // `half`) exist.
    unsafe {
        match (whole - p, half) {
            (0, true) => tile::<1, 0, true>(o, 0, p),
            (1, false) => tile::<1, 1, false>(o, 0, p),
            (1, true) => tile::<1, 1, true>(o, 0, p),
            (2, false) => tile::<1, 2, false>(o, 0, p),
            (2, true) => tile::<1, 2, true>(o, 0, p),
            (3, false) => tile::<1, 3, false>(o, 0, p),
            (3, true) => tile::<1, 3, true>(o, 0, p),
            _ => {}
        }
    }
}

/// Lanes `0..w` of a 16-lane mask.
#[inline(always)]
fn lane_mask(w: usize) -> __mmask16 {
    if w >= NR {
        0xFFFF
    } else {
        (1u16 << w) - 1
    }
}

/// One `R x (P*16 + 8*HALF)` tile: accumulators from the bias, `vpdpbusd` over the `k`
/// groups (the last one assembled byte by byte when `k % 4 != 0`), then the output stage.
/// With `HALF`, panel `p + P` is B's last and holds at most 8 columns: it runs on 256-bit
/// registers (its low half).
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and panels `p..p+P` (and `p+P` with `HALF`) inside B.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // index loops keep `acc` in registers
unsafe fn tile<const R: usize, const P: usize, const HALF: bool>(o: &QOps, i: usize, p: usize) {
    let j0 = p * NR;
    let mut masks = [0; P];
    for z in 0..P {
        masks[z] = lane_mask((o.n - j0).saturating_sub(z * NR));
    }
    let jh = j0 + P * NR;
    let mask_h = lane_mask(o.n.saturating_sub(jh)) as __mmask8;
    let mut acc = [[_mm512_setzero_si512(); P]; R];
    let mut acc_h = [_mm256_setzero_si256(); R];
    // SAFETY: the lanes selected by the masks are columns < n, inside the bias.
    unsafe {
        for z in 0..P {
            let bv = _mm512_maskz_loadu_epi32(masks[z], o.bias.add(j0 + z * NR));
            for row in acc.iter_mut() {
                row[z] = bv;
            }
        }
        if HALF {
            acc_h = [_mm256_maskz_loadu_epi32(mask_h, o.bias.add(jh)); R];
        }
    }
    let stride = o.panel_stride();
    let full = o.k / KR;
    // SAFETY: panel p + z (z < P, and z = P with HALF) holds padded_k(k) * NR bytes from b + (p+z)*stride
    // (packed_len), group g is the 64 bytes at g * KR * NR; rows i..i+R of A hold k bytes at
    // a + row*lda, and the word at 4g is whole for g < full.
    unsafe {
        let b = o.b.add(p * stride);
        let mut a = [o.a; R];
        for (r, row) in a.iter_mut().enumerate() {
            *row = o.a.add((i + r) * o.lda);
        }
        // One k group: B loads, then per row `r` the broadcast word `$word` into every
        // accumulator. A macro so the whole-word loop and the tail share it without a
        // per-row branch in the loop.
        macro_rules! group {
            ($g:expr, $r:ident => $word:expr) => {{
                let off = $g * KR * NR;
                let mut bv = [_mm512_setzero_si512(); P];
                for z in 0..P {
                    bv[z] = _mm512_loadu_si512(b.add(z * stride + off) as *const _);
                }
                let bh = if HALF {
                    _mm256_loadu_si256(b.add(P * stride + off) as *const _)
                } else {
                    _mm256_setzero_si256()
                };
                for $r in 0..R {
                    let word: i32 = $word;
                    let av = _mm512_set1_epi32(word);
                    for z in 0..P {
                        acc[$r][z] = _mm512_dpbusd_epi32(acc[$r][z], av, bv[z]);
                    }
                    if HALF {
                        // A broadcast of its own (not the low half of `av`), so both stay
                        // broadcast loads instead of a load + GPR-to-vector transfer.
                        let avh = _mm256_set1_epi32(word);
                        acc_h[$r] = _mm256_dpbusd_epi32(acc_h[$r], avh, bh);
                    }
                }
            }};
        }
        for g in 0..full {
            group!(g, r => (a[r].add(g * KR) as *const i32).read_unaligned());
        }
        if full * KR < o.k {
            group!(full, r => o.a_word(i + r, full) as i32);
        }
    }
    // SAFETY: rows i..i+R and the masked columns j0.. < n are inside C, the residual and
    // the scales.
    unsafe {
        store::<R, P>(o, i, j0, acc, masks);
        if HALF {
            let mut wide = [[_mm512_setzero_si512(); 1]; R];
            for r in 0..R {
                wide[r][0] = _mm512_zextsi256_si512(acc_h[r]);
            }
            store::<R, 1>(o, i, jh, wide, [mask_h as __mmask16]);
        }
    }
}

/// The output stage of one tile: `acc` (bias included) to C through the requantization rule
/// or the f32 dequantization, columns selected by `masks`.
///
/// # Safety
/// As [`gemm`], with rows `i..i+R` inside C and every masked-in column `< n`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn store<const R: usize, const P: usize>(
    o: &QOps,
    i: usize,
    j0: usize,
    acc: [[__m512i; P]; R],
    masks: [__mmask16; P],
) {
    let mut sv = [_mm512_setzero_ps(); P];
    match o.out {
        RawOut::F32 { c, scale } => {
            // SAFETY: masked lanes are columns < n of the scales and of C rows i..i+R.
            unsafe {
                for z in 0..P {
                    sv[z] = _mm512_maskz_loadu_ps(masks[z], scale.add(j0 + z * NR));
                }
                for r in 0..R {
                    let dst = c.add((i + r) * o.ldc + j0);
                    for z in 0..P {
                        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][z]), sv[z]);
                        _mm512_mask_storeu_ps(dst.add(z * NR), masks[z], v);
                    }
                }
            }
        }
        RawOut::U8 { c, scale, rq, res } => {
            let lo = _mm512_set1_ps(rq.lo);
            let hi = _mm512_set1_ps(rq.hi);
            let zp = _mm512_set1_epi32(rq.zero_point);
            // SAFETY: masked lanes are columns < n of the scales, of C rows i..i+R and of the
            // residual rows (same geometry as C).
            unsafe {
                for z in 0..P {
                    sv[z] = _mm512_maskz_loadu_ps(masks[z], scale.add(j0 + z * NR));
                }
                for r in 0..R {
                    let off = (i + r) * o.ldc + j0;
                    for z in 0..P {
                        let mut t = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][z]), sv[z]);
                        if let Some((rp, rzp, rscale)) = res {
                            let rb =
                                _mm_maskz_loadu_epi8(masks[z], rp.add(off + z * NR) as *const _);
                            let rv =
                                _mm512_sub_epi32(_mm512_cvtepu8_epi32(rb), _mm512_set1_epi32(rzp));
                            // Two roundings (multiply, then add), as the rule requires.
                            t = _mm512_add_ps(
                                t,
                                _mm512_mul_ps(_mm512_cvtepi32_ps(rv), _mm512_set1_ps(rscale)),
                            );
                        }
                        t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
                        let q = _mm512_add_epi32(_mm512_cvtps_epi32(t), zp);
                        // `vpmovdb` keeps the low byte of each lane (`as u8`).
                        _mm_mask_storeu_epi8(
                            c.add(off + z * NR) as *mut _,
                            masks[z],
                            _mm512_cvtepi32_epi8(q),
                        );
                    }
                }
            }
        }
    }
}
