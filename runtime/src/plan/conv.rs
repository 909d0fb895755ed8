//! Conv2d for every dtype: pointwise convolutions become GEMMs (f32, f16 weights, int8),
//! grouped pointwise ones strided per-group GEMMs, dense and grouped ones direct
//! convolutions (f32) or im2col GEMMs (int8), depthwise ones depthwise steps (f32, f16
//! weights, int8). The window steps here split over output rows (image-major), each range
//! of rows running as a band geometry of its own.

use super::arena::{Buf, Cx, Loc, Out, Outs, Place};
use super::linear::{self, Gemm, GemmF16, GroupGemm, Im2col, QGemm, QGemmGroup, Split};
use super::planner::{act_of, clamp_bounds, per_tensor, q8_io, q8_unsupported, Lowered, Planner};
use super::step::{row_bands, Step, Work};
use crate::error::{Error, Result};
use crate::ir::{DType, Op, Window};
use crate::kernels::f16_dwconv::F16DwArgs;
use crate::kernels::f32_conv::{ConvArgs, ConvGeom};
use crate::kernels::qs8_dwconv::QDwArgs;
use crate::kernels::qs8_gemm::{fold_zero_point, pack_b_transposed};
use crate::kernels::requant::Requant;
use crate::kernels::{self, Act};

/// Geometry of a window op on NHWC data: input `x` and output `out` in NCHW logical shape,
/// `o` output channels, `groups` convolution groups (1 for pools).
pub(crate) fn window_geom(
    x: &[usize],
    out: &[usize],
    window: &Window,
    o: usize,
    groups: usize,
) -> ConvGeom {
    ConvGeom {
        n: x[0],
        c: x[1],
        h: x[2],
        w: x[3],
        o,
        oh: out[2],
        ow: out[3],
        kh: window.kernel[0],
        kw: window.kernel[1],
        sh: window.strides[0],
        sw: window.strides[1],
        dh: window.dilations[0],
        dw: window.dilations[1],
        pt: window.pads[0],
        pl: window.pads[1],
        groups,
    }
}

/// Work of a window step over output rows, its activations `size` bytes per element.
pub(crate) fn rows_work(g: &ConvGeom, macs: u64, size: usize) -> Work {
    let bytes = size * g.n * (g.h * g.w * g.c + g.oh * g.ow * g.o);
    Work::compute(g.n * g.oh, 1, macs, bytes as u64)
}

/// Run `f(band geometry, input rows, residual rows, output rows)` for each band of output
/// rows `units` of a window step with `ch` output channels; `y` is the units' output slice
/// (it starts at output row `units.start`), `residual` has the output's geometry.
pub(crate) fn for_bands<T>(
    g: &ConvGeom,
    units: std::ops::Range<usize>,
    ch: usize,
    x: &[T],
    residual: Option<&[f32]>,
    y: &mut [T],
    mut f: impl FnMut(&ConvGeom, &[T], Option<&[f32]>, &mut [T]),
) {
    let first = units.start * g.ow * ch;
    row_bands(g, units, |b| {
        let xs = &x[b.x_offset(g)..][..b.x_len(g)];
        let (r0, len) = (b.y_offset(g, ch), b.y_len(ch));
        let res = residual.map(|r| &r[r0..r0 + len]);
        f(&b.geom, xs, res, &mut y[r0 - first..r0 - first + len]);
    });
}

/// Dense / grouped (direct) or depthwise f32 convolution.
#[derive(Debug)]
pub(crate) struct Conv {
    pub depthwise: bool,
    pub geom: ConvGeom,
    pub x: Loc,
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
    pub residual: Option<Loc>,
    pub act: Act,
    pub out: Loc,
}

impl Step for Conv {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.geom.ow * self.geom.o)]
    }

    fn work(&self) -> Work {
        let g = &self.geom;
        let macs = g.n * g.oh * g.ow * g.o * (g.c / g.groups.max(1)) * g.kh * g.kw;
        rows_work(g, macs as u64, 4)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (g, units) = (&self.geom, out.units());
        let x = cx.get(self.x)?;
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        let f = if self.depthwise {
            cx.k.f32_dwconv.f
        } else {
            cx.k.f32_conv.f
        };
        for_bands(
            g,
            units,
            g.o,
            x,
            residual,
            out.f32(0)?,
            |bg, x, residual, y| {
                f(ConvArgs {
                    g: bg,
                    x,
                    w: &self.w,
                    bias: &self.bias,
                    residual,
                    y,
                    act: self.act,
                })
            },
        );
        Ok(())
    }
}

