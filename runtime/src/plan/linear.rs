//! Linear layers: FullyConnected and MatMul, and the GEMM steps that pointwise and
//! im2col convolutions lower to as well (f32, f16 weights, int8). A GEMM splits over rows
//! of its output (pixels) in multiples of the kernel's register-tile height, or over
//! 16-column panels when it has a single row (a classifier at batch 1).

use super::arena::{align_up, is_row_major, walk2, Cx, Loc, Out, Outs, Place};
use super::planner::{act_of, clamp_bounds, q8_io, q8_unsupported, Lowered, Planner};
use super::step::{Step, Work};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::kernels::f16_gemm::{self, F16GemmParams};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::f32_copy::copy_view;
use crate::kernels::f32_gemm::{self, pack_b_into, packed_len, GemmParams, NR};
use crate::kernels::qs8_gemm::{self, fold_zero_point, QGemmParams, QOut, QResidual};
use crate::kernels::requant::Requant;
use crate::kernels::walk::{row_major_strides, Walk};
use crate::kernels::{Act, OutMat};

/// How a GEMM's work divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// One unit (operands gathered through scratch).
    Whole,
    /// One unit per output row, boundaries on multiples of `grain` rows.
    Rows { grain: usize },
    /// One unit per 16-column panel of the output (every row).
    Panels,
}

impl Split {
    /// Panels when the weights outweigh the rows (`n >= 2m`: a classifier at batch 1, the
    /// 7x7 stages' wide pointwise layers), so each thread streams only its share of B;
    /// otherwise rows, so each thread streams only its share of A and C.
    pub fn for_gemm(m: usize, n: usize, tile_rows: usize) -> Split {
        if n > NR && n >= 2 * m {
            Split::Panels
        } else {
            Split::Rows { grain: tile_rows }
        }
    }

    /// The output region `out` of an `m x n` result (row stride `ldc`) as this split
    /// writes it.
    fn out(self, out: Out, m: usize, n: usize, ldc: usize) -> Out {
        match self {
            Split::Panels => Out {
                per_unit: NR,
                ..out
            }
            .by_columns(m, ldc, n),
            _ => out,
        }
    }

    /// The work of an `m x n x k` product whose operands take `size` bytes per element
    /// (`b_size` for the weights).
    fn work(self, [m, n, k]: [usize; 3], size: usize, b_size: usize) -> Work {
        let macs = (m * n * k) as u64;
        let bytes = (size * (m * k + m * n) + b_size * k * n) as u64;
        match self {
            Split::Whole => Work::single(),
            Split::Rows { grain } => Work::compute(m, grain, macs, bytes),
            Split::Panels => Work::compute(n.div_ceil(NR), 1, macs, bytes),
        }
    }

    /// Output elements one unit writes (rows of stride `ldc`).
    fn per_unit(self, ldc: usize) -> usize {
        match self {
            Split::Whole => usize::MAX,
            Split::Rows { .. } => ldc,
            Split::Panels => NR,
        }
    }
}

/// f32 GEMM with a packed constant B: `out = act(A·B + bias + residual)` (pointwise
/// convolution, FullyConnected). A non-row-major A is gathered into scratch first, a
/// non-row-major output written through scratch.
#[derive(Debug)]
pub(crate) struct Gemm {
    pub a: Loc,
    /// Over `[scratch (row-major), tensor strides]`: gather A before the product.
    pub gather: Option<Walk<2>>,
    pub b: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub residual: Option<Loc>,
    /// Over `[tensor strides, scratch (row-major)]`: scatter C after the product.
    pub scatter: Option<Walk<2>>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub act: Act,
    pub out: Loc,
    pub split: Split,
}

impl Step for Gemm {
    fn outs(&self) -> Vec<Out> {
        let o = Out::f32(self.out, self.split.per_unit(self.n));
        vec![self.split.out(o, self.m, self.n, self.n)]
    }

    fn work(&self) -> Work {
        self.split.work([self.m, self.n, self.k], 4, 4)
    }

