//! Portable int8 GEMM: the reference every SIMD tier must match byte for byte.

use super::{check_lengths, padded_k, QGemmParams, QOut, KR, NR};

/// Scalar quantized GEMM, one output at a time over the packed panels.
pub fn qgemm_1x16(p: QGemmParams<'_>) {
    check_lengths(&p);
    let (m, n, k) = (p.m, p.n, p.k);
    if m == 0 || n == 0 {
        return;
    }
    let kp = padded_k(k);
    let mut out = p.out;
    let mut acc = [0i32; NR];
    for i in 0..m {
        let a = &p.a[i * p.lda..i * p.lda + k];
        for panel in 0..n.div_ceil(NR) {
            let j0 = panel * NR;
            let w = NR.min(n - j0);
            let bp = &p.b[panel * kp * NR..(panel + 1) * kp * NR];
            acc.copy_from_slice(&[0; NR]);
            for (kk, &av) in a.iter().enumerate() {
                let group = &bp[(kk / KR) * NR * KR..];
                for (j, s) in acc.iter_mut().enumerate() {
                    *s = s.wrapping_add(av as i32 * group[j * KR + kk % KR] as i32);
                }
            }
            for j in 0..w {
                let v = acc[j].wrapping_add(p.bias[j0 + j]);
                match &mut out {
                    QOut::U8 {
                        c,
                        ldc,
                        scale,
                        rq,
                        residual,
                    } => {
                        let at = i * *ldc + j0 + j;
                        let mut t = v as f32 * scale[j0 + j];
                        if let Some(r) = residual {
                            t += (r.r[at] as i32 - r.zero_point) as f32 * r.scale;
                        }
                        c.span(at, 1)[0] = rq.finish(t);
                    }
                    QOut::F32 { c, ldc, scale } => {
                        c.span(i * *ldc + j0 + j, 1)[0] = v as f32 * scale[j0 + j]
                    }
                }
            }
        }
    }
}
