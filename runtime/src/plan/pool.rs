//! Pooling and reductions: max / average pooling (f32 and int8, split over output rows like
//! the convolutions), global average pooling (one unit: a few thousand additions), and
//! generic strided reductions.

use super::arena::{walk2, Buf, Cx, Loc, Out, Outs};
use super::conv::{for_bands, rows_work, window_geom};
use super::planner::{q8_io, q8_unsupported, Lowered, Planner};
use super::step::{Step, Work};
use crate::error::{Error, Result};
use crate::ir::{Op, PoolKind, ReduceOp};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::requant::Requant;
use crate::kernels::walk::Walk;

/// The window function of a [`Pool`] step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Window {
    /// f32 max.
    Max,
    /// f32 average; the flag counts padding taps in the divisor.
    Avg { include_pad: bool },
    /// 8-bit max (input and output share their quantization).
    QMax,
    /// 8-bit average: `y = requant(Σ (x - zx), scale / count)` with `count` the window size,
    /// or only its in-bounds taps without `include_pad`.
    QAvg {
        include_pad: bool,
        x_zero_point: i32,
        /// `sx / sy`.
        scale: f32,
        rq: Requant,
    },
}

/// Max / average pooling, NHWC.
#[derive(Debug)]
pub(crate) struct Pool {
    pub window: Window,
    pub geom: ConvGeom,
    pub x: Loc,
    pub out: Loc,
}

impl Step for Pool {
    fn outs(&self) -> Vec<Out> {
        let per = self.geom.ow * self.geom.c;
        match self.window {
            Window::QMax | Window::QAvg { .. } => vec![Out::bytes(self.out, per)],
            _ => vec![Out::f32(self.out, per)],
        }
    }

    fn work(&self) -> Work {
        let g = &self.geom;
        let size = match self.window {
            Window::QMax | Window::QAvg { .. } => 1,
            _ => 4,
        };
        rows_work(g, (g.n * g.oh * g.ow * g.c * g.kh * g.kw) as u64, size)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (g, units) = (&self.geom, out.units());
        let c = g.c;
        match self.window {
            Window::Max | Window::Avg { .. } => {
                let x = cx.get(self.x)?;
                let (max, avg) = (cx.k.f32_maxpool.f, cx.k.f32_avgpool.f);
                for_bands(
                    g,
                    units,
                    c,
                    x,
                    None,
                    out.f32(0)?,
                    |bg, x, _, y| match self.window {
                        Window::Avg { include_pad } => avg(bg, include_pad, x, y),
                        _ => max(bg, x, y),
                    },
                );
            }
            Window::QMax => {
                let x = cx.bytes(self.x)?;
                for_bands(g, units, c, x, None, out.bytes(0)?, |bg, x, _, y| {
                    q_maxpool(bg, x, y)
                });
            }
            Window::QAvg {
                include_pad,
                x_zero_point,
                scale,
                rq,
            } => {
                let x = cx.bytes(self.x)?;
                let acc: &mut [i32] = bytemuck::cast_slice_mut(&mut cx.scratch[..c]);
                let q = QAvg {
                    include_pad,
                    x_zero_point,
                    scale,
                    rq,
                };
                for_bands(g, units, c, x, None, out.bytes(0)?, |bg, x, _, y| {
                    q.run(bg, x, y, acc)
                });
            }
        }
        Ok(())
    }

    fn scratch(&self) -> usize {
        match self.window {
            Window::QAvg { .. } => self.geom.c,
            _ => 0,
        }
    }
}

