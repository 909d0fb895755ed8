//! Lowering of quantized nodes: convolutions, fully connected layers and pools whose
//! activations are 8-bit (unsigned, per-tensor affine) and whose weights are int8 with one
//! scale per output channel.
//!
//! 8-bit activations live in the arena as bytes: a [`Loc`] of an 8-bit tensor counts bytes
//! (`len` is the element count) from the start of its region (`off`, in f32 slots, so every
//! region is 64-byte aligned like the others).

use crate::error::{Error, Result};
use crate::ir::{Activation, BinaryOp, DType, Op, PoolKind, Quant, ReduceOp, Tensor};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::qs8_eltwise::QBinary;
use crate::kernels::qs8_gemm::{fold_zero_point, pack_b_transposed};
use crate::kernels::requant::Requant;
use crate::plan::{is_row_major, window_geom, Loc, Planner};

/// An im2col copy feeding a dense or grouped convolution's GEMM: for every output pixel the
/// `kh*kw*cg` input bytes of one group's window (padding reads the zero point).
#[derive(Debug, Clone)]
pub(crate) struct Im2col {
    pub geom: ConvGeom,
    /// First input channel of the group.
    pub c0: usize,
    pub cg: usize,
    pub zero_point: u8,
    /// Scratch offset in f32 slots; the rows are bytes from there.
    pub scratch: usize,
}

/// One quantized GEMM: `out[i*ldc + out_off + j]` for `i < m`, `j < n`.
#[derive(Debug, Clone)]
pub(crate) struct QGemm {
    /// Im2col into scratch first (A is then the scratch rows, `lda = kh*kw*cg`).
    pub pre: Option<Im2col>,
    pub x: Loc,
    /// Byte offset of A's first row in `x` (the group's first channel).
    pub a_off: usize,
    pub lda: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub b: Vec<i8>,
    pub bias: Vec<i32>,
    pub scale: Vec<f32>,
    pub rq: Requant,
    /// Residual tensor (same geometry as the output), its zero point and rescale factor.
    pub residual: Option<(Loc, i32, f32)>,
    pub out: Loc,
    pub out_off: usize,
    pub ldc: usize,
    /// The output tensor is f32: write `f32(acc) * scale` (a dequantizing last layer).
    pub out_f32: bool,
}

/// An executable quantized step.
#[derive(Debug, Clone)]
pub(crate) enum QStep {
    /// Pointwise / dense / grouped convolution or fully connected: one GEMM per group.
    Gemm(Vec<QGemm>),
    /// Depthwise convolution.
    Dw {
        geom: ConvGeom,
        x: Loc,
        x_zero_point: i32,
        w: Vec<i8>,
        bias: Vec<i32>,
        scale: Vec<f32>,
        rq: Requant,
        out: Loc,
    },
    /// Global average over the pixels of NHWC bytes:
    /// `y = requant(Σ x - hw * zx, scale)` with `scale = sx / (hw * sy)`.
    GlobalAvg {
        n: usize,
        hw: usize,
        c: usize,
        x: Loc,
        x_zero_point: i32,
        scale: f32,
        rq: Requant,
        out: Loc,
    },
    /// Max pooling on bytes (input and output share their quantization).
    MaxPool { geom: ConvGeom, x: Loc, out: Loc },
    /// Windowed average pooling: `y = requant(Σ (x - zx), sx / (count * sy))` with `count`
    /// the window size, or only its in-bounds taps without `include_pad`.
    AvgPool {
        geom: ConvGeom,
        include_pad: bool,
        x: Loc,
        x_zero_point: i32,
        /// `sx / sy`.
        scale: f32,
        rq: Requant,
        out: Loc,
    },
    /// Element-wise function through a 256-entry table (any activation).
    Lut { table: Vec<u8>, x: Loc, out: Loc },
    /// Add or multiply of two 8-bit tensors; `b` is either the same shape as `a` or one
    /// value per (batch, channel) of channels-last data (`chan > 0`, squeeze-excite gating).
    Binary {
        p: QBinary,
        a: Loc,
        b: Loc,
        /// Channels of `a` when `b` is per channel, else 0.
        chan: usize,
        out: Loc,
    },
}

