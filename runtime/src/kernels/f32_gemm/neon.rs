//! NEON GEMM over the shared 16-column packed panels. aarch64 (32 vector registers): 6x16
//! tiles, 24 accumulators, one broadcast of A per row and k. 32-bit ARM (16 registers): 4x8
//! tiles, each panel walked as two 8-column halves. Bias, residual and ReLU / clamps are
//! applied in registers before the one store of each tile; other activations run on the
//! stored tile while it is in cache.

use super::{check_lengths, GemmParams, Ops, NR as PANEL};
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::neon_ops::{self as v, F32x4, VecAct};

/// Rows per register tile.
#[cfg(target_arch = "aarch64")]
const MR: usize = 6;
#[cfg(target_arch = "arm")]
const MR: usize = 4;
/// Four-float vectors per tile row (16 columns on aarch64, 8 on 32-bit ARM).
#[cfg(target_arch = "aarch64")]
const G: usize = 4;
#[cfg(target_arch = "arm")]
const G: usize = 2;
/// Columns per tile.
const NC: usize = 4 * G;

/// NEON GEMM with 6x16 tiles on aarch64 (4x8 on 32-bit ARM); see [`super::GemmParams`].
/// Panics (like the scalar kernel) when a slice is too short for the given dimensions.
#[cfg(target_arch = "aarch64")]
pub fn gemm_6x16(p: GemmParams<'_>) {
    gemm(p)
}

/// NEON GEMM with 4x8 tiles (32-bit ARM); see [`super::GemmParams`].
#[cfg(target_arch = "arm")]
pub fn gemm_4x8(p: GemmParams<'_>) {
    gemm(p)
}

fn gemm(p: GemmParams<'_>) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    check_lengths(&p);
    let o = Ops::new(p);
    let vact = VecAct::of(o.act);
    let tiles_per_panel = PANEL / NC;
    for panel in 0..o.n.div_ceil(PANEL) {
        for half in 0..tiles_per_panel {
            let j0 = panel * PANEL + half * NC;
            if j0 >= o.n {
                break;
            }
            let mut i = 0;
            while i < o.m {
                let rows = MR.min(o.m - i);
                // SAFETY: rows i..i+rows < m, columns j0..j0+NC inside panel `panel`
                // (whose packed data holds k*PANEL floats, check_lengths), stores limited
                // to the n columns of C.
                unsafe {
                    match rows {
                        MR => tile::<MR>(&o, i, panel, half, vact),
                        #[cfg(target_arch = "aarch64")]
                        5 => tile::<5>(&o, i, panel, half, vact),
                        #[cfg(target_arch = "aarch64")]
                        4 => tile::<4>(&o, i, panel, half, vact),
                        3 => tile::<3>(&o, i, panel, half, vact),
                        2 => tile::<2>(&o, i, panel, half, vact),
                        _ => tile::<1>(&o, i, panel, half, vact),
                    }
                }
                i += rows;
            }
        }
    }
}

/// Rows `i..i+R`, columns `panel*16 + half*NC ..` (up to NC of them).
///
/// # Safety
/// `i + R <= m`, `panel < ceil(n/16)`, `half*NC < 16`, and `check_lengths` held.
#[inline(always)]
unsafe fn tile<const R: usize>(o: &Ops, i: usize, panel: usize, half: usize, vact: Option<VecAct>) {
    let j0 = panel * PANEL + half * NC;
    let mut acc = [[v::splat(0.0); G]; R];
    // SAFETY: the packed panel holds k rows of PANEL floats; `half*NC + 4*G <= PANEL`.
    // Row r of A holds k floats at a + (i+r)*lda.
    unsafe {
        let mut bp = o.b.add(panel * o.k * PANEL + half * NC);
        let a0 = o.a.add(i * o.lda);
        for kk in 0..o.k {
            let b: [F32x4; G] = std::array::from_fn(|g| v::load(bp.add(4 * g)));
            for (r, row) in acc.iter_mut().enumerate() {
                let a = v::load_dup(a0.add(r * o.lda + kk));
                for g in 0..G {
                    row[g] = v::mul_add(row[g], a, b[g]);
                }
            }
            bp = bp.add(PANEL);
        }
    }
    let w = NC.min(o.n - j0);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row i+r < m; columns j0..j0+w < n of C, residual and bias.
        unsafe { store_row(o, i + r, j0, w, row, vact) };
    }
}

/// Bias, residual and activation for one tile row, then the store of its `w` columns.
///
/// # Safety
/// `row < m`, `j0 + w <= n`, and `check_lengths` held.
#[inline(always)]
unsafe fn store_row(
    o: &Ops,
    row: usize,
    j0: usize,
    w: usize,
    acc: &[F32x4; G],
    vact: Option<VecAct>,
) {
    // SAFETY: caller contract: C row `row` and the residual row hold n floats at
    // row*ldc, the bias n floats; every access below stays in columns j0..j0+w.
    unsafe {
        let c = o.c.add(row * o.ldc + j0);
        if w == NC {
            for (g, &a) in acc.iter().enumerate() {
                let mut x = a;
                if let Some(bias) = o.bias {
                    x = v::add(x, v::load(bias.add(j0 + 4 * g)));
                }
                if let Some(res) = o.residual {
                    x = v::add(x, v::load(res.add(row * o.ldc + j0 + 4 * g)));
                }
                if let Some(va) = vact {
                    x = va.apply(x);
                }
                v::store(c.add(4 * g), x);
            }
            if vact.is_none() {
                activation(o.act, std::slice::from_raw_parts_mut(c, w));
            }
            return;
        }
        let mut tmp = [0f32; NC];
        for (g, &a) in acc.iter().enumerate() {
            v::store(tmp.as_mut_ptr().add(4 * g), a);
        }
        let out = std::slice::from_raw_parts_mut(c, w);
        for (j, y) in out.iter_mut().enumerate() {
            let mut x = tmp[j];
            if let Some(bias) = o.bias {
                x += *bias.add(j0 + j);
            }
            if let Some(res) = o.residual {
                x += *res.add(row * o.ldc + j0 + j);
            }
            *y = x;
        }
        activation(o.act, out);
    }
}