    fn scratch(&self) -> usize {
        let a = if self.gather.is_some() {
            align_up(self.m * self.k)
        } else {
            0
        };
        a + if self.scatter.is_some() {
            self.m * self.n
        } else {
            0
        }
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let units = out.units();
        if units.is_empty() || self.m == 0 {
            return Ok(());
        }
        let gemm = cx.k.f32_gemm.f;
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        let bias = self.bias.as_deref();
        if self.split == Split::Whole {
            let copy = cx.k.f32_copy.f;
            let x = cx.get(self.a)?;
            let c_off = if self.gather.is_some() {
                align_up(self.m * self.k)
            } else {
                0
            };
            let (sa, sc) = cx.scratch.split_at_mut(c_off);
            let a: &[f32] = match &self.gather {
                Some(w) => {
                    copy_view(copy, w, x, 0, sa, 0);
                    sa
                }
                None => x,
            };
            let y = out.f32(0)?;
            let c: &mut [f32] = if self.scatter.is_some() { sc } else { y };
            gemm(self.params(a, bias, residual, c.into(), self.m));
            if let Some(w) = &self.scatter {
                copy_view(copy, w, &cx.scratch[c_off..], 0, out.f32(0)?, 0);
            }
            return Ok(());
        }
        let a = cx.get(self.a)?;
        match self.split {
            Split::Panels => {
                let (j0, j1) = (units.start * NR, (units.end * NR).min(self.n));
                if j0 >= j1 {
                    return Ok(());
                }
                let c = out.columns::<f32>(0)?;
                let (bias, residual) = (bias.map(|b| &b[j0..]), residual.map(|r| &r[j0..]));
                gemm(GemmParams {
                    n: j1 - j0,
                    b: &self.b[units.start * self.k * NR..],
                    ..self.params(a, bias, residual, c, self.m)
                });
            }
            _ => {
                let r0 = units.start;
                let rows = units.end.min(self.m) - r0;
                let residual = residual.map(|r| &r[r0 * self.n..]);
                let c = out.f32(0)?.into();
                gemm(self.params(&a[r0 * self.k..], bias, residual, c, rows));
            }
        }
        Ok(())
    }
}

impl Gemm {
    fn params<'a>(
        &'a self,
        a: &'a [f32],
        bias: Option<&'a [f32]>,
        residual: Option<&'a [f32]>,
        c: OutMat<'a, f32>,
        m: usize,
    ) -> GemmParams<'a> {
        GemmParams {
            m,
            n: self.n,
            k: self.k,
            a,
            lda: self.k,
            b: &self.b,
            bias,
            residual,
            c,
            ldc: self.n,
            act: self.act,
        }
    }
}

/// Pointwise convolution with f16 packed weights on a tier with native fp16 arithmetic
/// (an fp16 bundle's weights kept in half precision); splits over rows.
#[derive(Debug)]
pub(crate) struct GemmF16 {
    pub a: Loc,
    pub b: Vec<half::f16>,
    pub bias: Option<Vec<f32>>,
    pub residual: Option<Loc>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub act: Act,
    pub out: Loc,
    pub grain: usize,
}

impl Step for GemmF16 {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.n)]
    }

    fn work(&self) -> Work {
        Split::Rows { grain: self.grain }.work([self.m, self.n, self.k], 4, 2)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let units = out.units();
        if units.is_empty() {
            return Ok(());
        }
        let r0 = units.start;
        let a = cx.get(self.a)?;
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        (cx.k.f16_gemm.f)(F16GemmParams {
            m: units.end.min(self.m) - r0,
            n: self.n,
            k: self.k,
            a: &a[r0 * self.k..],
            lda: self.k,
            b: &self.b,
            bias: self.bias.as_deref(),
            residual: residual.map(|r| &r[r0 * self.n..]),
            c: out.f32(0)?,
            ldc: self.n,
            act: self.act,
        });
        Ok(())
    }
}

/// Grouped 1x1 convolution: one strided GEMM per group on NHWC data; splits over pixels.
#[derive(Debug)]
pub(crate) struct GroupGemm {
    pub x: Loc,
    /// Packed B per group (`cg x og`).
    pub b: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    pub residual: Option<Loc>,
    pub m: usize,
    pub c: usize,
    pub o: usize,
    pub cg: usize,
    pub og: usize,
    pub act: Act,
    pub out: Loc,
    pub grain: usize,
}

