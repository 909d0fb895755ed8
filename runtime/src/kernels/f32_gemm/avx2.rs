//! AVX2 + FMA GEMM: 6x16 register tiles (6 rows of A broadcast against the two 8-column
//! halves of a packed B panel, 12 accumulators), with 1..5-row and 8-column edge tiles. Bias, residual and
//! the cheap activations are applied in registers before the single store of each tile.

use core::arch::x86_64::*;

use super::{check_lengths, GemmParams, Ops, NR as PANEL};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::simd::avx2::{apply_act, lane_mask};
use crate::kernels::simd::vectorised;
use crate::kernels::Act;

/// Bytes of packed B one strip may hold (half of a 32 KiB L1).
const STRIP_BYTES: usize = 16 * 1024;
/// Rows per register tile.
const MR: usize = 6;
/// Columns per register, and per column group: the tiles below count B in groups of 8
/// columns, the halves of a 16-column packed panel.
const NR: usize = 8;
/// Column groups per register tile (2 x 8 = 16 columns: one packed panel).
const PR: usize = 2;

/// AVX2 GEMM with 6x16 tiles (see [`super::GemmParams`]).
///
/// Falls back to the scalar kernel when the CPU lacks AVX2 or FMA, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx2` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the given dimensions.
pub fn gemm_6x16(p: GemmParams<'_>) {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        return super::scalar::gemm_4x16(p);
    }
    if p.m == 0 || p.n == 0 {
        return;
    }
    check_lengths(&p);
    // SAFETY: avx2 and fma were detected just above (the slot invariant of `for_isa` is that
    // this tier is only chosen when `CpuFeatures::supports(Isa::Avx2)`, the check makes the
    // function sound even if called directly). `check_lengths` proved every row of A, C,
    // residual, the bias and the packed B hold the elements the kernel reads or writes.
    unsafe { gemm(p) }
}

/// # Safety
/// AVX2 and FMA must be available and `check_lengths(p)` must hold with `m, n > 0`.
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm(p: GemmParams<'_>) {
    let o = Ops::new(p);
    let groups = o.n.div_ceil(NR);
    if o.m == 1 {
        // SAFETY: row 0 and groups 0..groups are inside the checked extents.
        unsafe { row_vector(&o, groups) };
        return;
    }
    // One strip of B (whole packed panels, about 16 KiB) at a time against every
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

/// Rows `i..i+R` against column groups `p0..p1`, two groups (one panel) at a time.
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and `p1 <= ceil(n / NR)`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_tile<const R: usize>(o: &Ops, i: usize, p0: usize, p1: usize, prefetch: bool) {
    let mut p = p0;
    while p + PR <= p1 {
        // SAFETY: forwarded caller contract; groups p, p+1 exist.
        unsafe {
            if prefetch {
                tile::<R, PR, true>(o, i, p)
            } else {
                tile::<R, PR, false>(o, i, p)
            }
        };
        p += PR;
    }
    if p < p1 {
        // SAFETY: forwarded caller contract; group p exists.
        unsafe { tile::<R, 1, false>(o, i, p) };
    }
}

/// A single row (matrix-vector product, e.g. a fully connected layer at batch 1): eight
/// column groups per tile so eight independent accumulators hide the FMA latency.
///
/// # Safety
/// As [`gemm`], with `m == 1` and `groups == ceil(n / NR)`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_vector(o: &Ops, groups: usize) {
    const WIDE: usize = 8;
    let mut p = 0;
    while p + WIDE <= groups {
        // SAFETY: forwarded caller contract; groups p..p+8 exist.
        unsafe { tile::<1, WIDE, false>(o, 0, p) };
        p += WIDE;
    }
    while p < groups {
        // SAFETY: forwarded caller contract; group p exists.
        unsafe { tile::<1, 1, false>(o, 0, p) };
        p += 1;
    }
}

