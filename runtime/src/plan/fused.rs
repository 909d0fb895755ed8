//! Inverted-residual fusion (MobileNetV2 / EfficientNet blocks): a pointwise expansion, a
//! depthwise convolution and a pointwise projection run band by band of output rows, so
//! the expanded and depthwise tensors of high-resolution blocks live in a cache-sized
//! scratch band instead of making a round trip through memory. The step splits over output
//! rows: each thread runs the bands of its rows with its own band buffers (recomputing the
//! few expanded rows its neighbour also needs).

use super::arena::{align_up, Cx, Loc, Out, Outs};
use super::conv::{conv_parts, rows_work, ConvParts};
use super::planner::{Lowered, Planner};
use super::step::{Step, Work};
use crate::error::{Error, Result};
use crate::ir::{Graph, Op};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::f32_dwconv::ConvArgs;
use crate::kernels::f32_gemm::GemmParams;
use crate::kernels::Act;

/// Bytes of expanded rows one band may hold (a quarter of a 1 MiB L2).
const BAND_BYTES: usize = 256 * 1024;
/// Blocks whose expanded (or depthwise input) tensor is smaller than this already run in
/// cache; banding them would only re-stream their weights.
const MIN_FUSED_BYTES: usize = 1024 * 1024;

/// Node indices of one fusable block: optional expansion, depthwise, projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub expand: Option<usize>,
    pub dw: usize,
    pub project: usize,
}

impl Chain {
    /// The node whose input is the block input (read until the projection runs).
    pub fn first(&self) -> usize {
        self.expand.unwrap_or(self.dw)
    }
}

/// A 1x1, stride-1, unpadded, ungrouped convolution (it may add a residual).
fn pointwise_with_residual(op: &Op) -> bool {
    matches!(op, Op::Conv2d { window, groups: 1, .. }
        if window.kernel == [1, 1] && window.strides == [1, 1] && window.pads == [0; 4])
}

/// A pointwise convolution without residual (an expansion).
fn is_pointwise(op: &Op) -> bool {
    pointwise_with_residual(op)
        && matches!(
            op,
            Op::Conv2d {
                has_residual: false,
                ..
            }
        )
}

/// Find the fusable blocks of `g`: adjacent nodes expand → depthwise → project (or
/// depthwise → project) on f32 rank-4 tensors whose intermediate tensors have one reader
/// and are not graph outputs, and whose depthwise input is large enough to gain.
pub(crate) fn find_chains(g: &Graph) -> Vec<Chain> {
    let mut uses = vec![0usize; g.tensors.len()];
    for n in &g.nodes {
        for &t in &n.inputs {
            if let Some(u) = uses.get_mut(t) {
                *u += 1;
            }
        }
    }
    for &t in &g.outputs {
        if let Some(u) = uses.get_mut(t) {
            *u += 2;
        }
    }
    let f32_act = |t: usize| {
        g.tensors.get(t).is_some_and(|t| {
            t.shape.len() == 4 && !t.is_const() && t.dtype == crate::ir::DType::F32
        })
    };
    let mut chains = Vec::new();
    let mut b = 0;
    while b + 1 < g.nodes.len() {
        let (dw, pw) = (&g.nodes[b], &g.nodes[b + 1]);
        let depthwise = matches!(&dw.op, Op::Conv2d { window, groups, has_residual: false, .. }
            if *groups > 1 && window.dilations == [1, 1]
                && dw.inputs.first().and_then(|&x| g.tensors.get(x))
                    .is_some_and(|x| x.shape.len() == 4 && x.shape[1] == *groups)
                && dw.outputs.first().and_then(|&y| g.tensors.get(y))
                    .is_some_and(|y| y.shape.len() == 4 && y.shape[1] == *groups));
        let (Some(&e), Some(&d)) = (dw.inputs.first(), dw.outputs.first()) else {
            b += 1;
            continue;
        };
        let linked = depthwise
            && pointwise_with_residual(&pw.op)
            && pw.inputs.first() == Some(&d)
            && uses[d] == 1
            && f32_act(e)
            && f32_act(d)
            && pw.outputs.first().is_some_and(|&p| f32_act(p));
        let big = g.tensors[e].numel() * 4 >= MIN_FUSED_BYTES;
        if !(linked && big) {
            b += 1;
            continue;
        }
        // A pointwise node that already projects the previous block (MobileNet V1's
        // depthwise → pointwise → depthwise → pointwise) cannot also be this one's expansion.
        let taken = chains.last().map(|c: &Chain| c.project);
        let expand = b.checked_sub(1).filter(|&a| {
            let n = &g.nodes[a];
            Some(a) != taken
                && is_pointwise(&n.op)
                && n.outputs.first() == Some(&e)
                && uses[e] == 1
                && n.inputs.first().is_some_and(|&x| f32_act(x))
        });
        chains.push(Chain {
            expand,
            dw: b,
            project: b + 1,
        });
        b += 2;
    }
    chains
}

