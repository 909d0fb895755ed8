//! The SIMD direct convolutions must match the scalar twin on odd shapes, every fused
//! activation, with and without residual. The kernels are those of the `f32_conv` registry;
//! the ones this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::f32_conv::{self, pack_weights, ConvArgs, ConvFn, ConvGeom};
use ferrolite_runtime::kernels::Act;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn geom(
    c: usize,
    o: usize,
    hw: usize,
    k: usize,
    s: usize,
    d: usize,
    p: usize,
    groups: usize,
) -> ConvGeom {
    let ext = d * (k - 1) + 1;
    let out = (hw + 2 * p).saturating_sub(ext) / s + 1;
    ConvGeom {
        n: 1,
        h: hw,
        w: hw + 1,
        c,
        oh: out,
        ow: (hw + 1 + 2 * p - ext) / s + 1,
        o,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        dh: d,
        dw: d,
        pt: p,
        pl: p,
        groups,
    }
}

/// `count` random valid geometries: 1-3 groups, 1-5 input and 1-24 output channels per
/// group, kernels 1-5, stride 1-3, dilation 1-2, padding 0-2, images up to 14 rows.
fn random_geoms(count: usize, seed: u64) -> Vec<ConvGeom> {
    let r = values(count * 8, seed);
    let pick = |v: f32, lo: usize, hi: usize| {
        lo + (((v + 1.0) * 0.5 * (hi - lo + 1) as f32) as usize).min(hi - lo)
    };
    r.chunks_exact(8)
        .map(|v| {
            let groups = pick(v[0], 1, 3);
            let (k, d, p) = (pick(v[3], 1, 5), pick(v[4], 1, 2), pick(v[6], 0, 2));
            let min_hw = (d * (k - 1) + 1).saturating_sub(2 * p).max(1);
            geom(
                groups * pick(v[1], 1, 5),
                groups * pick(v[2], 1, 24),
                pick(v[7], min_hw, min_hw.max(14)),
                k,
                pick(v[5], 1, 3),
                d,
                p,
                groups,
            )
        })
        .collect()
}

fn run(f: ConvFn, g: &ConvGeom, act: Act, residual: bool, seed: u64) -> Vec<f32> {
    let x = values(g.n * g.h * g.w * g.c, seed);
    let w = pack_weights(g, &values(g.o * (g.c / g.groups) * g.kh * g.kw, seed + 1));
    let bias = values(g.o, seed + 2);
    let res = values(g.n * g.oh * g.ow * g.o, seed + 3);
    let mut y = vec![0.0; g.n * g.oh * g.ow * g.o];
    f(ConvArgs {
        g,
        x: &x,
        w: &w,
        bias: &bias,
        residual: residual.then_some(res.as_slice()),
        y: &mut y,
        act,
    });
    y
}

fn check(name: &str, f: ConvFn) {
    let mut cases = vec![
        geom(3, 32, 17, 3, 2, 1, 1, 1),
        geom(3, 16, 9, 3, 2, 1, 1, 1),
        geom(1, 1, 5, 1, 1, 1, 0, 1),
        geom(5, 17, 7, 3, 1, 1, 1, 1),
        geom(12, 18, 8, 3, 1, 1, 1, 3),
        geom(8, 80, 6, 5, 2, 1, 2, 1),
        geom(6, 33, 9, 3, 1, 2, 2, 1),
        geom(24, 24, 5, 1, 1, 1, 0, 3),
        geom(16, 129, 4, 3, 1, 1, 1, 1),
        geom(4, 8, 7, 7, 1, 1, 0, 2),
        // Long rows: several full pixel tiles, then single interior and border pixels.
        geom(3, 24, 39, 3, 2, 1, 1, 1),
        geom(7, 48, 40, 3, 1, 1, 1, 1),
        geom(2, 40, 26, 5, 1, 1, 2, 2),
        // Maps with fewer pixels than a tile, and tiles spanning row ends (ResNet's 7x7).
        geom(16, 40, 1, 3, 1, 1, 1, 1),
        geom(9, 20, 2, 3, 2, 1, 1, 1),
        geom(32, 64, 7, 3, 1, 1, 1, 1),
        geom(5, 7, 3, 3, 1, 2, 2, 1),
        // TF "same" export of a stride-2 stem: no top/left padding, one bottom/right.
        ConvGeom {
            n: 2,
            h: 16,
            w: 23,
            c: 3,
            oh: 8,
            ow: 12,
            o: 32,
            kh: 3,
            kw: 3,
            sh: 2,
            sw: 2,
            dh: 1,
            dw: 1,
            pt: 0,
            pl: 0,
            groups: 1,
        },
    ];
    // Channel counts at the NEON tile edges (4x8 on armv7, 6x16 on aarch64: tile, tile+1,
    // 3*tile+5), nothing to compute (no output channels, empty batch), random shapes.
    cases.extend([
        geom(3, 8, 9, 3, 1, 1, 1, 1),
        geom(5, 9, 8, 3, 2, 1, 1, 1),
        geom(4, 29, 10, 3, 1, 1, 1, 1),
        geom(3, 53, 13, 3, 2, 1, 1, 1),
        geom(6, 106, 6, 3, 1, 1, 1, 2),
        geom(3, 0, 5, 3, 1, 1, 1, 1),
        ConvGeom {
            n: 0,
            ..geom(3, 16, 5, 3, 1, 1, 1, 1)
        },
    ]);
    cases.extend(random_geoms(16, 77));
    let acts = [
        Act::None,
        Act::Relu,
        Act::Clip { min: 0.0, max: 6.0 },
        Act::HardSwish,
        Act::Sigmoid,
        Act::Silu,
        Act::Tanh,
        Act::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Act::LeakyRelu { alpha: 0.1 },
    ];
    let scalar = twins::scalar("f32_conv", f32_conv::CONV).f;
    for (i, g) in cases.iter().enumerate() {
        for (j, &act) in acts.iter().enumerate() {
            for residual in [false, true] {
                let seed = (i * 10 + j) as u64;
                let want = run(scalar, g, act, residual, seed);
                let got = run(f, g, act, residual, seed);
                let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "{name} case {i} {g:?} act {act:?} residual {residual}: y[{k}] {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// Every SIMD direct convolution of the registry this CPU runs.
#[test]
fn simd_direct_convs_match_scalar() {
    for e in twins::simd("f32_conv", f32_conv::CONV) {
        check(e.name, e.f);
    }
}
