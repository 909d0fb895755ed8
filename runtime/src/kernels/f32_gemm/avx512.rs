//! AVX-512 GEMM: 8x32 register tiles (8 rows of A broadcast against two 16-column packed B
//! panels, one 16-lane register each, 16 accumulators), with 1..7-row and 8..24-column edge
//! tiles. Bias, residual and the cheap activations are applied in registers
//! (masked loads/stores for the column tail) before the single store of each tile.

use core::arch::x86_64::*;

use super::{check_lengths, GemmParams, Ops, NR as PANEL};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::simd::avx512::{apply_act, lane_mask};
use crate::kernels::simd::vectorised;
use crate::kernels::Act;

/// Bytes of packed B one strip may hold (half of a 32 KiB L1).
const STRIP_BYTES: usize = 16 * 1024;
/// Rows per register tile.
const MR: usize = 8;
/// Column groups per register tile (4 x 8 = 32 columns: two panels, two 16-lane registers).
const PR: usize = 4;
/// Lanes of a register.
const LANES: usize = 16;
/// Columns per column group: tiles count B in groups of 8 columns, the halves of a
/// 16-column packed panel (so edge tiles can be 8 columns wide).
const NR: usize = 8;

/// AVX-512 GEMM with 8x32 tiles (see [`super::GemmParams`]).
///
/// Falls back to the scalar kernel when the CPU lacks AVX-512F, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx512` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the given dimensions.
pub fn gemm_8x32(p: GemmParams<'_>) {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return super::scalar::gemm_4x16(p);
    }
    if p.m == 0 || p.n == 0 {
        return;
    }
    // Where 256-bit tiles measure faster on 512-bit-double-pumping cores (Zen 4): a single
    // row (FC at batch 1: eight column-group streams beat wider 512-bit tiles), narrow outputs (the
    // 32-column tile would be a quarter or more empty) and short reductions (the epilogue
    // dominates). `gemm_6x16` needs AVX2+FMA, which every AVX-512 CPU has.
    if p.m == 1 || p.n <= 24 || p.k <= 32 {
        return super::avx2::gemm_6x16(p);
    }
    check_lengths(&p);
    // SAFETY: avx512f was detected just above (the slot invariant of `for_isa` is that this
    // tier is only chosen when `CpuFeatures::supports(Isa::Avx512)`, the check makes the
    // function sound even if called directly). `check_lengths` proved every row of A, C,
    // residual, the bias and the packed B hold the elements the kernel reads or writes.
    unsafe { gemm(p) }
}

/// # Safety
/// AVX-512F must be available and `check_lengths(p)` must hold with `m, n > 0`.
#[target_feature(enable = "avx512f")]
unsafe fn gemm(p: GemmParams<'_>) {
    let o = Ops::new(p);
    let groups = o.n.div_ceil(NR);
    // One strip of B (whole register tiles of panels, about 16 KiB) at a time against every
    // row tile: the strip stays in L1 while the rows of A stream past it, and the first row
    // tile prefetches the next strip into L2. Measured in-model against running each row tile
    // across a 256 KiB block of B: the strip order 4-7 % faster, the prefetch another 5 %.
    let strip = (STRIP_BYTES / (o.k.max(1) * NR * 4) / PR).max(1) * PR;
    let mut p0 = 0;
    while p0 < groups {
        let p1 = (p0 + strip).min(groups);
        // Rows split into ceil(m / MR) tiles of nearly equal height (49 rows run as 7x7,
        // not 6x8 + 1), so no thin, latency-bound edge tile remains.
        let tiles = o.m.div_ceil(MR);
        let (base, taller) = (o.m / tiles, o.m % tiles);
        let mut i = 0;
        for t in 0..tiles {
            let rows = base + usize::from(t < taller);
            // SAFETY: rows i..i+rows (rows <= MR, summing to m) and groups p0..p1 are inside
            // the checked extents.
            unsafe {
                match rows {
                    MR => row_tile::<MR>(&o, i, p0, p1, t == 0 && p1 < groups),
                    7 => row_tile::<7>(&o, i, p0, p1, t == 0 && p1 < groups),
                    6 => row_tile::<6>(&o, i, p0, p1, t == 0 && p1 < groups),
                    5 => row_tile::<5>(&o, i, p0, p1, t == 0 && p1 < groups),
                    4 => row_tile::<4>(&o, i, p0, p1, t == 0 && p1 < groups),
                    3 => row_tile::<3>(&o, i, p0, p1, t == 0 && p1 < groups),
                    2 => row_tile::<2>(&o, i, p0, p1, t == 0 && p1 < groups),
                    1 => row_tile::<1>(&o, i, p0, p1, t == 0 && p1 < groups),
                    _ => {}
                }
            }
            i += rows;
        }
        p0 = p1;
    }
}