/// A pointwise convolution as a GEMM with packed weights.
#[derive(Debug, Clone)]
pub(crate) struct Pointwise {
    pub b: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub act: Act,
    /// Input and output channels.
    pub k: usize,
    pub n: usize,
}

impl Pointwise {
    fn of(c: &ConvParts) -> Pointwise {
        let (b, bias) = c.gemm_operands();
        Pointwise {
            b,
            bias,
            act: c.act,
            k: c.geom.c,
            n: c.geom.o,
        }
    }
}

/// The fused step.
#[derive(Debug)]
pub(crate) struct InvertedResidual {
    pub expand: Option<Pointwise>,
    /// Block input: the expansion's input, or the depthwise input without expansion.
    pub x: Loc,
    pub dw: ConvGeom,
    pub dw_w: Vec<f32>,
    pub dw_bias: Vec<f32>,
    pub dw_act: Act,
    pub project: Pointwise,
    pub residual: Option<Loc>,
    pub out: Loc,
    /// Output rows per band.
    pub band: usize,
    /// Lengths of the expanded-rows buffer and of the depthwise band (scratch).
    pub ebuf_len: usize,
    pub dbuf_len: usize,
    pub macs: u64,
}

/// Lower `chain` to one fused step (placed at the projection; the other members lower to
/// nothing). The members were found by [`find_chains`] on the graph.
pub(crate) fn lower_chain(p: &Planner<'_>, chain: Chain) -> Result<Lowered> {
    let internal = || {
        Error::Unsupported(format!(
            "internal: block ending at node {:?} did not lower to a fusable form",
            p.node(chain.project).name
        ))
    };
    let expand = chain.expand.map(|e| conv_parts(p, e)).transpose()?;
    let dw = conv_parts(p, chain.dw)?;
    let project = conv_parts(p, chain.project)?;
    let g = dw.geom;
    let fits = dw.depthwise()
        && dw.residual.is_none()
        && project.pointwise()
        && g.dh == 1
        && g.dw == 1
        && project.geom.c == g.c
        && expand
            .as_ref()
            .is_none_or(|e| e.pointwise() && e.residual.is_none() && e.geom.o == g.c);
    if !fits {
        return Err(internal());
    }
    let row = g.w * g.c;
    let rows_fit = (BAND_BYTES / 4 / row.max(1)).max(g.kh);
    let band = ((rows_fit - g.kh) / g.sh.max(1) + 1).clamp(1, g.oh.max(1));
    let ebuf_len = if expand.is_some() {
        ((band - 1) * g.sh + g.kh).min(g.h).max(1) * row
    } else {
        0
    };
    let macs = expand.as_ref().map_or(0, |e| e.macs) + dw.macs + project.macs;
    let step = InvertedResidual {
        x: expand.as_ref().map_or(dw.x.loc, |e| e.x.loc),
        expand: expand.as_ref().map(Pointwise::of),
        dw: g,
        dw_w: crate::kernels::f32_dwconv::pack_weights(&g, &dw.w),
        dw_bias: dw.bias,
        dw_act: dw.act,
        project: Pointwise::of(&project),
        residual: project.residual,
        out: project.out.loc,
        band,
        ebuf_len,
        dbuf_len: band * g.ow * g.c,
        macs,
    };
    // The members' parameters stay on their own rows of `inspect`; the MACs move here.
    Ok(Lowered::new(
        step,
        "fused::inverted_residual",
        macs,
        project.params,
    ))
}

impl Step for InvertedResidual {
    fn outs(&self) -> Vec<Out> {
        vec![Out::f32(self.out, self.dw.ow * self.project.n)]
    }

    fn work(&self) -> Work {
        rows_work(&self.dw, self.macs, 4)
    }

    fn scratch(&self) -> usize {
        align_up(self.ebuf_len) + self.dbuf_len
    }

