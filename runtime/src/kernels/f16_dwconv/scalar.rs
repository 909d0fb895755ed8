//! Portable f16-weight depthwise convolution: weights widened to f32, everything computed
//! in f32. The reference the fp16-arithmetic kernels are tested against.

use super::F16DwArgs;
use crate::kernels::f32_eltwise::scalar::activation;

/// Depthwise NHWC convolution for any kernel / stride / dilation / padding, f32 arithmetic.
pub fn dwconv_generic(a: F16DwArgs<'_>) {
    let g = a.g;
    let c = g.c;
    if c == 0 {
        return;
    }
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                let yrow = &mut a.y[pix * c..(pix + 1) * c];
                yrow.copy_from_slice(&a.bias[..c]);
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        let xrow = &a.x[((n * g.h + iy) * g.w + ix) * c..][..c];
                        let wrow = &a.w[(ky * g.kw + kx) * c..][..c];
                        for ((y, &x), w) in yrow.iter_mut().zip(xrow).zip(wrow) {
                            *y += x * w.to_f32();
                        }
                    }
                }
                if let Some(r) = a.residual {
                    for (y, &v) in yrow.iter_mut().zip(&r[pix * c..(pix + 1) * c]) {
                        *y += v;
                    }
                }
                activation(a.act, yrow);
            }
        }
    }
}