/// Rows `i..i+R` against groups `p0..p1`, four groups at a time.
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and `p1 <= ceil(n / NR)`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn row_tile<const R: usize>(o: &Ops, i: usize, p0: usize, p1: usize, prefetch: bool) {
    let mut p = p0;
    while p + PR <= p1 {
        // SAFETY: forwarded caller contract; groups p..p+4 exist.
        unsafe {
            if prefetch {
                tile::<R, PR, true>(o, i, p)
            } else {
                tile::<R, PR, false>(o, i, p)
            }
        };
        p += PR;
    }
    // SAFETY: forwarded caller contract; groups p..p1 exist.
    unsafe {
        match p1 - p {
            3 => tile::<R, 3, false>(o, i, p),
            2 => tile::<R, 2, false>(o, i, p),
            1 => tile::<R, 1, false>(o, i, p),
            _ => {}
        }
    }
}

/// One `R x (P*8)` tile: accumulate over `k` from the bias, then residual, activation and
/// store. Register `z` holds column groups `2z`
/// and `2z+1` (one packed panel).
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and groups `p..p+P` inside B.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)] // index loops keep `acc` in registers (see the epilogue)
unsafe fn tile<const R: usize, const P: usize, const PREFETCH: bool>(o: &Ops, i: usize, p: usize) {
    let z_regs = P.div_ceil(2);
    let full = P == PR && (p + P) * NR <= o.n;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // Every tile starts from the bias, edge tiles included: each output is then
    // bias + a_0 b_0 + a_1 b_1 + ... in that order whichever tile computes it, so results do
    // not depend on how the columns are split between calls (threads).
    if let Some(b) = o.bias {
        let mut bv = [_mm512_setzero_ps(); 2];
        for (z, v) in bv.iter_mut().enumerate().take(z_regs) {
            let j = p * NR + z * LANES;
            if j < o.n {
                // SAFETY: the masked lanes are columns j.. < n, inside the bias.
                *v = unsafe { _mm512_maskz_loadu_ps(lane_mask(o.n - j), b.add(j)) };
            }
        }
        acc = [bv; R];
    }
    // SAFETY: row r of A holds k elements at a + (i+r)*lda (check_lengths). Tiles start on
    // an even column group, so register z is packed panel p/2 + z, which holds k*PANEL
    // elements (packed_len); a tile with an odd group count is the last of B, whose panel
    // pads its second half with zeros.
    unsafe {
        let a = o.a.add(i * o.lda);
        let b = o.b.add((p / 2) * o.k * PANEL);
        let stride = o.k * PANEL;
        // The two panels after this tile's (k * 32 floats, contiguous) are pulled into L2
        // two 64-byte lines per k step, so the next strip's weights arrive from memory while
        // this one computes.
        let next = b.wrapping_add(2 * stride);
        for kk in 0..o.k {
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(kk * 32) as *const i8);
                _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(kk * 32 + 16) as *const i8);
            }
            let mut bv = [_mm512_setzero_ps(); 2];
            for (z, v) in bv.iter_mut().enumerate().take(z_regs) {
                *v = _mm512_loadu_ps(b.add(z * stride + kk * PANEL));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r * o.lda + kk));
                for (c, v) in row.iter_mut().zip(&bv).take(z_regs) {
                    *c = _mm512_fmadd_ps(av, *v, *c);
                }
            }
        }
    }
    if full {
        // Whole-tile epilogue, written out here with index loops: references into `acc` made
        // LLVM keep it in memory, with a store per FMA in the k loop above. The bias is
        // already in the accumulators; the activation is chosen once for the tile (in place
        // in C for the activations without a vector form); no masks.
        let j0 = p * NR;
        let in_registers = vectorised(o.act);
        // SAFETY: all 32 columns from j0 are < n, so inside C / residual, for rows i..i+R.
        unsafe {
            if let Some(res) = o.residual {
                for r in 0..R {
                    let src = res.add((i + r) * o.ldc + j0);
                    for z in 0..2 {
                        acc[r][z] = _mm512_add_ps(acc[r][z], _mm512_loadu_ps(src.add(z * LANES)));
                    }
                }
            }
            match o.act {
                Act::None => {}
                Act::Relu => {
                    let zero = _mm512_setzero_ps();
                    for r in 0..R {
                        for z in 0..2 {
                            acc[r][z] = _mm512_max_ps(acc[r][z], zero);
                        }
                    }
                }
                Act::Clip { min, max } => {
                    let (lo, hi) = (_mm512_set1_ps(min), _mm512_set1_ps(max));
                    for r in 0..R {
                        for z in 0..2 {
                            acc[r][z] = _mm512_min_ps(_mm512_max_ps(acc[r][z], lo), hi);
                        }
                    }
                }
                act if in_registers => {
                    for r in 0..R {
                        for z in 0..2 {
                            acc[r][z] = apply_act(act, acc[r][z]);
                        }
                    }
                }
                _ => {}
            }
            for r in 0..R {
                let dst = o.c.add((i + r) * o.ldc + j0);
                for z in 0..2 {
                    _mm512_storeu_ps(dst.add(z * LANES), acc[r][z]);
                }
                if !in_registers {
                    activation(o.act, std::slice::from_raw_parts_mut(dst, P * NR));
                }
            }
        }
        return;
    }
    for (r, row) in acc.into_iter().enumerate() {
        // By value: a reference into `acc` here made LLVM store the accumulators to memory on
        // every k step.
        // SAFETY: columns p*NR.. of row i+r, clipped to n, are inside C / residual / bias.
        unsafe { store_row(o, i + r, p * NR, P * NR, &row) };
    }
}