impl Step for GroupGemm {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.o)]
    }

    fn work(&self) -> Work {
        // As one GEMM with the groups' k: the MACs and the weights are those of the groups.
        Split::Rows { grain: self.grain }.work([self.m, self.o, self.cg], 4, 4)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let units = out.units();
        let (r0, m) = (
            units.start,
            units.end.min(self.m).saturating_sub(units.start),
        );
        if m == 0 {
            return Ok(());
        }
        let x = &cx.get(self.x)?[r0 * self.c..];
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        let y = out.f32(0)?;
        let (cg, og) = (self.cg, self.og);
        for (gi, bg) in self.b.iter().enumerate() {
            (cx.k.f32_gemm.f)(GemmParams {
                m,
                n: og,
                k: cg,
                a: &x[gi * cg..],
                lda: self.c,
                b: bg,
                bias: Some(&self.bias[gi * og..(gi + 1) * og]),
                residual: residual.map(|r| &r[r0 * self.o + gi * og..]),
                c: (&mut y[gi * og..]).into(),
                ldc: self.o,
                act: self.act,
            });
        }
        Ok(())
    }
}

/// One batch of a [`MatMul`]: element offsets of A, B and C in their tensors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch {
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// Batched MatMul of two runtime tensors through scratch (A, B and C gathered row-major,
/// B packed per batch). One unit: attention-sized products are small here.
#[derive(Debug)]
pub(crate) struct MatMul {
    pub a: Loc,
    pub b: Loc,
    pub batches: Vec<Batch>,
    /// Over `[scratch, tensor]` for A and B, `[tensor, scratch]` for C.
    pub wa: Walk<2>,
    pub wb: Walk<2>,
    pub wc: Walk<2>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub out: Loc,
}

impl MatMul {
    /// Scratch offsets of A, B, packed B and C.
    fn layout(&self) -> [usize; 4] {
        let sb = align_up(self.m * self.k);
        let sbp = sb + align_up(self.k * self.n);
        let sc = sbp + align_up(packed_len(self.k, self.n));
        [0, sb, sbp, sc]
    }
}

impl Step for MatMul {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn scratch(&self) -> usize {
        self.layout()[3] + self.m * self.n
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let copy = cx.k.f32_copy.f;
        let (a, b) = (cx.get(self.a)?, cx.get(self.b)?);
        let o = out.f32(0)?;
        let [_, sb, sbp, sc] = self.layout();
        let (lo, c) = cx.scratch.split_at_mut(sc);
        let (lo, bp) = lo.split_at_mut(sbp);
        let (sa_buf, sb_buf) = lo.split_at_mut(sb);
        for t in &self.batches {
            copy_view(copy, &self.wa, a, t.a, sa_buf, 0);
            copy_view(copy, &self.wb, b, t.b, sb_buf, 0);
            pack_b_into(
                self.k,
                self.n,
                sb_buf,
                self.n,
                &mut bp[..packed_len(self.k, self.n)],
            );
            (cx.k.f32_gemm.f)(GemmParams {
                m: self.m,
                n: self.n,
                k: self.k,
                a: sa_buf,
                lda: self.k,
                b: bp,
                bias: None,
                residual: None,
                c: c.into(),
                ldc: self.n,
                act: Act::None,
            });
            copy_view(copy, &self.wc, c, 0, o, t.c);
        }
        Ok(())
    }
}

/// An im2col copy feeding a dense or grouped convolution's int8 GEMM: for every output
/// pixel the `kh*kw*cg` input bytes of one group's window (padding reads the zero point).
#[derive(Debug, Clone)]
pub(crate) struct Im2col {
    pub geom: ConvGeom,
    /// First input channel of the group.
    pub c0: usize,
    pub cg: usize,
    pub zero_point: u8,
}

