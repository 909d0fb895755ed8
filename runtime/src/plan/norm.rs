//! Normalizations: BatchNorm as a per-channel affine (split into blocks of pixels on
//! channels-last data), LayerNorm and Softmax over rows of one axis (one unit each: the
//! rows are strided walks, small in the models this runtime targets).

use super::arena::{walk2, Cx, Loc, Out, Outs};
use super::planner::{q8_unsupported, Lowered, Planner};
use super::step::{blocks, Step, Work};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::kernels::walk::Walk;

/// Pixels per unit of a channels-last affine.
const PIXELS: usize = 16;

/// Per-channel affine (BatchNorm): `y = x * scale[ch] + shift[ch]`.
#[derive(Debug)]
pub(crate) struct Affine {
    pub x: Loc,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub c: usize,
    /// Elements per channel run (1 for channels-last, which splits over pixels).
    pub inner: usize,
    pub out: Loc,
}

impl Step for Affine {
    fn outs(&self) -> Vec<Out> {
        let per = if self.inner == 1 {
            PIXELS * self.c
        } else {
            self.out.len
        };
        vec![Out::f32(self.out, per)]
    }

    fn work(&self) -> Work {
        if self.inner != 1 {
            return Work::single();
        }
        let n = self.out.len;
        Work::moves(blocks(n / self.c.max(1), PIXELS), 1, 8 * n as u64)
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let s = out.span(0);
        let x = cx.get(self.x)?;
        (cx.k.f32_affine.f)(
            &x[s],
            &self.scale,
            &self.shift,
            self.c,
            self.inner,
            out.f32(0)?,
        );
        Ok(())
    }
}

/// Layer normalization of rows of the last axis; walk over the shape with that axis set to
/// 1, as `[out, in]`.
#[derive(Debug)]
pub(crate) struct LayerNorm {
    pub x: Loc,
    pub walk: Walk<2>,
    pub len: usize,
    pub sx: usize,
    pub sy: usize,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub epsilon: f32,
    pub out: Loc,
}

impl Step for LayerNorm {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let x = cx.get(self.x)?;
        let f = cx.k.f32_layer_norm.f;
        for_rows(&self.walk, x, out.f32(0)?, |x, y| {
            f(
                self.len,
                x,
                self.sx,
                &self.scale,
                &self.shift,
                self.epsilon,
                y,
                self.sy,
            )
        });
        Ok(())
    }
}

/// Softmax rows; walk over the shape with the axis set to 1, as `[out, in]`.
#[derive(Debug)]
pub(crate) struct Softmax {
    pub x: Loc,
    pub walk: Walk<2>,
    pub len: usize,
    pub sx: usize,
    pub sy: usize,
    pub out: Loc,
}

impl Step for Softmax {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.out.len)]
    }

    fn work(&self) -> Work {
        Work::single()
    }

    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let x = cx.get(self.x)?;
        let y = out.f32(0)?;
        let f = cx.k.f32_softmax.f;
        self.walk.run(|[oy, ox], rows, [ry, rx]| {
            for j in 0..rows {
                f(
                    self.len,
                    &x[ox + j * rx..],
                    self.sx,
                    &mut y[oy + j * ry..],
                    self.sy,
                );
            }
        });
        Ok(())
    }
}

/// Call `f(x row, y row)` for every row start a `[out, in]` walk visits.
fn for_rows(walk: &Walk<2>, x: &[f32], y: &mut [f32], mut f: impl FnMut(&[f32], &mut [f32])) {
    walk.run(|[oy, ox], rows, [ry, rx]| {
        for j in 0..rows {
            f(&x[ox + j * rx..], &mut y[oy + j * ry..]);
        }
    });
}

/// Lower a BatchNorm, LayerNorm or Softmax node (f32 only).
pub(crate) fn lower(p: &mut Planner<'_>, i: usize, byte_input: bool) -> Result<Lowered> {
    let node = p.node(i);
    if byte_input {
        return Err(q8_unsupported(node));
    }
    let name = node.name.as_str();
    let x = p.place(p.input(node, 0)?)?.clone();
    let out = p.place(p.output(node)?)?.clone();
    let k = p.k;
    match &node.op {
        Op::BatchNorm => {
            if x.strides != out.strides {
                return Err(Error::Unsupported(format!(
                    "node {name:?}: BatchNorm on a constant"
                )));
            }
            let scale = p.const_f32(p.input(node, 1)?)?;
            let shift = p.const_f32(p.input(node, 2)?)?;
            let c = x.shape[1];
            let inner = if x.strides[1] == 1 {
                1
            } else {
                x.shape[2..].iter().product()
            };
            let params = (scale.len() + shift.len()) as u64;
            let s = Affine {
                x: x.loc,
                scale,
                shift,
                c,
                inner,
                out: out.loc,
            };
            Ok(Lowered::new(s, k.f32_affine.name, 0, params))
        }
        Op::LayerNorm { epsilon } => {
            let scale = p.const_f32(p.input(node, 1)?)?;
            let shift = p.const_f32(p.input(node, 2)?)?;
            let axis = x.shape.len() - 1;
            let len = x.shape[axis];
            if scale.len() != len || shift.len() != len {
                return Err(Error::graph(name, "LayerNorm scale or shift size mismatch"));
            }
            let mut rows = x.shape.clone();
            rows[axis] = 1;
            let walk = walk2(name, &rows, &out.strides, &x.strides)?;
            let params = (scale.len() + shift.len()) as u64;
            let s = LayerNorm {
                x: x.loc,
                walk,
                len,
                sx: x.strides[axis],
                sy: out.strides[axis],
                scale,
                shift,
                epsilon: *epsilon,
                out: out.loc,
            };
            Ok(Lowered::new(s, k.f32_layer_norm.name, 0, params))
        }
        Op::Softmax { axis } => {
            let mut shape = x.shape.clone();
            let len = shape[*axis];
            shape[*axis] = 1;
            let walk = walk2(name, &shape, &out.strides, &x.strides)?;
            let s = Softmax {
                x: x.loc,
                walk,
                len,
                sx: x.strides[*axis],
                sy: out.strides[*axis],
                out: out.loc,
            };
            Ok(Lowered::plain(s, k.f32_softmax.name))
        }
        _ => Err(q8_unsupported(node)),
    }
}