/// Epilogue for one tile row starting at column `j0` and spanning `span` columns:
/// `act(acc + residual)` (the bias is in `acc` already) stored to the columns that are `< n`.
///
/// # Safety
/// As [`gemm`], with `row < m` and `j0 < n`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_row(o: &Ops, row: usize, j0: usize, span: usize, acc: &[__m512; 2]) {
    let width = (o.n - j0).min(span);
    let regs = width.div_ceil(LANES);
    let mut out = *acc;
    for (z, v) in out.iter_mut().enumerate().take(regs) {
        let j = j0 + z * LANES;
        let mask = lane_mask(width - z * LANES);
        let off = row * o.ldc + j;
        // SAFETY: lanes selected by `mask` are columns j.. < n of the residual row;
        // masked-off lanes are not accessed.
        unsafe {
            if let Some(r) = o.residual {
                *v = _mm512_add_ps(*v, _mm512_maskz_loadu_ps(mask, r.add(off)));
            }
        }
        *v = apply_act(o.act, *v);
    }
    if !vectorised(o.act) {
        let act = o.act;
        let mut tmp = [[0f32; LANES]; 2];
        for (t, v) in tmp.iter_mut().zip(&out) {
            // SAFETY: `t` is a valid 16-float buffer.
            unsafe { _mm512_storeu_ps(t.as_mut_ptr(), *v) };
        }
        activation(act, &mut tmp.as_flattened_mut()[..width]);
        for (t, v) in tmp.iter().zip(out.iter_mut()) {
            // SAFETY: `t` is a valid 16-float buffer.
            *v = unsafe { _mm512_loadu_ps(t.as_ptr()) };
        }
    }
    for (z, v) in out.iter().enumerate().take(regs) {
        let mask = lane_mask(width - z * LANES);
        // SAFETY: masked lanes are columns < n of C row `row` (check_lengths).
        unsafe { _mm512_mask_storeu_ps(o.c.add(row * o.ldc + j0 + z * LANES), mask, *v) };
    }
}