impl Im2col {
    /// Gather the windows of output pixels `pixels` (image-major) into byte rows.
    fn gather(&self, x: &[u8], pixels: std::ops::Range<usize>, rows: &mut [u8]) {
        let g = &self.geom;
        let row_len = g.kh * g.kw * self.cg;
        // With all channels and no horizontal dilation, one kernel row of an interior window
        // is one contiguous run of `kw * c` input bytes.
        let runs = self.cg == g.c && g.dw == 1;
        let (x_lo, x_hi) = g.interior_x();
        let span = g.kw * g.c;
        let per_image = g.oh * g.ow;
        for (p, row) in pixels.zip(rows.chunks_exact_mut(row_len.max(1))) {
            let (b, q) = (p / per_image.max(1), p % per_image.max(1));
            let (oy, ox) = (q / g.ow.max(1), q % g.ow.max(1));
            if runs && (x_lo..x_hi).contains(&ox) {
                let ix0 = ox * g.sw - g.pl;
                for (ky, dst) in row.chunks_exact_mut(span).enumerate() {
                    match g.in_y(oy, ky) {
                        Some(iy) => {
                            let src = ((b * g.h + iy) * g.w + ix0) * g.c;
                            dst.copy_from_slice(&x[src..src + span]);
                        }
                        None => dst.fill(self.zero_point),
                    }
                }
                continue;
            }
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let dst = &mut row[(ky * g.kw + kx) * self.cg..][..self.cg];
                    match (g.in_y(oy, ky), g.in_x(ox, kx)) {
                        (Some(iy), Some(ix)) => {
                            let src = ((b * g.h + iy) * g.w + ix) * g.c + self.c0;
                            dst.copy_from_slice(&x[src..src + self.cg]);
                        }
                        _ => dst.fill(self.zero_point),
                    }
                }
            }
        }
    }
}

/// One group's quantized GEMM: `out[i*ldc + out_off + j]` for `i < m`, `j < n`.
#[derive(Debug, Clone)]
pub(crate) struct QGemmGroup {
    /// Im2col into scratch first (A is then the scratch rows, `lda = kh*kw*cg`).
    pub pre: Option<Im2col>,
    /// Byte offset of A's first row in `x` (the group's first channel).
    pub a_off: usize,
    pub lda: usize,
    pub n: usize,
    pub k: usize,
    pub b: Vec<i8>,
    pub bias: Vec<i32>,
    pub scale: Vec<f32>,
    pub out_off: usize,
}

/// Quantized pointwise / dense / grouped convolution or FullyConnected: one GEMM per group
/// over the same rows, with requantization (or a dequantized f32 output for a last layer).
#[derive(Debug)]
pub(crate) struct QGemm {
    pub x: Loc,
    pub groups: Vec<QGemmGroup>,
    pub m: usize,
    pub rq: Requant,
    /// Residual tensor (same geometry as the output), its zero point and rescale factor.
    pub residual: Option<(Loc, i32, f32)>,
    pub out: Loc,
    pub ldc: usize,
    /// The output tensor is f32: write `f32(acc) * scale`.
    pub out_f32: bool,
    pub split: Split,
}

impl Step for QGemm {
    fn outs(&self) -> Vec<Out> {
        let per = self.split.per_unit(self.ldc);
        let o = if self.out_f32 {
            Out::f32(self.out, per)
        } else {
            Out::bytes(self.out, per)
        };
        vec![self.split.out(o, self.m, self.ldc, self.ldc)]
    }

    fn work(&self) -> Work {
        let k: usize = self.groups.iter().map(|g| g.k).max().unwrap_or(0);
        let n: usize = self.groups.iter().map(|g| g.n).sum();
        self.split.work([self.m, n, k], 1, 1)
    }

