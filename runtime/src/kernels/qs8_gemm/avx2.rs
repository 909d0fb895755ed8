//! AVX2 int8 GEMM, exact for every input: 6x8 register tiles on 16-bit products.
//!
//! `vpmaddubsw` (u8 x i8 pairs summed into a saturating i16) is not exact here: two products
//! of 255 x -128 exceed i16. Instead the rows of a tile are widened once to 16 bits (four
//! consecutive `k` of a row as one 64-bit word, [`widen_rows`]), a packed B group half (8
//! columns x 4 `k`) is sign-extended to two registers of 16 i16, and `vpmaddwd` against the
//! broadcast word gives, per column, two exact i32 partial sums (`k 0..2` and `k 2..4`),
//! added into the accumulators. A horizontal add folds the pairs at the end of the tile, then
//! the output stage ([`crate::kernels::requant`]'s rule) runs in registers.

use core::arch::x86_64::*;

use super::{check_lengths, QGemmParams, QOps, RawOut, KR, NR};

/// Rows per register tile.
const MR: usize = 6;
/// Columns per register tile: half of a packed panel.
const NC: usize = 8;

/// AVX2 quantized GEMM with 6x8 tiles (see [`super::QGemmParams`]); output byte-identical
/// to [`super::scalar::qgemm_1x16`].
///
/// Falls back to the scalar kernel when the CPU lacks AVX2, so calling it is always sound.
/// Panics (like the scalar kernel) when a slice is too short.
pub fn qgemm_6x8(p: QGemmParams<'_>) {
    if !std::arch::is_x86_feature_detected!("avx2") {
        return super::scalar::qgemm_1x16(p);
    }
    check_lengths(&p);
    if p.m == 0 || p.n == 0 {
        return;
    }
    // SAFETY: avx2 was detected just above; `check_lengths` proved every row of A and C (and
    // of the residual), the bias, the scales and the packed B hold the elements the kernel
    // reads or writes.
    unsafe { gemm(&QOps::new(p)) }
}

/// # Safety
/// AVX2 must be available and `check_lengths` must hold with `m, n > 0`.
#[target_feature(enable = "avx2")]
unsafe fn gemm(o: &QOps) {
    let groups = o.k.div_ceil(KR);
    let halves = o.n.div_ceil(NC);
    // The widened rows of one row tile: row r, group g at `wide[r * groups + g]`.
    let mut wide = vec![0u64; MR * groups];
    // Rows split into ceil(m / MR) tiles of nearly equal height, so no thin edge tile
    // remains. Each row tile is widened once and then runs across all of B.
    let tiles = o.m.div_ceil(MR);
    let (base, taller) = (o.m / tiles, o.m % tiles);
    let mut i = 0;
    for t in 0..tiles {
        let rows = base + usize::from(t < taller);
        // SAFETY: rows i..i+rows (rows <= MR, summing to m) are inside A and C, `wide` holds
        // MR rows of `groups` words, halves 0..ceil(n/8) are inside the packed B.
        unsafe {
            widen_rows(o, i, rows, groups, &mut wide);
            for h in 0..halves {
                match rows {
                    6 => tile::<6>(o, &wide, groups, i, h),
                    5 => tile::<5>(o, &wide, groups, i, h),
                    4 => tile::<4>(o, &wide, groups, i, h),
                    3 => tile::<3>(o, &wide, groups, i, h),
                    2 => tile::<2>(o, &wide, groups, i, h),
                    1 => tile::<1>(o, &wide, groups, i, h),
                    _ => {}
                }
            }
        }
        i += rows;
    }
}

/// Widen rows `i..i+rows` of A into `wide`: each group of four bytes becomes four
/// little-endian u16 in one u64 (the broadcast operand of `vpmaddwd`), the tail group
/// zero-filled.
///
/// # Safety
/// As [`gemm`], with `i + rows <= m` and `wide.len() >= rows * groups`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn widen_rows(o: &QOps, i: usize, rows: usize, groups: usize, wide: &mut [u64]) {
    for r in 0..rows {
        let dst = &mut wide[r * groups..(r + 1) * groups];
        let mut g = 0;
        // SAFETY: row i+r of A holds k bytes from a + (i+r)*lda; 16 bytes from 4g are read
        // only while 4g + 16 <= k, and written to the 4 words g..g+4 < groups of `dst`.
        unsafe {
            let src = o.a.add((i + r) * o.lda);
            while (g + 4) * KR <= o.k {
                let v = _mm256_cvtepu8_epi16(_mm_loadu_si128(src.add(g * KR) as *const _));
                _mm256_storeu_si256(dst.as_mut_ptr().add(g) as *mut _, v);
                g += 4;
            }
        }
        for (g, w) in dst.iter_mut().enumerate().skip(g) {
            // SAFETY: row i+r < m and 4g < k (g < groups).
            let word = unsafe { o.a_word(i + r, g) } as u64;
            let spread = (word | word << 16) & 0x0000_FFFF_0000_FFFF;
            *w = (spread | spread << 8) & 0x00FF_00FF_00FF_00FF;
        }
    }
}

/// Lanes `0..w` of an 8-lane mask.
#[target_feature(enable = "avx2")]
#[inline]
fn lane_mask(w: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(w.min(NC) as i32), lane)
}