/// Max pooling of bytes.
fn q_maxpool(g: &ConvGeom, x: &[u8], y: &mut [u8]) {
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

/// The parameters of an 8-bit windowed average.
struct QAvg {
    include_pad: bool,
    x_zero_point: i32,
    scale: f32,
    rq: Requant,
}

impl QAvg {
    fn run(&self, g: &ConvGeom, x: &[u8], y: &mut [u8], acc: &mut [i32]) {
        let c = g.c;
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
                                *s += v as i32 - self.x_zero_point;
                            }
                        }
                    }
                    let count = if self.include_pad {
                        g.kh * g.kw
                    } else {
                        taps.max(1)
                    };
                    // One f32 multiply by a per-window factor, then the usual rule.
                    let m = self.scale / count as f32;
                    let ys = &mut y[((b * g.oh + oy) * g.ow + ox) * c..][..c];
                    for (v, &s) in ys.iter_mut().zip(acc.iter()) {
                        *v = self.rq.apply(s, m);
                    }
                }
            }
        }
    }
}

/// Global average over the pixels of NHWC data (f32, or 8-bit with requantization:
/// `y = requant(Σ x - hw * zx, scale)` with `scale = sx / (hw * sy)`).
#[derive(Debug)]
pub(crate) struct GlobalAvg {
    pub n: usize,
    pub hw: usize,
    pub c: usize,
    pub x: Loc,
    /// `(x zero point, scale, rule)` for 8-bit data.
    pub q: Option<(i32, f32, Requant)>,
    pub out: Loc,
}