    fn scratch(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| g.pre.is_some())
            .map(|g| (self.m * g.k).div_ceil(4))
            .max()
            .unwrap_or(0)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let units = out.units();
        if units.is_empty() {
            return Ok(());
        }
        let x = cx.bytes(self.x)?;
        let residual = match self.residual {
            Some((r, zp, s)) => Some((cx.bytes(r)?, zp, s)),
            None => None,
        };
        let panels = self.split == Split::Panels;
        let (rows, cols) = match self.split {
            Split::Panels => (0..self.m, units.start * NR..(units.end * NR).min(self.ldc)),
            _ => (units.start..units.end.min(self.m), 0..self.ldc),
        };
        let sb: &mut [u8] = bytemuck::cast_slice_mut(cx.scratch);
        for g in &self.groups {
            let a: &[u8] = match &g.pre {
                Some(im) => {
                    let buf = &mut sb[..rows.len() * g.k];
                    im.gather(x, rows.clone(), buf);
                    buf
                }
                None => &x[rows.start * g.lda + g.a_off..],
            };
            // Columns of this group that the units cover, relative to the group.
            let (j0, j1) = (
                cols.start.max(g.out_off) - g.out_off,
                cols.end.min(g.out_off + g.n).saturating_sub(g.out_off),
            );
            if j0 >= j1 {
                continue;
            }
            // Offset in the output slice of this group's first covered column.
            let at = g.out_off + j0 - cols.start;
            let out = if self.out_f32 {
                QOut::F32 {
                    c: match panels {
                        true => out.columns(0)?,
                        false => (&mut out.f32(0)?[at..]).into(),
                    },
                    ldc: self.ldc,
                    scale: &g.scale[j0..],
                }
            } else {
                QOut::U8 {
                    c: match panels {
                        true => out.columns(0)?,
                        false => (&mut out.bytes(0)?[at..]).into(),
                    },
                    ldc: self.ldc,
                    scale: &g.scale[j0..],
                    rq: self.rq,
                    residual: residual.map(|(r, zero_point, scale)| QResidual {
                        r: &r[rows.start * self.ldc + g.out_off + j0..],
                        zero_point,
                        scale,
                    }),
                }
            };
            let kp = qs8_gemm::padded_k(g.k);
            (cx.k.qs8_gemm.f)(QGemmParams {
                m: rows.len(),
                n: j1 - j0,
                k: g.k,
                a,
                lda: if g.pre.is_some() { g.k } else { g.lda },
                b: &g.b[j0 / qs8_gemm::NR * kp * qs8_gemm::NR..],
                bias: &g.bias[j0..],
                out,
            });
        }
        Ok(())
    }
}

/// Lower a FullyConnected or MatMul node.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    let node = p.node(i);
    match (&node.op, byte_input) {
        (Op::FullyConnected { .. }, false) => lower_fc(p, i),
        (Op::FullyConnected { .. }, true) => lower_fc_q8(p, i),
        (Op::MatMul, false) => lower_matmul(p, i),
        _ => Err(q8_unsupported(node)),
    }
}

fn lower_fc(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let Op::FullyConnected {
        activation,
        has_bias,
    } = &node.op
    else {
        unreachable!("lower_fc on {}", node.op.name())
    };
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let wt = p.tensor(p.input(node, 1)?)?;
    let w = p.const_f32(p.input(node, 1)?)?;
    let (o, kk) = (wt.shape[0], wt.shape[1]);
    let m = x.loc.len.checked_div(kk).unwrap_or(out.loc.len / o.max(1));
    let bias = if *has_bias {
        Some(p.const_f32(p.input(node, 2)?)?)
    } else {
        None
    };
    let params = (w.len() + bias.as_ref().map_or(0, |b| b.len())) as u64;
    let gather = (!is_row_major(&x.shape, &x.strides))
        .then(|| walk2(name, &x.shape, &row_major_strides(&x.shape), &x.strides))
        .transpose()?;
    let scatter = (!is_row_major(&out.shape, &out.strides))
        .then(|| {
            walk2(
                name,
                &out.shape,
                &out.strides,
                &row_major_strides(&out.shape),
            )
        })
        .transpose()?;
    let split = if gather.is_some() || scatter.is_some() {
        Split::Whole
    } else {
        Split::for_gemm(m, o, p.k.f32_gemm.tile_rows())
    };
    let step = Gemm {
        a: x.loc,
        gather,
        b: f32_gemm::pack_b_transposed(kk, o, &w),
        bias,
        residual: None,
        scatter,
        m,
        n: o,
        k: kk,
        act: act_of(*activation),
        out: out.loc,
        split,
    };
    Ok(Lowered::new(
        step,
        p.k.f32_gemm.name,
        (m * o * kk) as u64,
        params,
    ))
}

