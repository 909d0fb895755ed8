//! Portable int8 depthwise convolution: the reference every SIMD tier must match.

use super::{check_lengths, QDwArgs};

/// Scalar quantized depthwise convolution, any kernel size, stride, dilation and padding.
pub fn qdwconv_generic(a: QDwArgs<'_>) {
    if !check_lengths(&a) {
        return;
    }
    let g = a.g;
    let c = g.c;
    let mut acc = vec![0i32; c];
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                acc.copy_from_slice(&a.bias[..c]);
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        let xs = &a.x[((b * g.h + iy) * g.w + ix) * c..][..c];
                        let ws = &a.w[(ky * g.kw + kx) * c..][..c];
                        for ((s, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                            *s = s.wrapping_add((xv as i32 - a.x_zero_point) * wv as i32);
                        }
                    }
                }
                let ys = &mut a.y[((b * g.oh + oy) * g.ow + ox) * c..][..c];
                for ((y, &s), &sc) in ys.iter_mut().zip(&acc).zip(a.scale) {
                    *y = a.rq.apply(s, sc);
                }
            }
        }
    }
}
