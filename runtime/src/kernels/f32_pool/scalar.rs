//! Portable pooling, channel-innermost. Written so the compiler vectorises the channel loops;
//! `avx2.rs` compiles the same code with AVX2 enabled.

use super::ConvGeom;

#[inline(always)]
fn pool(
    g: &ConvGeom,
    x: &[f32],
    y: &mut [f32],
    init: f32,
    f: impl Fn(&mut [f32], &[f32]),
    fin: impl Fn(&mut [f32], usize),
) {
    let c = g.c;
    if c == 0 {
        return;
    }
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                let yrow = &mut y[pix * c..(pix + 1) * c];
                yrow.fill(init);
                let mut count = 0;
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        f(yrow, &x[((n * g.h + iy) * g.w + ix) * c..][..c]);
                        count += 1;
                    }
                }
                fin(yrow, count);
            }
        }
    }
}

/// Max pooling (padding never wins).
#[inline(always)]
pub fn maxpool(g: &ConvGeom, x: &[f32], y: &mut [f32]) {
    pool(
        g,
        x,
        y,
        f32::NEG_INFINITY,
        |acc, row| {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = a.max(v);
            }
        },
        |_, _| {},
    );
}

/// Average pooling.
#[inline(always)]
pub fn avgpool(g: &ConvGeom, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let full = g.kh * g.kw;
    pool(
        g,
        x,
        y,
        0.0,
        |acc, row| {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        },
        |acc, count| {
            let d = if count_include_pad {
                full
            } else {
                count.max(1)
            };
            let inv = 1.0 / d as f32;
            for a in acc.iter_mut() {
                *a *= inv;
            }
        },
    );
}

/// Global average pooling over the `hw` pixels of each image.
#[inline(always)]
pub fn global_avg(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    let inv = if hw == 0 { 0.0 } else { 1.0 / hw as f32 };
    for b in 0..n {
        let yrow = &mut y[b * c..(b + 1) * c];
        yrow.fill(0.0);
        for p in 0..hw {
            for (a, &v) in yrow.iter_mut().zip(&x[(b * hw + p) * c..][..c]) {
                *a += v;
            }
        }
        for a in yrow.iter_mut() {
            *a *= inv;
        }
    }
}