/// Depthwise convolution with f16 packed weights (fp16 bundles on fp16-arithmetic tiers).
#[derive(Debug)]
pub(crate) struct DwConvF16 {
    pub geom: ConvGeom,
    pub x: Loc,
    pub w: Vec<half::f16>,
    pub bias: Vec<f32>,
    pub residual: Option<Loc>,
    pub act: Act,
    pub out: Loc,
}

impl Step for DwConvF16 {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.geom.ow * self.geom.c)]
    }

    fn work(&self) -> Work {
        let g = &self.geom;
        rows_work(g, (g.n * g.oh * g.ow * g.c * g.kh * g.kw) as u64, 4)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (g, units) = (&self.geom, out.units());
        let x = cx.get(self.x)?;
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        let f = cx.k.f16_dwconv.f;
        for_bands(
            g,
            units,
            g.c,
            x,
            residual,
            out.f32(0)?,
            |bg, x, residual, y| {
                f(F16DwArgs {
                    g: bg,
                    x,
                    w: &self.w,
                    bias: &self.bias,
                    residual,
                    y,
                    act: self.act,
                })
            },
        );
        Ok(())
    }
}

/// Quantized depthwise convolution.
#[derive(Debug)]
pub(crate) struct QDw {
    pub geom: ConvGeom,
    pub x: Loc,
    pub x_zero_point: i32,
    pub w: Vec<i8>,
    pub bias: Vec<i32>,
    pub scale: Vec<f32>,
    pub rq: Requant,
    pub out: Loc,
}

impl Step for QDw {
    fn outs(&self) -> Vec<Out> {
        vec![Out::bytes(self.out, self.geom.ow * self.geom.c)]
    }

    fn work(&self) -> Work {
        let g = &self.geom;
        rows_work(g, (g.n * g.oh * g.ow * g.c * g.kh * g.kw) as u64, 1)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let (g, units) = (&self.geom, out.units());
        let x = cx.bytes(self.x)?;
        let f = cx.k.qs8_dwconv.f;
        for_bands(g, units, g.c, x, None, out.bytes(0)?, |bg, x, _, y| {
            f(QDwArgs {
                g: bg,
                x,
                x_zero_point: self.x_zero_point,
                w: &self.w,
                bias: &self.bias,
                scale: &self.scale,
                rq: self.rq,
                y,
            })
        });
        Ok(())
    }
}

/// The operands of an f32 Conv2d node, shared by its lowering and by fused blocks.
pub(crate) struct ConvParts {
    pub x: Place,
    pub out: Place,
    pub geom: ConvGeom,
    /// Weights in OIHW order.
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
    pub has_bias: bool,
    pub residual: Option<Loc>,
    pub act: Act,
    pub macs: u64,
    pub params: u64,
    /// 1x1, stride 1, unpadded.
    pub one_by_one: bool,
    /// Weights stored as f16 (an fp16 bundle).
    pub f16_weights: bool,
}

impl ConvParts {
    /// A plain (single-group) pointwise convolution.
    pub fn pointwise(&self) -> bool {
        self.one_by_one && self.geom.groups == 1
    }

    /// One group per channel, as many outputs as channels.
    pub fn depthwise(&self) -> bool {
        let g = &self.geom;
        g.groups == g.c && g.o == g.c && g.groups > 1
    }

    /// The packed B and bias of a pointwise convolution.
    pub fn gemm_operands(&self) -> (Vec<f32>, Option<Vec<f32>>) {
        let b = kernels::f32_gemm::pack_b_transposed(self.geom.c, self.geom.o, &self.w);
        (b, self.has_bias.then(|| self.bias.clone()))
    }
}

