//! Quantize and Dequantize: f32 <-> 8-bit affine conversion, per tensor (the model input's
//! quantize runs the SIMD kernel) or per channel; split into blocks of elements.

use super::arena::{Cx, Loc, Out, Outs};
use super::eltwise::{flat_span, BLOCK};
use super::planner::{Lowered, Planner};
use super::step::{blocks, Step, Work};
use crate::error::{Error, Result};
use crate::ir::{DType, Op, Quant};

/// f32 <-> 8-bit affine conversion (the 8-bit side holds bytes).
#[derive(Debug)]
pub(crate) struct Convert {
    pub quantize: bool,
    /// Per element channel: `(i / stride) % dim`; `dim == 1` for per-tensor.
    pub stride: usize,
    pub dim: usize,
    pub scales: Vec<f32>,
    pub zps: Vec<f32>,
    pub lo: f32,
    pub hi: f32,
    pub x: Loc,
    pub out: Loc,
}

impl Step for Convert {
    fn outs(&self) -> Vec<Out> {
        if self.quantize {
            vec![Out::bytes(self.out, BLOCK)]
        } else {
            vec![Out::f32(self.out, BLOCK)]
        }
    }

    fn work(&self) -> Work {
        let n = self.out.len;
        Work::moves(blocks(n, BLOCK), 1, 5 * n as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let s = flat_span(&out.units(), self.out.len);
        let signed = self.lo < 0.0;
        let chan = |i: usize| ((s.start + i) / self.stride) % self.dim;
        if self.quantize {
            let x = &cx.get(self.x)?[s.clone()];
            let y = out.bytes(0)?;
            if self.dim == 1 {
                let zp = self.zps[0] as i32;
                let (lo, hi) = (self.lo as i32, self.hi as i32);
                (cx.k.qs8_quantize.f)(x, self.scales[0], zp, lo, hi, y);
                return Ok(());
            }
            for (i, (y, &v)) in y.iter_mut().zip(x).enumerate() {
                let ch = chan(i);
                let q = ((v / self.scales[ch]).round_ties_even() + self.zps[ch])
                    .clamp(self.lo, self.hi);
                *y = if signed { q as i8 as u8 } else { q as u8 };
            }
        } else {
            let x = &cx.bytes(self.x)?[s.clone()];
            for (i, (y, &b)) in out.f32(0)?.iter_mut().zip(x).enumerate() {
                let ch = chan(i);
                let q = if signed { b as i8 as f32 } else { b as f32 };
                *y = (q - self.zps[ch]) * self.scales[ch];
            }
        }
        Ok(())
    }
}

/// Lower a Quantize or Dequantize node.
pub(crate) fn lower(p: &mut Planner<'_>, i: usize) -> Result<Lowered> {
    let node = p.node(i);
    let name = node.name.as_str();
    let quantize = matches!(node.op, Op::Quantize);
    let (x_id, out_id) = (p.input(node, 0)?, p.output(node)?);
    let x = p.place(x_id)?.clone();
    let out = p.place(out_id)?.clone();
    if x.strides != out.strides {
        return Err(Error::Unsupported(format!(
            "node {name:?}: (de)quantize of a constant"
        )));
    }
    let qt = p.tensor(if quantize { out_id } else { x_id })?;
    let (lo, hi) = if qt.dtype == DType::I8 {
        (-128.0, 127.0)
    } else {
        (0.0, 255.0)
    };
    let (stride, dim, scales, zps) = match &qt.quant {
        Some(Quant::PerTensor { scale, zero_point }) => {
            (1, 1, vec![*scale], vec![*zero_point as f32])
        }
        Some(Quant::PerChannel {
            axis,
            scales,
            zero_points,
        }) => (
            x.strides[*axis].max(1),
            x.shape[*axis],
            scales.clone(),
            zero_points.iter().map(|&z| z as f32).collect(),
        ),
        None => return Err(Error::graph(name, "missing quantization parameters")),
    };
    if scales.len() != dim || zps.len() != dim {
        return Err(Error::graph(
            name,
            "per-channel quantization length mismatch",
        ));
    }
    let kernel = if quantize && dim == 1 {
        p.k.qs8_quantize.name
    } else if quantize {
        "quant::scalar::quantize"
    } else {
        "quant::scalar::dequantize"
    };
    let step = Convert {
        quantize,
        stride,
        dim,
        scales,
        zps,
        lo,
        hi,
        x: x.loc,
        out: out.loc,
    };
    Ok(Lowered::plain(step, kernel))
}
