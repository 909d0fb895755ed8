//! Portable direct convolution: one output pixel row (all output channels, contiguous in
//! NHWC) accumulated tap by tap, innermost over output channels of a group.

use super::ConvArgs;
use crate::kernels::f32_eltwise::scalar::activation;

/// Direct NHWC convolution for any groups / kernel / stride / dilation / padding.
pub fn conv_direct(a: ConvArgs<'_>) {
    let g = a.g;
    let groups = g.groups.max(1);
    let (cg, og) = (g.c / groups, g.o / groups);
    if g.o == 0 {
        return;
    }
    let wg = g.kh * g.kw * cg * og;
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                let yrow = &mut a.y[pix * g.o..(pix + 1) * g.o];
                yrow.copy_from_slice(&a.bias[..g.o]);
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        let xrow = &a.x[((n * g.h + iy) * g.w + ix) * g.c..][..g.c];
                        for gi in 0..groups {
                            let wt = &a.w[gi * wg + (ky * g.kw + kx) * cg * og..][..cg * og];
                            let acc = &mut yrow[gi * og..(gi + 1) * og];
                            for (ic, wrow) in wt.chunks_exact(og).enumerate() {
                                let xv = xrow[gi * cg + ic];
                                for (y, &w) in acc.iter_mut().zip(wrow) {
                                    *y += xv * w;
                                }
                            }
                        }
                    }
                }
                if let Some(r) = a.residual {
                    for (y, &v) in yrow.iter_mut().zip(&r[pix * g.o..(pix + 1) * g.o]) {
                        *y += v;
                    }
                }
                activation(a.act, yrow);
            }
        }
    }
}
