//! Execution of quantized steps and of data movement on 8-bit tensors, which view their
//! arena regions as bytes.

use crate::error::{Error, Result};
use crate::exec::{split, Reader};
use crate::kernels::f32_copy::copy_view;
use crate::kernels::f32_copy::scalar::{copy_strided, interleave2};
use crate::kernels::qs8_dwconv::QDwArgs;
use crate::kernels::qs8_gemm::{QGemmParams, QOut, QResidual};
use crate::kernels::Kernels;
use crate::plan::{Loc, Step};
use crate::qplan::{Im2col, QGemm, QStep};

/// The f32 slots holding a byte region.
fn slots(l: Loc) -> Loc {
    Loc {
        len: l.len.div_ceil(4),
        ..l
    }
}

impl<'a> Reader<'a> {
    /// The bytes of an 8-bit tensor region.
    pub(crate) fn bytes(&self, l: Loc) -> Result<&'a [u8]> {
        Ok(&bytemuck::cast_slice(self.get(slots(l))?)[..l.len])
    }
}

/// Split the arena around an 8-bit output region, returning it as bytes.
pub(crate) fn split_bytes<'a>(
    arena: &'a mut [f32],
    consts: &'a [f32],
    out: Loc,
) -> Result<(Reader<'a>, &'a mut [u8])> {
    let (rd, y) = split(arena, consts, slots(out))?;
    Ok((rd, &mut bytemuck::cast_slice_mut(y)[..out.len]))
}

/// Run a data movement step whose regions hold bytes.
pub(crate) fn exec_bytes(
    step: &Step,
    arena: &mut [f32],
    consts: &[f32],
    scratch: &mut [f32],
) -> Result<()> {
    match step {
        Step::Copy { parts, .. } => {
            for p in parts {
                let (rd, y) = split_bytes(arena, consts, p.dst)?;
                copy_view(
                    copy_strided,
                    &p.walk,
                    rd.bytes(p.src)?,
                    p.src_off,
                    y,
                    p.dst_off,
                );
            }
        }
        Step::Interleave { parts } => {
            for p in parts {
                let (rd, y) = split_bytes(arena, consts, p.out)?;
                let (a, b) = (rd.bytes(p.a)?, rd.bytes(p.b)?);
                interleave2(
                    p.pixels,
                    p.n,
                    a.get(p.a_off..).unwrap_or_default(),
                    p.sa,
                    b.get(p.b_off..).unwrap_or_default(),
                    p.sb,
                    y,
                    p.sy,
                );
            }
        }
        Step::CopyVia {
            gather,
            scatter,
            out,
        } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            let sb: &mut [u8] = bytemuck::cast_slice_mut(scratch);
            copy_view(
                copy_strided,
                &gather.walk,
                rd.bytes(gather.loc)?,
                gather.off,
                &mut sb[gather.scratch * 4..],
                0,
            );
            copy_view(
                copy_strided,
                &scatter.walk,
                &sb[scatter.scratch * 4..],
                0,
                y,
                scatter.off,
            );
        }
        other => {
            return Err(Error::Unsupported(format!(
                "internal: byte data movement for {other:?}"
            )))
        }
    }
    Ok(())
}

/// Gather one group's convolution windows into byte rows (padding reads the zero point).
fn im2col(im: &Im2col, x: &[u8], rows: &mut [u8]) {
    let g = &im.geom;
    let row_len = g.kh * g.kw * im.cg;
    // With all channels and no horizontal dilation, one kernel row of an interior window
    // is one contiguous run of `kw * c` input bytes.
    let runs = im.cg == g.c && g.dw == 1;
    let (x_lo, x_hi) = g.interior_x();
    let span = g.kw * g.c;
    let mut at = 0;
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let row = &mut rows[at..at + row_len];
                at += row_len;
                if runs && (x_lo..x_hi).contains(&ox) {
                    let ix0 = ox * g.sw - g.pl;
                    for (ky, dst) in row.chunks_exact_mut(span).enumerate() {
                        match g.in_y(oy, ky) {
                            Some(iy) => {
                                let src = ((b * g.h + iy) * g.w + ix0) * g.c;
                                dst.copy_from_slice(&x[src..src + span]);
                            }
                            None => dst.fill(im.zero_point),
                        }
                    }
                    continue;
                }
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let dst = &mut row[(ky * g.kw + kx) * im.cg..][..im.cg];
                        match (g.in_y(oy, ky), g.in_x(ox, kx)) {
                            (Some(iy), Some(ix)) => {
                                let src = ((b * g.h + iy) * g.w + ix) * g.c + im.c0;
                                dst.copy_from_slice(&x[src..src + im.cg]);
                            }
                            _ => dst.fill(im.zero_point),
                        }
                    }
                }
            }
        }
    }
}