    /// For each band of output rows, expand the input rows it needs that are not already
    /// in the band buffer, run the depthwise convolution on the band, then project it into
    /// the output (with the residual).
    fn run(&self, cx: &mut Cx<'_>, out: &mut Outs<'_>) -> Result<()> {
        let g = self.dw;
        let units = out.units();
        let cin = self.expand.as_ref().map_or(g.c, |e| e.k);
        let p_ch = self.project.n;
        let bad = || Error::Unsupported("internal: fused block buffers too small".into());
        let x = cx.get(self.x)?;
        let residual = self.residual.map(|l| cx.get(l)).transpose()?;
        let (gemm, dwconv) = (cx.k.f32_gemm.f, cx.k.f32_dwconv.f);
        let (ebuf, dbuf) = cx.scratch.split_at_mut(align_up(self.ebuf_len));
        let dbuf = dbuf.get_mut(..self.dbuf_len).ok_or_else(bad)?;
        let (img_in, img_out) = (g.h * g.w * cin, g.oh * g.ow * p_ch);
        if x.len() < g.n * img_in || residual.is_some_and(|r| r.len() < g.n * img_out) {
            return Err(bad());
        }
        let y = out.f32(0)?;
        let first = units.start * g.ow * p_ch;
        let oh = g.oh.max(1);
        let mut u = units.start;
        while u < units.end {
            let (n, row0) = (u / oh, u % oh);
            let row_end = (row0 + units.end - u).min(g.oh);
            let x_img = &x[n * img_in..(n + 1) * img_in];
            // Expanded rows [r0, r1) sit at the start of `ebuf`.
            let (mut r0, mut r1) = (0usize, 0usize);
            let mut oy0 = row0;
            while oy0 < row_end {
                let oy1 = (oy0 + self.band).min(row_end);
                let lo = (oy0 * g.sh).saturating_sub(g.pt).min(g.h);
                let hi = ((oy1 - 1) * g.sh + g.kh)
                    .saturating_sub(g.pt)
                    .min(g.h)
                    .max(lo);
                let (src, src_lo) = match &self.expand {
                    Some(e) => {
                        let row = g.w * g.c;
                        if r1 <= lo {
                            (r0, r1) = (lo, lo);
                        } else if lo > r0 {
                            ebuf.copy_within((lo - r0) * row..(r1 - r0) * row, 0);
                            r0 = lo;
                        }
                        if hi > r1 {
                            gemm(GemmParams {
                                m: (hi - r1) * g.w,
                                n: g.c,
                                k: cin,
                                a: &x_img[r1 * g.w * cin..],
                                lda: cin,
                                b: &e.b,
                                bias: e.bias.as_deref(),
                                residual: None,
                                c: ebuf
                                    .get_mut((r1 - r0) * row..(hi - r0) * row)
                                    .ok_or_else(bad)?
                                    .into(),
                                ldc: g.c,
                                act: e.act,
                            });
                            r1 = hi;
                        }
                        (&ebuf[..], r0)
                    }
                    None => (x_img, 0),
                };
                let bg = ConvGeom {
                    n: 1,
                    h: hi - lo,
                    oh: oy1 - oy0,
                    pt: (g.pt + lo).saturating_sub(oy0 * g.sh),
                    ..g
                };
                let row = g.w * g.c;
                let dlen = (oy1 - oy0) * g.ow * g.c;
                dwconv(ConvArgs {
                    g: &bg,
                    x: &src[(lo - src_lo) * row..(hi - src_lo) * row],
                    w: &self.dw_w,
                    bias: &self.dw_bias,
                    residual: None,
                    y: &mut dbuf[..dlen],
                    act: self.dw_act,
                });
                let m = (oy1 - oy0) * g.ow;
                let off = n * img_out + oy0 * g.ow * p_ch;
                gemm(GemmParams {
                    m,
                    n: p_ch,
                    k: g.c,
                    a: &dbuf[..dlen],
                    lda: g.c,
                    b: &self.project.b,
                    bias: self.project.bias.as_deref(),
                    residual: residual.map(|r| &r[off..off + m * p_ch]),
                    c: (&mut y[off - first..off - first + m * p_ch]).into(),
                    ldc: p_ch,
                    act: self.project.act,
                });
                oy0 = oy1;
            }
            u += row_end - row0;
        }
        Ok(())
    }
}