impl Step for GlobalAvg {
    fn outs(&self) -> Vec<Out> {
        match self.q {
            Some(_) => vec![Out::bytes(self.out, self.out.len)],
            None => vec![Out::f32(self.out, self.out.len)],
        }
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn scratch(&self) -> usize {
        self.q.map_or(0, |_| self.c)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (n, hw, c) = (self.n, self.hw, self.c);
        let Some((zx, scale, rq)) = self.q else {
            (cx.k.f32_global_avg.f)(n, hw, c, cx.get(self.x)?, out.f32(0)?);
            return Ok(());
        };
        let x = cx.bytes(self.x)?;
        let y = out.bytes(0)?;
        let acc: &mut [i32] = bytemuck::cast_slice_mut(&mut cx.scratch[..c]);
        for b in 0..n {
            acc.fill(-(hw as i32) * zx);
            for p in x[b * hw * c..(b + 1) * hw * c].chunks_exact(c) {
                for (s, &v) in acc.iter_mut().zip(p) {
                    *s += v as i32;
                }
            }
            for (yv, &s) in y[b * c..(b + 1) * c].iter_mut().zip(acc.iter()) {
                *yv = rq.apply(s, scale);
            }
        }
        Ok(())
    }
}

/// Generic strided reduction: `walk` is over the input as `[in, out]` (out strides 0 on
/// reduced axes).
#[derive(Debug)]
pub(crate) struct Reduce {
    pub op: ReduceOp,
    pub x: Loc,
    pub walk: Walk<2>,
    pub count: usize,
    pub out: Loc,
}

impl Step for Reduce {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let x = cx.get(self.x)?;
        let y = out.f32(0)?;
        let init = match self.op {
            ReduceOp::Sum | ReduceOp::Mean => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
        };
        y.fill(init);
        macro_rules! go {
            ($f:expr) => {
                self.walk.run(|[ox, oy], n, [sx, sy]| {
                    for j in 0..n {
                        let t = &mut y[oy + j * sy];
                        *t = $f(*t, x[ox + j * sx]);
                    }
                })
            };
        }
        match self.op {
            ReduceOp::Sum | ReduceOp::Mean => go!(|a: f32, b: f32| a + b),
            ReduceOp::Max => go!(|a: f32, b: f32| a.max(b)),
            ReduceOp::Min => go!(|a: f32, b: f32| a.min(b)),
        }
        if self.op == ReduceOp::Mean && self.count > 0 {
            let inv = 1.0 / self.count as f32;
            y.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(())
    }
}

/// Lower a Pool2d or Reduce node.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    let node = p.node(i);
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let k = p.k;
    // 8-bit: `(sx, zx)`, `(sy, zy)`; f32 outputs of 8-bit inputs are not pooled here.
    let q = if byte_input {
        let (xq, yq, out_f32) = q8_io(p, node)?;
        if out_f32 {
            return Err(q8_unsupported(node));
        }
        Some((xq, yq))
    } else {
        None
    };
    match &node.op {
        Op::Pool2d { kind, window } => {
            if x.loc.buf != Buf::Arena || x.shape.len() != 4 {
                return Err(match q {
                    Some(_) => q8_unsupported(node),
                    None => Error::Unsupported(format!("node {name:?}: Pool2d on a constant")),
                });
            }
            let geom = window_geom(&x.shape, &out.shape, window, x.shape[1], 1);
            let global = geom.kh == geom.h
                && geom.kw == geom.w
                && window.pads == [0; 4]
                && geom.oh == 1
                && geom.ow == 1;
            let pool = |w: Window, kernel: &'static str| {
                let step = Pool {
                    window: w,
                    geom,
                    x: x.loc,
                    out: out.loc,
                };
                Lowered::new(step, kernel, 0, 0)
            };
            match (kind, q) {
                (PoolKind::Avg { .. }, _) if global => {
                    Ok(global_avg(p, &x.shape, x.loc, out.loc, q))
                }
                (PoolKind::Max, None) => Ok(pool(Window::Max, k.f32_maxpool.name)),
                (PoolKind::Avg { count_include_pad }, None) => Ok(pool(
                    Window::Avg {
                        include_pad: *count_include_pad,
                    },
                    k.f32_avgpool.name,
                )),
                (PoolKind::Max, Some((xq, yq))) if xq == yq => {
                    Ok(pool(Window::QMax, "u8_pool::scalar::maxpool"))
                }
                (PoolKind::Avg { count_include_pad }, Some(((sx, zx), (sy, zy)))) => Ok(pool(
                    Window::QAvg {
                        include_pad: *count_include_pad,
                        x_zero_point: zx,
                        scale: sx / sy,
                        rq: Requant::new(zy, 0, 255),
                    },
                    "qs8_pool::scalar::avgpool",
                )),
                _ => Err(q8_unsupported(node)),
            }
        }
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => {
            let r = x.shape.len();
            let spatial = r == 4 && x.strides[1] == 1 && x.loc.buf == Buf::Arena && {
                let mut s = axes.clone();
                s.sort();
                s == [2, 3]
            };
            if spatial && *op == ReduceOp::Mean {
                return Ok(global_avg(p, &x.shape, x.loc, out.loc, q));
            }
            if q.is_some() {
                return Err(q8_unsupported(node));
            }
            let mut ost = vec![0usize; r];
            let mut oi = 0;
            let mut count = 1;
            for (d, st) in ost.iter_mut().enumerate() {
                if axes.contains(&d) {
                    count *= x.shape[d];
                    if *keep_dims {
                        oi += 1;
                    }
                } else {
                    *st = out.strides[oi];
                    oi += 1;
                }
            }
            let step = Reduce {
                op: *op,
                x: x.loc,
                walk: walk2(name, &x.shape, &x.strides, &ost)?,
                count,
                out: out.loc,
            };
            Ok(Lowered::new(step, "reduce::scalar::reduce_strided", 0, 0))
        }
        _ => Err(q8_unsupported(node)),
    }
}

/// A global average of NCHW-shaped `shape` (f32, or 8-bit with `q = (input, output)`
/// quantization).
fn global_avg(
    p: &Planner<'_>,
    shape: &[usize],
    x: Loc,
    out: Loc,
    q: Option<((f32, i32), (f32, i32))>,
) -> Lowered {
    let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
    let qp = q.map(|((sx, zx), (sy, zy))| (zx, sx / (hw as f32 * sy), Requant::new(zy, 0, 255)));
    let kernel = if q.is_some() {
        "qs8_pool::scalar::global_avg"
    } else {
        p.k.f32_global_avg.name
    };
    let step = GlobalAvg {
        n,
        hw,
        c,
        x,
        q: qp,
        out,
    };
    Lowered::new(step, kernel, 0, 0)
}