/// Per-tensor `(scale, zero point)` of an 8-bit activation.
fn per_tensor(t: &Tensor, node: &str) -> Result<(f32, i32)> {
    match (&t.quant, t.dtype) {
        (Some(Quant::PerTensor { scale, zero_point }), DType::U8) => Ok((*scale, *zero_point)),
        _ => Err(Error::Unsupported(format!(
            "node {node:?}: tensor {:?} must be u8 with per-tensor quantization",
            t.name
        ))),
    }
}

/// Output clamp `[qmin, qmax]` of a fused ReLU / clip at output scale `s` and zero point `zp`.
fn clamp_bounds(act: Activation, s: f32, zp: i32, node: &str) -> Result<(u8, u8)> {
    let q = |v: f32| (zp as f32 + (v / s).round()).clamp(0.0, 255.0) as u8;
    match act {
        Activation::None => Ok((0, 255)),
        Activation::Relu => Ok((q(0.0), 255)),
        Activation::Clip { min, max } => Ok((q(min), q(max))),
        other => Err(Error::Unsupported(format!(
            "node {node:?}: activation {other:?} cannot be fused into an int8 kernel"
        ))),
    }
}

impl Planner<'_> {
    /// Raw int8 constant and its per-output-channel scales (axis 0).
    fn const_i8(&self, t: usize, node: &str) -> Result<(Vec<i8>, Vec<f32>)> {
        let tensor = self.tensor(t)?;
        let o = tensor.shape.first().copied().unwrap_or(0);
        let scales = match &tensor.quant {
            Some(Quant::PerChannel {
                axis: 0,
                scales,
                zero_points,
            }) if zero_points.iter().all(|&z| z == 0) => scales.clone(),
            Some(Quant::PerTensor {
                scale,
                zero_point: 0,
            }) => vec![*scale; o],
            _ => {
                return Err(Error::Unsupported(format!(
                    "node {node:?}: weight {:?} must be symmetric int8, per tensor or per \
                     output channel",
                    tensor.name
                )))
            }
        };
        let bytes = self.model.weights.get(
            tensor
                .data
                .ok_or_else(|| Error::graph(node, "weight has no constant data"))?,
        )?;
        if tensor.dtype != DType::I8 || bytes.len() != tensor.numel() || scales.len() != o {
            return Err(Error::graph(node, "int8 weight size mismatch"));
        }
        Ok((bytemuck::cast_slice(bytes).to_vec(), scales))
    }

    /// Raw int32 constant (a quantized bias).
    fn const_i32(&self, t: usize, node: &str) -> Result<Vec<i32>> {
        let tensor = self.tensor(t)?;
        let r = tensor
            .data
            .ok_or_else(|| Error::graph(node, "bias has no constant data"))?;
        let bytes = self.model.weights.get(r)?;
        if tensor.dtype != DType::I32 || bytes.len() != tensor.numel() * 4 {
            return Err(Error::graph(node, "int32 bias size mismatch"));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Lower a compute node whose input is 8-bit: `(step, kernel name, macs, params)`.
    pub(crate) fn lower_q8(&mut self, i: usize) -> Result<(QStep, &'static str, u64, u64)> {
        let node = &self.model.graph.nodes[i];
        let name = node.name.as_str();
        let x_id = node.inputs[0];
        let out_id = node.outputs[0];
        let x = self.place(x_id)?.clone();
        let out = self.place(out_id)?.clone();
        let (sx, zx) = per_tensor(self.tensor(x_id)?, name)?;
        let out_t = self.tensor(out_id)?;
        let out_f32 = out_t.dtype == DType::F32;
        let (sy, zy) = if out_f32 {
            (1.0, 0)
        } else {
            per_tensor(out_t, name)?
        };
        let unsupported = || {
            Error::Unsupported(format!(
                "node {name:?}: quantized {} is not implemented",
                node.op.name()
            ))
        };
        match &node.op {
            Op::Conv2d {
                window,
                groups,
                activation,
                has_bias,
                has_residual,
            } => {
                if x.shape.len() != 4 || x.strides[1] != 1 {
                    return Err(unsupported());
                }
                let (w, ws) = self.const_i8(node.inputs[1], name)?;
                let o = ws.len();
                let bias = if *has_bias {
                    self.const_i32(node.inputs[2], name)?
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
                    let rt = *node.inputs.last().unwrap_or(&x_id);
                    let (sr, zr) = per_tensor(self.tensor(rt)?, name)?;
                    let r = self.place(rt)?;
                    if r.strides != out.strides || out_f32 {
                        return Err(unsupported());
                    }
                    Some((r.loc, zr, sr / sy))
                } else {
                    None
                };
                let depthwise = geom.groups == geom.c && o == geom.c && geom.groups > 1;
                if depthwise {
                    if residual.is_some() || out_f32 {
                        return Err(unsupported());
                    }
                    let step = QStep::Dw {
                        geom,
                        x: x.loc,
                        x_zero_point: zx,
                        w: crate::kernels::qs8_dwconv::pack_weights(&geom, &w),
                        bias,
                        scale,
                        rq,
                        out: out.loc,
                    };
                    return Ok((step, self.k.qs8_dwconv.name, macs, params));
                }
                let pointwise = geom.kh == 1
                    && geom.kw == 1
                    && geom.sh == 1
                    && geom.sw == 1
                    && window.pads == [0; 4];
                let m = geom.n * geom.oh * geom.ow;
                let mut gemms = Vec::with_capacity(geom.groups);
                for gi in 0..geom.groups {
                    // Weight rows reordered from [og][cg][kh][kw] to the im2col order
                    // [og][kh][kw][cg].
                    let mut wg = vec![0i8; og * fan_in];
                    for oc in 0..og {
                        for ic in 0..cg {
                            for t in 0..geom.kh * geom.kw {
                                wg[oc * fan_in + t * cg + ic] =
                                    w[(gi * og + oc) * fan_in + ic * geom.kh * geom.kw + t];
                            }
                        }
                    }
                    let pre = if pointwise {
                        None
                    } else {
                        Some(Im2col {
                            geom,
                            c0: gi * cg,
                            cg,
                            zero_point: zx as u8,
                            scratch: self.scratch((m * fan_in).div_ceil(4)),
                        })
                    };
                    let gb = &bias[gi * og..(gi + 1) * og];
                    gemms.push(QGemm {
                        x: x.loc,
                        a_off: if pre.is_some() { 0 } else { gi * cg },
                        lda: if pre.is_some() { fan_in } else { geom.c },
                        pre,
                        m,
                        n: og,
                        k: fan_in,
                        b: pack_b_transposed(fan_in, og, &wg),
                        bias: fold_zero_point(gb, &wg, fan_in, zx),
                        scale: scale[gi * og..(gi + 1) * og].to_vec(),
                        rq,
                        residual,
                        out: out.loc,
                        out_off: gi * og,
                        ldc: o,
                        out_f32,
                    });
                }
                Ok((QStep::Gemm(gemms), self.k.qs8_gemm.name, macs, params))
            }
            Op::FullyConnected {
                activation,
                has_bias,
            } => {
                let (w, ws) = self.const_i8(node.inputs[1], name)?;
                let o = ws.len();
                let kk = self
                    .tensor(node.inputs[1])?
                    .shape
                    .get(1)
                    .copied()
                    .unwrap_or(0);
                if !is_row_major(&x.shape, &x.strides) || !is_row_major(&out.shape, &out.strides) {
                    return Err(unsupported());
                }
                let bias = if *has_bias {
                    self.const_i32(node.inputs[2], name)?
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
                let g = QGemm {
                    pre: None,
                    x: x.loc,
                    a_off: 0,
                    lda: kk,
                    m,
                    n: o,
                    k: kk,
                    b: pack_b_transposed(kk, o, &w),
                    bias: fold_zero_point(&bias, &w, kk, zx),
                    scale,
                    rq: Requant::new(zy, qmin, qmax),
                    residual: None,
                    out: out.loc,
                    out_off: 0,
                    ldc: o,
                    out_f32,
                };
                Ok((
                    QStep::Gemm(vec![g]),
                    self.k.qs8_gemm.name,
                    (m * o * kk) as u64,
                    params,
                ))
            }
            Op::Pool2d { kind, window } if !out_f32 && x.shape.len() == 4 => {
                let geom = window_geom(&x.shape, &out.shape, window, x.shape[1], 1);
                let macs = (out.loc.len * geom.kh * geom.kw) as u64;
                let global = geom.kh == geom.h
                    && geom.kw == geom.w
                    && window.pads == [0; 4]
                    && geom.oh == 1
                    && geom.ow == 1;
                match kind {
                    PoolKind::Max if (sx, zx) == (sy, zy) => Ok((
                        QStep::MaxPool {
                            geom,
                            x: x.loc,
                            out: out.loc,
                        },
                        "u8_pool::scalar::maxpool",
                        macs,
                        0,
                    )),
                    PoolKind::Avg { .. } if global => {
                        let hw = geom.h * geom.w;
                        Ok((
                            QStep::GlobalAvg {
                                n: geom.n,
                                hw,
                                c: geom.c,
                                x: x.loc,
                                x_zero_point: zx,
                                scale: sx / (hw as f32 * sy),
                                rq: Requant::new(zy, 0, 255),
                                out: out.loc,
                            },
                            "qs8_pool::scalar::global_avg",
                            macs,
                            0,
                        ))
                    }
                    PoolKind::Avg { count_include_pad } => Ok((
                        QStep::AvgPool {
                            geom,
                            include_pad: *count_include_pad,
                            x: x.loc,
                            x_zero_point: zx,
                            scale: sx / sy,
                            rq: Requant::new(zy, 0, 255),
                            out: out.loc,
                        },
                        "qs8_pool::scalar::avgpool",
                        macs,
                        0,
                    )),
                    _ => Err(unsupported()),
                }
            }
            Op::Reduce {
                op: ReduceOp::Mean,
                axes,
                ..
            } if !out_f32 && x.shape.len() == 4 && x.strides[1] == 1 => {
                let mut s = axes.clone();
                s.sort();
                if s != [2, 3] {
                    return Err(unsupported());
                }
                let hw = x.shape[2] * x.shape[3];
                Ok((
                    QStep::GlobalAvg {
                        n: x.shape[0],
                        hw,
                        c: x.shape[1],
                        x: x.loc,
                        x_zero_point: zx,
                        scale: sx / (hw as f32 * sy),
                        rq: Requant::new(zy, 0, 255),
                        out: out.loc,
                    },
                    "qs8_pool::scalar::global_avg",
                    x.loc.len as u64,
                    0,
                ))
            }
            Op::Unary { activation } if !out_f32 && x.strides == out.strides => {
                let mut v: Vec<f32> = (0..256).map(|q| (q - zx) as f32 * sx).collect();
                crate::kernels::f32_eltwise::scalar::activation(
                    crate::plan::act_of(*activation),
                    &mut v,
                );
                let rq = Requant::new(zy, 0, 255);
                let table = v.iter().map(|&f| rq.finish(f / sy)).collect();
                Ok((
                    QStep::Lut {
                        table,
                        x: x.loc,
                        out: out.loc,
                    },
                    "u8_lut::scalar::lookup",
                    0,
                    0,
                ))
            }
            Op::Binary {
                op: op @ (BinaryOp::Add | BinaryOp::Mul),
                activation,
            } if !out_f32 && node.inputs.len() == 2 => {
                let b_id = node.inputs[1];
                let b = self.place(b_id)?.clone();
                let (sb, zb) = per_tensor(self.tensor(b_id)?, name)?;
                // Both operands commute: `a` is the full-size one.
                let ((x, sx, zx), (b, sb, zb)) = if b.shape == out.shape {
                    ((b, sb, zb), (x, sx, zx))
                } else {
                    ((x, sx, zx), (b, sb, zb))
                };
                if x.shape != out.shape || x.strides != out.strides {
                    return Err(unsupported());
                }
                let chan = if b.shape == x.shape && b.strides == x.strides {
                    0
                } else if x.shape.len() == 4
                    && x.strides[1] == 1
                    && b.shape == [x.shape[0], x.shape[1], 1, 1]
                {
                    x.shape[1]
                } else {
                    return Err(unsupported());
                };
                let (qmin, qmax) = clamp_bounds(*activation, sy, zy, name)?;
                let mul = *op == BinaryOp::Mul;
                let (ma, mb) = if mul {
                    (sx * sb / sy, 0.0)
                } else {
                    (sx / sy, sb / sy)
                };
                Ok((
                    QStep::Binary {
                        p: QBinary {
                            mul,
                            za: zx,
                            zb,
                            ma,
                            mb,
                            rq: Requant::new(zy, qmin, qmax),
                        },
                        a: x.loc,
                        b: b.loc,
                        chan,
                        out: out.loc,
                    },
                    self.k.qs8_binary.name,
                    out.loc.len as u64,
                    0,
                ))
            }
            _ => Err(unsupported()),
        }
    }
}