/// Read the operands of f32 Conv2d node `i`.
pub(crate) fn conv_parts(p: &Planner<'_>, i: usize) -> Result<ConvParts> {
    let node = p.node(i);
    let Op::Conv2d {
        window,
        groups,
        activation,
        has_bias,
        has_residual,
    } = &node.op
    else {
        return Err(Error::graph(&node.name, "not a convolution"));
    };
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    if x.loc.buf != Buf::Arena || x.shape.len() != 4 {
        return Err(Error::Unsupported(format!(
            "node {name:?}: Conv2d on a constant input"
        )));
    }
    let wt = p.tensor(p.input(node, 1)?)?;
    let w = p.const_f32(p.input(node, 1)?)?;
    let o = wt.shape.first().copied().unwrap_or(0);
    let bias = if *has_bias {
        p.const_f32(p.input(node, 2)?)?
    } else {
        vec![0.0; o]
    };
    let residual = if *has_residual {
        let r = p.place(p.input(node, node.inputs.len() - 1)?)?;
        if r.loc.buf != Buf::Arena || r.strides != out.strides {
            return Err(Error::Unsupported(format!(
                "node {name:?}: constant residual"
            )));
        }
        Some(r.loc)
    } else {
        None
    };
    let geom = window_geom(&x.shape, &out.shape, window, o, *groups);
    let fan_in = (geom.c / geom.groups.max(1)) * geom.kh * geom.kw;
    if w.len() != o * fan_in || bias.len() != o {
        return Err(Error::graph(name, "Conv2d weight or bias size mismatch"));
    }
    Ok(ConvParts {
        macs: (geom.n * geom.oh * geom.ow * o * fan_in) as u64,
        params: (w.len() + if *has_bias { o } else { 0 }) as u64,
        one_by_one: geom.kh == 1
            && geom.kw == 1
            && geom.sh == 1
            && geom.sw == 1
            && window.pads == [0; 4],
        f16_weights: wt.dtype == DType::F16,
        x,
        out,
        geom,
        w,
        bias,
        has_bias: *has_bias,
        residual,
        act: act_of(*activation),
    })
}

/// Lower Conv2d node `i`.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    if byte_input {
        return lower_q8(p, i);
    }
    let c = conv_parts(p, i)?;
    let k = p.k;
    let g = c.geom;
    let m = g.n * g.h * g.w;
    // fp16 bundle on an fp16-arithmetic tier: pointwise and depthwise weights stay f16
    // (f16 -> f32 -> f16 is exact) and run the f16 kernels.
    let f16 = k.f16_native && c.f16_weights && !p.f32_only[i];
    let (macs, params) = (c.macs, c.params);
    if c.pointwise() && f16 {
        let step = GemmF16 {
            a: c.x.loc,
            b: linear::pack_f16(g.c, g.o, &c.w),
            bias: c.has_bias.then_some(c.bias),
            residual: c.residual,
            m,
            n: g.o,
            k: g.c,
            act: c.act,
            out: c.out.loc,
            grain: k.f16_gemm.tile_rows(),
        };
        return Ok(Lowered::new(step, k.f16_gemm.name, macs, params));
    }
    if c.pointwise() {
        let (b, bias) = c.gemm_operands();
        let step = Gemm {
            a: c.x.loc,
            gather: None,
            b,
            bias,
            residual: c.residual,
            scatter: None,
            m,
            n: g.o,
            k: g.c,
            act: c.act,
            out: c.out.loc,
            split: Split::for_gemm(m, g.o, k.f32_gemm.tile_rows()),
        };
        return Ok(Lowered::new(step, k.f32_gemm.name, macs, params));
    }
    if c.one_by_one && !c.depthwise() {
        let (cg, og) = (g.c / g.groups, g.o / g.groups);
        let b = (0..g.groups)
            .map(|gi| {
                let wg = &c.w[gi * og * cg..(gi + 1) * og * cg];
                kernels::f32_gemm::pack_b_transposed(cg, og, wg)
            })
            .collect();
        let step = GroupGemm {
            x: c.x.loc,
            b,
            bias: c.bias,
            residual: c.residual,
            m,
            c: g.c,
            o: g.o,
            cg,
            og,
            act: c.act,
            out: c.out.loc,
            grain: k.f32_gemm.tile_rows(),
        };
        return Ok(Lowered::new(step, k.f32_gemm.name, macs, params));
    }
    if c.depthwise() && f16 {
        let wh: Vec<half::f16> = c.w.iter().map(|&v| half::f16::from_f32(v)).collect();
        let step = DwConvF16 {
            geom: g,
            x: c.x.loc,
            w: kernels::f16_dwconv::pack_weights(&g, &wh),
            bias: c.bias,
            residual: c.residual,
            act: c.act,
            out: c.out.loc,
        };
        return Ok(Lowered::new(step, k.f16_dwconv.name, macs, params));
    }
    let depthwise = c.depthwise();
    let (w, kname) = if depthwise {
        (
            kernels::f32_dwconv::pack_weights(&g, &c.w),
            k.f32_dwconv.name,
        )
    } else {
        (kernels::f32_conv::pack_weights(&g, &c.w), k.f32_conv.name)
    };
    let step = Conv {
        depthwise,
        geom: g,
        x: c.x.loc,
        w,
        bias: c.bias,
        residual: c.residual,
        act: c.act,
        out: c.out.loc,
    };
    Ok(Lowered::new(step, kname, macs, params))
}