/// One `R x 8` tile: columns `8h..8h+8` (half `h % 2` of panel `h / 2`) of rows `i..i+R`.
///
/// # Safety
/// As [`gemm`], with `i + R <= m`, `8h < n` and rows `0..R` of `wide` widened from
/// rows `i..i+R` of A.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::needless_range_loop)] // index loops keep `acc` in registers
unsafe fn tile<const R: usize>(o: &QOps, wide: &[u64], groups: usize, i: usize, h: usize) {
    // acc[r][q]: columns 4q..4q+4 of the tile, two partial sums per column.
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    // SAFETY: panel h/2 holds groups * KR * NR bytes from b + (h/2)*stride (packed_len);
    // half h%2 of group g is the 32 bytes at g*KR*NR + (h%2)*32. `wide` holds R rows of
    // `groups` words (caller contract).
    unsafe {
        let b = o.b.add((h / 2) * o.panel_stride() + (h % 2) * KR * NC);
        let w = wide.as_ptr();
        for g in 0..groups {
            let src = b.add(g * KR * NR);
            let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(src as *const _));
            let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(src.add(16) as *const _));
            for r in 0..R {
                let av = _mm256_set1_epi64x(*w.add(r * groups + g) as i64);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
            }
        }
    }
    let j0 = h * NC;
    let width = (o.n - j0).min(NC);
    let mask = lane_mask(width);
    // SAFETY: the masked lanes are columns j0.. < n, inside the bias.
    let bias = unsafe { _mm256_maskload_epi32(o.bias.add(j0), mask) };
    let mut sums = [_mm256_setzero_si256(); R];
    for r in 0..R {
        // [c0 c1 c4 c5 | c2 c3 c6 c7] -> c0..c7.
        let folded = _mm256_hadd_epi32(acc[r][0], acc[r][1]);
        sums[r] = _mm256_add_epi32(_mm256_permute4x64_epi64::<0b11_01_10_00>(folded), bias);
    }
    // SAFETY: rows i..i+R and the masked columns j0.. < n are inside C, the residual and
    // the scales.
    unsafe { store::<R>(o, i, j0, width, mask, sums) };
}

/// The output stage of one tile: `sums` (bias included) to C through the requantization
/// rule or the f32 dequantization, columns `j0..j0+width`.
///
/// # Safety
/// As [`gemm`], with rows `i..i+R` inside C and `j0 + width <= n`, `mask` = lanes `0..width`.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn store<const R: usize>(
    o: &QOps,
    i: usize,
    j0: usize,
    width: usize,
    mask: __m256i,
    sums: [__m256i; R],
) {
    match o.out {
        RawOut::F32 { c, scale } => {
            // SAFETY: masked lanes are columns < n of the scales and of C rows i..i+R.
            unsafe {
                let sv = _mm256_maskload_ps(scale.add(j0), mask);
                for r in 0..R {
                    let v = _mm256_mul_ps(_mm256_cvtepi32_ps(sums[r]), sv);
                    _mm256_maskstore_ps(c.add((i + r) * o.ldc + j0), mask, v);
                }
            }
        }
        RawOut::U8 { c, scale, rq, res } => {
            let lo = _mm256_set1_ps(rq.lo);
            let hi = _mm256_set1_ps(rq.hi);
            let zp = _mm256_set1_epi32(rq.zero_point);
            let low_byte = _mm256_set1_epi32(0xFF);
            // SAFETY: masked lanes are columns < n of the scales; C and residual rows
            // i..i+R have `width` bytes from j0 (same geometry), read or written whole
            // only when width == 8, else through a stack copy.
            unsafe {
                let sv = _mm256_maskload_ps(scale.add(j0), mask);
                for r in 0..R {
                    let off = (i + r) * o.ldc + j0;
                    let mut t = _mm256_mul_ps(_mm256_cvtepi32_ps(sums[r]), sv);
                    if let Some((rp, rzp, rscale)) = res {
                        let rb = if width == NC {
                            _mm_loadl_epi64(rp.add(off) as *const _)
                        } else {
                            let mut tmp = [0u8; 16];
                            core::ptr::copy_nonoverlapping(rp.add(off), tmp.as_mut_ptr(), width);
                            _mm_loadu_si128(tmp.as_ptr() as *const _)
                        };
                        let rv = _mm256_sub_epi32(_mm256_cvtepu8_epi32(rb), _mm256_set1_epi32(rzp));
                        // Two roundings (multiply, then add), as the rule requires.
                        t = _mm256_add_ps(
                            t,
                            _mm256_mul_ps(_mm256_cvtepi32_ps(rv), _mm256_set1_ps(rscale)),
                        );
                    }
                    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
                    // Low byte of each lane (`as u8`), packed without saturation.
                    let q = _mm256_and_si256(_mm256_add_epi32(_mm256_cvtps_epi32(t), zp), low_byte);
                    let words = _mm_packus_epi32(
                        _mm256_castsi256_si128(q),
                        _mm256_extracti128_si256::<1>(q),
                    );
                    let bytes = _mm_packus_epi16(words, words);
                    if width == NC {
                        _mm_storel_epi64(c.add(off) as *mut _, bytes);
                    } else {
                        let mut tmp = [0u8; 16];
                        _mm_storeu_si128(tmp.as_mut_ptr() as *mut _, bytes);
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), c.add(off), width);
                    }
                }
            }
        }
    }
}