/// One `R x (P*8)` tile: accumulate over `k` from the bias, then residual, activation and
/// store.
///
/// # Safety
/// As [`gemm`], with `i + R <= m` and groups `p..p+P` inside B.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)] // index loops keep `acc` in registers (see the epilogue)
unsafe fn tile<const R: usize, const P: usize, const PREFETCH: bool>(o: &Ops, i: usize, p: usize) {
    let full = (p + P) * NR <= o.n;
    let mut acc = [[_mm256_setzero_ps(); P]; R];
    // Every tile starts from the bias, edge tiles included: each output is then
    // bias + a_0 b_0 + a_1 b_1 + ... in that order whichever tile computes it, so results do
    // not depend on how the columns are split between calls (threads).
    if let Some(b) = o.bias {
        let bv: [__m256; P] = std::array::from_fn(|q| {
            let j = (p + q) * NR;
            // SAFETY: columns j..j+8 are < n in a full tile; otherwise only the masked
            // lanes, columns j.. < n, are read.
            unsafe {
                if full {
                    _mm256_loadu_ps(b.add(j))
                } else if j < o.n {
                    _mm256_maskload_ps(b.add(j), lane_mask(o.n - j))
                } else {
                    _mm256_setzero_ps()
                }
            }
        });
        acc = [bv; R];
    }
    // SAFETY: row r of A holds k elements at a + (i+r)*lda (check_lengths); column group g
    // is half g % 2 of packed panel g / 2, which holds k*PANEL elements (packed_len).
    unsafe {
        let a = o.a.add(i * o.lda);
        let group = |g: usize| o.b.add((g / 2) * o.k * PANEL + (g % 2) * NR);
        let b: [*const f32; P] = std::array::from_fn(|q| group(p + q));
        // The panel after this tile's (k * 16 floats, contiguous; tiles that prefetch start
        // on a panel) is pulled into L2 one 64-byte line (16 floats) per k step, so the next
        // strip's weights arrive from memory while this one computes.
        let next = o.b.wrapping_add((p / 2 + 1) * o.k * PANEL);
        for kk in 0..o.k {
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T1>(next.wrapping_add(kk * PANEL) as *const i8);
            }
            let mut bv = [_mm256_setzero_ps(); P];
            for (q, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(b[q].add(kk * PANEL));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(r * o.lda + kk));
                for (c, v) in row.iter_mut().zip(&bv) {
                    *c = _mm256_fmadd_ps(av, *v, *c);
                }
            }
        }
    }
    if full {
        // Whole-tile epilogue, written out here rather than called so the accumulators stay
        // in registers: the bias is already in them, the activation is chosen once for the
        // tile (in place in C for the activations without a vector form), no masks.
        let j0 = p * NR;
        let in_registers = vectorised(o.act);
        // SAFETY: all P*8 columns from j0 are < n, so inside C / residual, for rows i..i+R.
        unsafe {
            // Index loops, not iterators: references into `acc` made LLVM keep it in memory,
            // with a store per FMA in the k loop above.
            if let Some(res) = o.residual {
                for r in 0..R {
                    let src = res.add((i + r) * o.ldc + j0);
                    for q in 0..P {
                        acc[r][q] = _mm256_add_ps(acc[r][q], _mm256_loadu_ps(src.add(q * NR)));
                    }
                }
            }
            match o.act {
                Act::None => {}
                Act::Relu => {
                    let zero = _mm256_setzero_ps();
                    for r in 0..R {
                        for q in 0..P {
                            acc[r][q] = _mm256_max_ps(acc[r][q], zero);
                        }
                    }
                }
                Act::Clip { min, max } => {
                    let (lo, hi) = (_mm256_set1_ps(min), _mm256_set1_ps(max));
                    for r in 0..R {
                        for q in 0..P {
                            acc[r][q] = _mm256_min_ps(_mm256_max_ps(acc[r][q], lo), hi);
                        }
                    }
                }
                act if in_registers => {
                    for r in 0..R {
                        for q in 0..P {
                            acc[r][q] = apply_act(act, acc[r][q]);
                        }
                    }
                }
                _ => {}
            }
            for r in 0..R {
                let dst = o.c.add((i + r) * o.ldc + j0);
                for q in 0..P {
                    _mm256_storeu_ps(dst.add(q * NR), acc[r][q]);
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
        unsafe { store_row::<P>(o, i + r, p * NR, &row) };
    }
}

/// Epilogue for one tile row starting at column `j0`: `act(acc + residual)` (the bias is in
/// `acc` already) stored to the (up to `P*8`) columns that are `< n`.
///
/// # Safety
/// As [`gemm`], with `row < m` and `j0 < n`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store_row<const P: usize>(o: &Ops, row: usize, j0: usize, acc: &[__m256; P]) {
    let width = (o.n - j0).min(P * NR);
    let mut out = *acc;
    for (q, v) in out.iter_mut().enumerate() {
        let j = j0 + q * NR;
        if j >= o.n {
            break;
        }
        let w = (o.n - j).min(NR);
        let mask = lane_mask(w);
        let off = row * o.ldc + j;
        // SAFETY: lanes selected by `mask` are columns j..j+w < n of the residual row.
        unsafe {
            if let Some(r) = o.residual {
                let rv = if w == NR {
                    _mm256_loadu_ps(r.add(off))
                } else {
                    _mm256_maskload_ps(r.add(off), mask)
                };
                *v = _mm256_add_ps(*v, rv);
            }
        }
        *v = apply_act(o.act, *v);
    }
    if !vectorised(o.act) {
        let act = o.act;
        let mut tmp = [[0f32; NR]; P];
        for (t, v) in tmp.iter_mut().zip(&out) {
            // SAFETY: `t` is a valid 8-float buffer.
            unsafe { _mm256_storeu_ps(t.as_mut_ptr(), *v) };
        }
        activation(act, &mut tmp.as_flattened_mut()[..width]);
        for (t, v) in tmp.iter().zip(out.iter_mut()) {
            // SAFETY: `t` is a valid 8-float buffer.
            *v = unsafe { _mm256_loadu_ps(t.as_ptr()) };
        }
    }
    let base = row * o.ldc + j0;
    for (q, v) in out.iter().enumerate() {
        let j = j0 + q * NR;
        if j >= o.n {
            break;
        }
        // SAFETY: columns j..min(j+8, n) of C row `row` are inside C (check_lengths).
        unsafe {
            let dst = o.c.add(base + q * NR);
            if o.n - j >= NR {
                _mm256_storeu_ps(dst, *v);
            } else {
                _mm256_maskstore_ps(dst, lane_mask(o.n - j), *v);
            }
        }
    }
}