/// Lower a quantized Conv2d: depthwise, or one GEMM per group (im2col unless pointwise).
fn lower_q8(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let Op::Conv2d {
        window,
        groups,
        activation,
        has_bias,
        has_residual,
    } = &node.op
    else {
        return Err(q8_unsupported(node));
    };
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let ((sx, zx), (sy, zy), out_f32) = q8_io(p, node)?;
    if x.shape.len() != 4 || x.strides[1] != 1 {
        return Err(q8_unsupported(node));
    }
    let (w, ws) = p.const_i8(p.input(node, 1)?, name)?;
    let o = ws.len();
    let bias = if *has_bias {
        p.const_i32(p.input(node, 2)?, name)?
    } else {
        vec![0; o]
    };
    let geom = window_geom(&x.shape, &out.shape, window, o, (*groups).max(1));
    let (cg, og) = (geom.c / geom.groups, o / geom.groups);
    let fan_in = cg * geom.kh * geom.kw;
    if w.len() != o * fan_in || bias.len() != o {
        return Err(Error::graph(name, "Conv2d weight or bias size mismatch"));
    }
    let (qmin, qmax) = clamp_bounds(*activation, sy, zy, name)?;
    let rq = Requant::new(zy, qmin, qmax);
    let scale: Vec<f32> = ws
        .iter()
        .map(|s| if out_f32 { sx * s } else { sx * s / sy })
        .collect();
    let macs = (geom.n * geom.oh * geom.ow * o * fan_in) as u64;
    let params = (w.len() + if *has_bias { o } else { 0 }) as u64;
    let residual = if *has_residual {
        let rt = *node.inputs.last().unwrap_or(&node.inputs[0]);
        let (sr, zr) = per_tensor(p.tensor(rt)?, name)?;
        let r = p.place(rt)?;
        if r.strides != out.strides || out_f32 {
            return Err(q8_unsupported(node));
        }
        Some((r.loc, zr, sr / sy))
    } else {
        None
    };
    if geom.groups == geom.c && o == geom.c && geom.groups > 1 {
        if residual.is_some() || out_f32 {
            return Err(q8_unsupported(node));
        }
        let step = QDw {
            geom,
            x: x.loc,
            x_zero_point: zx,
            w: kernels::qs8_dwconv::pack_weights(&geom, &w),
            bias,
            scale,
            rq,
            out: out.loc,
        };
        return Ok(Lowered::new(step, p.k.qs8_dwconv.name, macs, params));
    }
    let pointwise =
        geom.kh == 1 && geom.kw == 1 && geom.sh == 1 && geom.sw == 1 && window.pads == [0; 4];
    let m = geom.n * geom.oh * geom.ow;
    let mut gemms = Vec::with_capacity(geom.groups);
    for gi in 0..geom.groups {
        // Weight rows reordered from [og][cg][kh][kw] to the im2col order [og][kh][kw][cg].
        let mut wg = vec![0i8; og * fan_in];
        for oc in 0..og {
            for ic in 0..cg {
                for t in 0..geom.kh * geom.kw {
                    wg[oc * fan_in + t * cg + ic] =
                        w[(gi * og + oc) * fan_in + ic * geom.kh * geom.kw + t];
                }
            }
        }
        let pre = (!pointwise).then_some(Im2col {
            geom,
            c0: gi * cg,
            cg,
            zero_point: zx as u8,
        });
        gemms.push(QGemmGroup {
            a_off: if pre.is_some() { 0 } else { gi * cg },
            lda: if pre.is_some() { fan_in } else { geom.c },
            pre,
            n: og,
            k: fan_in,
            b: pack_b_transposed(fan_in, og, &wg),
            bias: fold_zero_point(&bias[gi * og..(gi + 1) * og], &wg, fan_in, zx),
            scale: scale[gi * og..(gi + 1) * og].to_vec(),
            out_off: gi * og,
        });
    }
    let step = QGemm {
        x: x.loc,
        groups: gemms,
        m,
        rq,
        residual,
        out: out.loc,
        ldc: o,
        out_f32,
        // Panels of a single row only for one group (a panel must not straddle groups).
        split: if geom.groups == 1 {
            Split::for_gemm(m, o, p.k.qs8_gemm.tile_rows())
        } else {
            Split::Rows {
                grain: p.k.qs8_gemm.tile_rows(),
            }
        },
    };
    Ok(Lowered::new(step, p.k.qs8_gemm.name, macs, params))
}