fn lower_fc_q8(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let Op::FullyConnected {
        activation,
        has_bias,
    } = &node.op
    else {
        unreachable!("lower_fc_q8 on {}", node.op.name())
    };
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let ((sx, zx), (sy, zy), out_f32) = q8_io(p, node)?;
    let (w, ws) = p.const_i8(p.input(node, 1)?, name)?;
    let o = ws.len();
    let kk = p
        .tensor(p.input(node, 1)?)?
        .shape
        .get(1)
        .copied()
        .unwrap_or(0);
    if !is_row_major(&x.shape, &x.strides) || !is_row_major(&out.shape, &out.strides) {
        return Err(q8_unsupported(node));
    }
    let bias = if *has_bias {
        p.const_i32(p.input(node, 2)?, name)?
    } else {
        vec![0; o]
    };
    if w.len() != o * kk || bias.len() != o || kk == 0 {
        return Err(Error::graph(name, "FullyConnected weight size mismatch"));
    }
    let m = x.loc.len / kk;
    let (qmin, qmax) = clamp_bounds(*activation, sy, zy, name)?;
    let scale = ws
        .iter()
        .map(|s| if out_f32 { sx * s } else { sx * s / sy })
        .collect();
    let params = (w.len() + if *has_bias { o } else { 0 }) as u64;
    let group = QGemmGroup {
        pre: None,
        a_off: 0,
        lda: kk,
        n: o,
        k: kk,
        b: qs8_gemm::pack_b_transposed(kk, o, &w),
        bias: fold_zero_point(&bias, &w, kk, zx),
        scale,
        out_off: 0,
    };
    let step = QGemm {
        x: x.loc,
        groups: vec![group],
        m,
        rq: Requant::new(zy, qmin, qmax),
        residual: None,
        out: out.loc,
        ldc: o,
        out_f32,
        split: Split::for_gemm(m, o, p.k.qs8_gemm.tile_rows()),
    };
    Ok(Lowered::new(
        step,
        p.k.qs8_gemm.name,
        (m * o * kk) as u64,
        params,
    ))
}

fn lower_matmul(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let name = node.name.as_str();
    let a = p.place(p.input(node, 0)?)?.clone();
    let b = p.place(p.input(node, 1)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let (ra, rb, ro) = (a.shape.len(), b.shape.len(), out.shape.len());
    let (m, kk, n) = (a.shape[ra - 2], a.shape[ra - 1], b.shape[rb - 1]);
    let batch_shape = &out.shape[..ro - 2];
    let nb: usize = batch_shape.iter().product();
    let bstride = |pl: &Place| -> Vec<usize> {
        let r = pl.shape.len() - 2;
        (0..ro - 2)
            .map(|d| {
                let lead = ro - 2 - r;
                if d < lead || pl.shape[d - lead] == 1 {
                    0
                } else {
                    pl.strides[d - lead]
                }
            })
            .collect()
    };
    let (bsa, bsb) = (bstride(&a), bstride(&b));
    let mut batches = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch_shape.len()];
    for _ in 0..nb {
        let dot = |s: &[usize]| idx.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
        batches.push(Batch {
            a: dot(&bsa),
            b: dot(&bsb),
            c: dot(&out.strides[..ro - 2]),
        });
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    let step = MatMul {
        a: a.loc,
        b: b.loc,
        batches,
        wa: walk2(name, &[m, kk], &[kk, 1], &a.strides[ra - 2..])?,
        wb: walk2(name, &[kk, n], &[n, 1], &b.strides[rb - 2..])?,
        wc: walk2(name, &[m, n], &out.strides[ro - 2..], &[n, 1])?,
        m,
        n,
        k: kk,
        out: out.loc,
    };
    let macs = (nb * m * n * kk) as u64;
    Ok(Lowered::new(step, p.k.f32_gemm.name, macs, 0))
}

/// The f16 packed B of a pointwise convolution's `o x c` weights.
pub(crate) fn pack_f16(c: usize, o: usize, w: &[f32]) -> Vec<half::f16> {
    let wh: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
    f16_gemm::pack_b_transposed(c, o, &wh)
}
