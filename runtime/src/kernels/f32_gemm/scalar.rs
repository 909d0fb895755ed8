//! Portable GEMM: 4x16 register tiles over packed B panels, rows blocked for cache.

use super::{GemmParams, NR};
use crate::kernels::f32_eltwise::scalar::activation;

const MR: usize = 4;
const ROW_BLOCK: usize = 64;

#[inline(always)]
fn tile<const R: usize>(k: usize, a: &[f32], lda: usize, bp: &[f32]) -> [[f32; NR]; R] {
    let mut acc = [[0f32; NR]; R];
    let rows: [&[f32]; R] = std::array::from_fn(|r| &a[r * lda..r * lda + k]);
    for (kk, b) in bp.chunks_exact(NR).take(k).enumerate() {
        for r in 0..R {
            let av = rows[r][kk];
            for j in 0..NR {
                acc[r][j] += av * b[j];
            }
        }
    }
    acc
}

#[inline(always)]
fn store<const R: usize>(p: &mut GemmParams<'_>, i0: usize, j0: usize, acc: &[[f32; NR]; R]) {
    let w = NR.min(p.n - j0);
    for (r, row) in acc.iter().enumerate() {
        let off = (i0 + r) * p.ldc + j0;
        let c = p.c.span(off, w);
        c.copy_from_slice(&row[..w]);
        if let Some(bias) = p.bias {
            for (x, b) in c.iter_mut().zip(&bias[j0..j0 + w]) {
                *x += b;
            }
        }
        if let Some(res) = p.residual {
            for (x, b) in c.iter_mut().zip(&res[off..off + w]) {
                *x += b;
            }
        }
    }
}

fn run_tile<const R: usize>(p: &mut GemmParams<'_>, i0: usize, panel: usize) {
    let k = p.k;
    let bp = &p.b[panel * k * NR..(panel + 1) * k * NR];
    let acc = tile::<R>(k, &p.a[i0 * p.lda..], p.lda, bp);
    store::<R>(p, i0, panel * NR, &acc);
}

/// Scalar GEMM with 4x16 tiles (see [`super::GemmParams`]).
pub fn gemm_4x16(mut p: GemmParams<'_>) {
    let (m, n) = (p.m, p.n);
    if m == 0 || n == 0 {
        return;
    }
    let panels = n.div_ceil(NR);
    let mut ib = 0;
    while ib < m {
        let ie = (ib + ROW_BLOCK).min(m);
        for panel in 0..panels {
            let mut i = ib;
            while i + MR <= ie {
                run_tile::<MR>(&mut p, i, panel);
                i += MR;
            }
            match ie - i {
                3 => run_tile::<3>(&mut p, i, panel),
                2 => run_tile::<2>(&mut p, i, panel),
                1 => run_tile::<1>(&mut p, i, panel),
                _ => {}
            }
        }
        if p.act != crate::kernels::Act::None {
            for i in ib..ie {
                activation(p.act, p.c.span(i * p.ldc, n));
            }
        }
        ib = ie;
    }
}
