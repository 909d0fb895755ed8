//! The SIMD pooling and interleave (channel shuffle) kernels must match their scalar twins exactly (they
//! only compare, add in the same order, and move data) on odd shapes. The kernels are those
//! of the `f32_pool` and `f32_copy` registries; the ones this CPU cannot run are skipped with
//! a message.

mod twins;

use ferrolite_runtime::kernels::f32_conv::ConvGeom;
use ferrolite_runtime::kernels::{f32_copy, f32_pool};

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

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Window geometries: 3x3 stride 2 pad 1 (ShuffleNet/ResNet stem pool), 2x2 stride 2, 3x3
/// stride 1 with padding, 5x5 without, channels around the register width.
fn geoms() -> Vec<ConvGeom> {
    let mut v = Vec::new();
    for &c in &[1usize, 7, 8, 9, 24, 33] {
        for &(h, w, k, s, p) in &[
            (9usize, 11usize, 3usize, 2usize, 1usize),
            (8, 8, 2, 2, 0),
            (5, 7, 3, 1, 1),
            (7, 6, 5, 1, 0),
        ] {
            v.push(ConvGeom {
                n: 2,
                h,
                w,
                c,
                oh: (h + 2 * p - k) / s + 1,
                ow: (w + 2 * p - k) / s + 1,
                o: c,
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                dh: 1,
                dw: 1,
                pt: p,
                pl: p,
                groups: 1,
            });
        }
    }
    v
}

#[test]
fn simd_maxpools_match_scalar_exactly() {
    let scalar = twins::scalar("f32_pool::maxpool", f32_pool::MAXPOOL).f;
    for e in twins::simd("f32_pool::maxpool", f32_pool::MAXPOOL) {
        for (i, g) in geoms().iter().enumerate() {
            let x = values(g.n * g.h * g.w * g.c, i as u64);
            let out = g.n * g.oh * g.ow * g.c;
            let (mut want, mut got) = (vec![0.0; out], vec![f32::NAN; out]);
            scalar(g, &x, &mut want);
            (e.f)(g, &x, &mut got);
            assert_eq!(bits(&got), bits(&want), "{} {g:?}", e.name);
        }
    }
}

#[test]
fn simd_avgpools_match_scalar_exactly() {
    let scalar = twins::scalar("f32_pool::avgpool", f32_pool::AVGPOOL).f;
    for e in twins::simd("f32_pool::avgpool", f32_pool::AVGPOOL) {
        for (i, g) in geoms().iter().enumerate() {
            let x = values(g.n * g.h * g.w * g.c, i as u64);
            let out = g.n * g.oh * g.ow * g.c;
            let (mut want, mut got) = (vec![0.0; out], vec![f32::NAN; out]);
            for include_pad in [false, true] {
                scalar(g, include_pad, &x, &mut want);
                (e.f)(g, include_pad, &x, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{} pad={include_pad} {g:?}",
                    e.name
                );
            }
        }
    }
}

#[test]
fn simd_global_avgs_match_scalar_exactly() {
    let scalar = twins::scalar("f32_pool::global_avg", f32_pool::GLOBAL_AVG).f;
    for e in twins::simd("f32_pool::global_avg", f32_pool::GLOBAL_AVG) {
        for (i, g) in geoms().iter().enumerate() {
            let x = values(g.n * g.h * g.w * g.c, i as u64);
            let hw = g.h * g.w;
            let (mut want, mut got) = (vec![0.0; g.n * g.c], vec![f32::NAN; g.n * g.c]);
            scalar(g.n, hw, g.c, &x, &mut want);
            (e.f)(g.n, hw, g.c, &x, &mut got);
            assert_eq!(bits(&got), bits(&want), "{} {g:?}", e.name);
        }
    }
}

#[test]
fn simd_interleave_matches_scalar_and_definition() {
    let scalar = twins::scalar("f32_copy::interleave2", f32_copy::INTERLEAVE2).f;
    let kernels = twins::simd("f32_copy::interleave2", f32_copy::INTERLEAVE2);
    // (pixels, pairs n, row strides of a, b, y): dense halves of one tensor, separate
    // tensors, and split parts (y rows wider than 2n are not touched beyond 2n).
    for &(pixels, n, sa, sb, sy) in &[
        (1usize, 1usize, 2usize, 2usize, 2usize),
        (3, 7, 14, 14, 14),
        (5, 8, 16, 16, 16),
        (7, 17, 34, 34, 34),
        (4, 58, 58, 58, 116),
        (3, 29, 116, 116, 58),
        (2, 9, 9, 20, 18),
        (0, 8, 16, 16, 16),
    ] {
        let a = values(pixels * sa + n, (n + sa) as u64);
        let b = values(pixels * sb + n, (n + sb + 1) as u64);
        let len = pixels * sy + 2 * n;
        let mut want = vec![-9.0; len];
        scalar(pixels, n, &a, sa, &b, sb, &mut want, sy);
        for p in 0..pixels {
            for j in 0..n {
                assert_eq!(want[p * sy + 2 * j], a[p * sa + j]);
                assert_eq!(want[p * sy + 2 * j + 1], b[p * sb + j]);
            }
        }
        for e in &kernels {
            let mut got = vec![-9.0; len];
            (e.f)(pixels, n, &a, sa, &b, sb, &mut got, sy);
            assert_eq!(
                bits(&got),
                bits(&want),
                "{} pixels {pixels} n {n} strides {sa} {sb} {sy}",
                e.name
            );
        }
    }
}
