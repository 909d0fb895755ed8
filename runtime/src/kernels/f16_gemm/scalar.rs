//! Portable f16-weight GEMM: weights widened to f32 and everything computed in f32. It is
//! the reference the fp16-arithmetic kernels are tested against (they may differ from it
//! only by fp16 rounding).

use super::{padded_k, F16GemmParams, NR};
use crate::kernels::f32_eltwise::scalar::activation;

/// Rows per tile.
const MR: usize = 4;

/// Scalar f16-weight GEMM with 4x16 tiles, f32 arithmetic (see [`super::F16GemmParams`]).
pub fn gemm_4x16(p: F16GemmParams<'_>) {
    let (m, n, k) = (p.m, p.n, p.k);
    if m == 0 || n == 0 {
        return;
    }
    let kp = padded_k(k);
    for panel in 0..n.div_ceil(NR) {
        let j0 = panel * NR;
        let w = NR.min(n - j0);
        let bp = &p.b[panel * kp * NR..][..k * NR];
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let mut acc = [[0f32; NR]; MR];
            for (kk, b) in bp.chunks_exact(NR).enumerate() {
                let b: [f32; NR] = std::array::from_fn(|j| b[j].to_f32());
                for (r, row) in acc.iter_mut().enumerate().take(rows) {
                    let av = p.a[(i0 + r) * p.lda + kk];
                    for (x, bj) in row.iter_mut().zip(b) {
                        *x += av * bj;
                    }
                }
            }
            for (r, row) in acc.iter().enumerate().take(rows) {
                let off = (i0 + r) * p.ldc + j0;
                let c = &mut p.c[off..off + w];
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
                activation(p.act, c);
            }
        }
    }
}
