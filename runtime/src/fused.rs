//! Inverted-residual fusion (MobileNetV2 / EfficientNet blocks): a pointwise expansion, a
//! depthwise convolution and a pointwise projection run band by band of output rows, so
//! the expanded and depthwise tensors of high-resolution blocks live in a cache-sized
//! scratch band instead of making a round trip through memory.

use crate::error::{Error, Result};
use crate::ir::{Graph, Op};
use crate::kernels::f32_conv::ConvGeom;
use crate::kernels::f32_dwconv::ConvArgs;
use crate::kernels::f32_gemm::GemmParams;
use crate::kernels::{Act, Kernels};
use crate::plan::{Loc, Mat, Step};

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

/// The fused step.
#[derive(Debug, Clone)]
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
    /// Scratch offsets and lengths of the expanded-rows buffer and the depthwise band.
    pub ebuf: usize,
    pub ebuf_len: usize,
    pub dbuf: usize,
    pub dbuf_len: usize,
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

/// Replace the lowered steps of `chain` by one fused step at the projection's index (the
/// others become no-ops). Steps not in the expected form are left as they are.
pub(crate) fn fuse_chain(
    steps: &mut [Step],
    chain: Chain,
    scratch: &mut dyn FnMut(usize) -> usize,
) -> bool {
    let pointwise = |s: &Step| match s {
        Step::Gemm {
            pre: None,
            a: Mat::Loc(a),
            b,
            bias,
            residual,
            c: Mat::Loc(_),
            post: None,
            n,
            k,
            act,
            out,
            ..
        } => Some((
            *a,
            Pointwise {
                b: b.clone(),
                bias: bias.clone(),
                act: *act,
                k: *k,
                n: *n,
            },
            *residual,
            *out,
        )),
        _ => None,
    };
    let expand = match chain.expand {
        Some(a) => match pointwise(&steps[a]) {
            Some((x, pw, None, _)) => Some((x, pw)),
            _ => return false,
        },
        None => None,
    };
    let Step::Conv {
        depthwise: true,
        geom,
        x: dw_x,
        w,
        bias,
        residual: None,
        act,
        ..
    } = &steps[chain.dw]
    else {
        return false;
    };
    let Some((_, project, residual, out)) = pointwise(&steps[chain.project]) else {
        return false;
    };
    let g = *geom;
    if g.dh != 1 || g.dw != 1 || g.c != g.o || project.k != g.c {
        return false;
    }
    if let Some((_, e)) = &expand {
        if e.n != g.c {
            return false;
        }
    }
    let row = g.w * g.c;
    let rows_fit = (BAND_BYTES / 4 / row.max(1)).max(g.kh);
    let band = ((rows_fit - g.kh) / g.sh.max(1) + 1).clamp(1, g.oh.max(1));
    let ebuf_len = if expand.is_some() {
        ((band - 1) * g.sh + g.kh).min(g.h).max(1) * row
    } else {
        0
    };
    let dbuf_len = band * g.ow * g.c;
    let ir = InvertedResidual {
        x: expand.as_ref().map_or(*dw_x, |(x, _)| *x),
        expand: expand.map(|(_, e)| e),
        dw: g,
        dw_w: w.clone(),
        dw_bias: bias.clone(),
        dw_act: *act,
        project,
        residual,
        out,
        band,
        ebuf: scratch(ebuf_len),
        ebuf_len,
        dbuf: scratch(dbuf_len),
        dbuf_len,
    };
    steps[chain.project] = Step::InvertedResidual(Box::new(ir));
    steps[chain.dw] = Step::Nop;
    if let Some(a) = chain.expand {
        steps[a] = Step::Nop;
    }
    true
}

/// Run a fused block: for each band of output rows, expand the input rows it needs that
/// are not already in the band buffer, run the depthwise convolution on the band, then
/// project it into the output (with the residual).
pub(crate) fn run(
    k: &Kernels,
    ir: &InvertedResidual,
    x: &[f32],
    residual: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<()> {
    let g = ir.dw;
    let cin = ir.expand.as_ref().map_or(g.c, |e| e.k);
    let (e_ch, p_ch) = (g.c, ir.project.n);
    let row = g.w * e_ch;
    let bad = || Error::Unsupported("internal: fused block buffers too small".into());
    let (lo_s, hi_s) = scratch
        .get_mut(ir.ebuf..)
        .ok_or_else(bad)?
        .split_at_mut(ir.dbuf - ir.ebuf);
    let ebuf = lo_s.get_mut(..ir.ebuf_len).ok_or_else(bad)?;
    let dbuf = hi_s.get_mut(..ir.dbuf_len).ok_or_else(bad)?;
    let img_in = g.h * g.w * cin;
    let img_out = g.oh * g.ow * p_ch;
    if x.len() < g.n * img_in || y.len() < g.n * img_out {
        return Err(bad());
    }
    for n in 0..g.n {
        let x_img = &x[n * img_in..(n + 1) * img_in];
        // Expanded rows [r0, r1) sit at the start of `ebuf`.
        let (mut r0, mut r1) = (0usize, 0usize);
        let mut oy0 = 0;
        while oy0 < g.oh {
            let oy1 = (oy0 + ir.band).min(g.oh);
            let lo = (oy0 * g.sh).saturating_sub(g.pt).min(g.h);
            let hi = ((oy1 - 1) * g.sh + g.kh)
                .saturating_sub(g.pt)
                .min(g.h)
                .max(lo);
            let (src, src_lo) = match &ir.expand {
                Some(e) => {
                    if r1 <= lo {
                        (r0, r1) = (lo, lo);
                    } else if lo > r0 {
                        ebuf.copy_within((lo - r0) * row..(r1 - r0) * row, 0);
                        r0 = lo;
                    }
                    if hi > r1 {
                        let m = (hi - r1) * g.w;
                        (k.f32_gemm.f)(GemmParams {
                            m,
                            n: e_ch,
                            k: cin,
                            a: &x_img[r1 * g.w * cin..],
                            lda: cin,
                            b: &e.b,
                            bias: e.bias.as_deref(),
                            residual: None,
                            c: &mut ebuf[(r1 - r0) * row..(hi - r0) * row],
                            ldc: e_ch,
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
                pt: g.pt + lo - oy0 * g.sh,
                ..g
            };
            let dlen = (oy1 - oy0) * g.ow * e_ch;
            (k.f32_dwconv.f)(ConvArgs {
                g: &bg,
                x: &src[(lo - src_lo) * row..(hi - src_lo) * row],
                w: &ir.dw_w,
                bias: &ir.dw_bias,
                residual: None,
                y: &mut dbuf[..dlen],
                act: ir.dw_act,
            });
            let m = (oy1 - oy0) * g.ow;
            let off = n * img_out + oy0 * g.ow * p_ch;
            (k.f32_gemm.f)(GemmParams {
                m,
                n: p_ch,
                k: e_ch,
                a: &dbuf[..dlen],
                lda: e_ch,
                b: &ir.project.b,
                bias: ir.project.bias.as_deref(),
                residual: residual.map(|r| &r[off..off + m * p_ch]),
                c: &mut y[off..off + m * p_ch],
                ldc: p_ch,
                act: ir.project.act,
            });
            oy0 = oy1;
        }
    }
    Ok(())
}