fn run_gemm(
    k: &Kernels,
    q: &QGemm,
    arena: &mut [f32],
    consts: &[f32],
    scratch: &mut [f32],
) -> Result<()> {
    let sb: &mut [u8] = bytemuck::cast_slice_mut(scratch);
    let (rd, out) = if q.out_f32 {
        let (rd, y) = split(arena, consts, q.out)?;
        (
            rd,
            QOut::F32 {
                c: &mut y[q.out_off..],
                ldc: q.ldc,
                scale: &q.scale,
            },
        )
    } else {
        let (rd, y) = split_bytes(arena, consts, q.out)?;
        let residual = match q.residual {
            Some((r, zero_point, scale)) => Some(QResidual {
                r: &rd.bytes(r)?[q.out_off..],
                zero_point,
                scale,
            }),
            None => None,
        };
        (
            rd,
            QOut::U8 {
                c: &mut y[q.out_off..],
                ldc: q.ldc,
                scale: &q.scale,
                rq: q.rq,
                residual,
            },
        )
    };
    let x = rd.bytes(q.x)?;
    let a: &[u8] = match &q.pre {
        Some(im) => {
            let rows = &mut sb[im.scratch * 4..][..q.m * q.k];
            im2col(im, x, rows);
            rows
        }
        None => &x[q.a_off..],
    };
    (k.qs8_gemm.f)(QGemmParams {
        m: q.m,
        n: q.n,
        k: q.k,
        a,
        lda: q.lda,
        b: &q.b,
        bias: &q.bias,
        out,
    });
    Ok(())
}

/// Run one quantized step.
pub(crate) fn exec_q8(
    k: &Kernels,
    step: &QStep,
    arena: &mut [f32],
    consts: &[f32],
    scratch: &mut [f32],
) -> Result<()> {
    match step {
        QStep::Gemm(gemms) => {
            for q in gemms {
                run_gemm(k, q, arena, consts, scratch)?;
            }
        }
        QStep::Dw {
            geom,
            x,
            x_zero_point,
            w,
            bias,
            scale,
            rq,
            out,
        } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            (k.qs8_dwconv.f)(QDwArgs {
                g: geom,
                x: rd.bytes(*x)?,
                x_zero_point: *x_zero_point,
                w,
                bias,
                scale,
                rq: *rq,
                y,
            });
        }
        QStep::GlobalAvg {
            n,
            hw,
            c,
            x,
            x_zero_point,
            scale,
            rq,
            out,
        } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            let x = rd.bytes(*x)?;
            let mut acc = vec![0i32; *c];
            for b in 0..*n {
                acc.fill(-(*hw as i32) * x_zero_point);
                for p in x[b * hw * c..(b + 1) * hw * c].chunks_exact(*c) {
                    for (s, &v) in acc.iter_mut().zip(p) {
                        *s += v as i32;
                    }
                }
                for (yv, &s) in y[b * c..(b + 1) * c].iter_mut().zip(&acc) {
                    *yv = rq.apply(s, *scale);
                }
            }
        }
        QStep::Lut { table, x, out } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            for (v, &q) in y.iter_mut().zip(rd.bytes(*x)?) {
                *v = table[q as usize];
            }
        }
        QStep::Binary { p, a, b, chan, out } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            let (av, bv) = (rd.bytes(*a)?, rd.bytes(*b)?);
            let f = k.qs8_binary.f;
            if *chan == 0 {
                f(p, av, bv, y);
            } else {
                // `bv` holds one value per (batch, channel); `av` is [n, hw, c].
                let per_batch = av.len() / (bv.len() / chan).max(1);
                for (bi, gates) in bv.chunks_exact(*chan).enumerate() {
                    let range = bi * per_batch..(bi + 1) * per_batch;
                    let rows = y[range.clone()].chunks_exact_mut(*chan);
                    for (yr, ar) in rows.zip(av[range].chunks_exact(*chan)) {
                        f(p, ar, gates, yr);
                    }
                }
            }
        }
        QStep::AvgPool {
            geom: g,
            include_pad,
            x,
            x_zero_point,
            scale,
            rq,
            out,
        } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            let x = rd.bytes(*x)?;
            let c = g.c;
            let mut acc = vec![0i32; c];
            for b in 0..g.n {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        acc.fill(0);
                        let mut taps = 0;
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_y(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_x(ox, kx) else { continue };
                                taps += 1;
                                let xs = &x[((b * g.h + iy) * g.w + ix) * c..][..c];
                                for (s, &v) in acc.iter_mut().zip(xs) {
                                    *s += v as i32 - x_zero_point;
                                }
                            }
                        }
                        let count = if *include_pad {
                            g.kh * g.kw
                        } else {
                            taps.max(1)
                        };
                        // One f32 multiply by a per-window factor, then the usual rule.
                        let m = scale / count as f32;
                        let ys = &mut y[((b * g.oh + oy) * g.ow + ox) * c..][..c];
                        for (v, &s) in ys.iter_mut().zip(&acc) {
                            *v = rq.apply(s, m);
                        }
                    }
                }
            }
        }
        QStep::MaxPool { geom: g, x, out } => {
            let (rd, y) = split_bytes(arena, consts, *out)?;
            let x = rd.bytes(*x)?;
            let c = g.c;
            for b in 0..g.n {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let ys = &mut y[((b * g.oh + oy) * g.ow + ox) * c..][..c];
                        ys.fill(0);
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_y(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_x(ox, kx) else { continue };
                                let xs = &x[((b * g.h + iy) * g.w + ix) * c..][..c];
                                for (m, &v) in ys.iter_mut().zip(xs) {
                                    *m = (*m).max(v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
