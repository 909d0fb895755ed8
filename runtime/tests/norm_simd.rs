//! The SIMD layer-normalization kernels must match their scalar twin on rows around the
//! register widths, on rows with a large mean (where a one-pass variance would cancel), and
//! on strided rows (which they hand to the scalar kernel). The kernels are those of the
//! `f32_norm` registry; the ones this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::f32_norm::{self, scalar, LayerNormFn};

fn values(n: usize, seed: u64, spread: f32, offset: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            offset + (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * spread
        })
        .collect()
}

const LENGTHS: [usize; 12] = [1, 2, 7, 8, 9, 15, 16, 17, 64, 192, 197, 768];

/// Summation order differs between the tiers, so the row means differ by up to about
/// `n · ε · max|x|`, which the normalization divides by the standard deviation: agreement
/// within that (tight for centred rows, loose for a row of 100 ± 0.01, where a one-pass
/// variance would still be wrong by orders of magnitude).
fn tolerance(x: &[f32], scale: &[f32], out_mag: f32) -> f32 {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let std = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n).sqrt();
    let max_x = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_scale = scale.iter().fold(0f32, |m, v| m.max(v.abs()));
    2e-5 * out_mag + n * f32::EPSILON * max_x / std.max(1e-12) * max_scale
}

fn check(name: &str, f: LayerNormFn) {
    let oracle = twins::scalar("f32_norm", f32_norm::LAYER_NORM).f;
    for &n in &LENGTHS {
        for (k, (spread, offset)) in [(1.0, 0.0), (3.0, 1.5), (0.01, 100.0)]
            .into_iter()
            .enumerate()
        {
            let seed = (n * 13 + k) as u64;
            let x = values(n, seed, spread, offset);
            let scale = values(n, seed + 1, 0.3, 1.0);
            let shift = values(n, seed + 2, 0.2, 0.0);
            let mut want = vec![0.0; n];
            oracle(n, &x, 1, &scale, &shift, 1e-6, &mut want, 1);
            let mut got = vec![f32::NAN; n];
            f(n, &x, 1, &scale, &shift, 1e-6, &mut got, 1);
            let mag = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let tol = tolerance(&x, &scale, mag);
            for (j, (&a, &b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= tol,
                    "{name} n={n} case {k} y[{j}]: {a} vs {b}"
                );
            }
        }
        // A strided row inside a larger buffer; the elements between are left alone.
        let (sx, sy) = (3, 2);
        let x = values(n * sx, n as u64, 2.0, 0.5);
        let scale = values(n, n as u64 + 1, 0.3, 1.0);
        let shift = values(n, n as u64 + 2, 0.2, 0.0);
        let mut want = vec![7.0; n * sy];
        oracle(n, &x, sx, &scale, &shift, 1e-5, &mut want, sy);
        let mut got = vec![7.0; n * sy];
        f(n, &x, sx, &scale, &shift, 1e-5, &mut got, sy);
        assert_eq!(got, want, "{name} strided n={n}");
    }
}

#[test]
fn simd_layer_norm_matches_scalar() {
    for e in twins::simd("f32_norm", f32_norm::LAYER_NORM) {
        check(e.name, e.f);
    }
}

/// The scalar kernel itself against a direct f64 evaluation of the definition.
#[test]
fn scalar_layer_norm_matches_definition() {
    let n = 37;
    let x = values(n, 5, 2.0, 10.0);
    let scale = values(n, 6, 0.3, 1.0);
    let shift = values(n, 7, 0.2, 0.0);
    let mut y = vec![0.0; n];
    scalar::layer_norm_strided(n, &x, 1, &scale, &shift, 1e-5, &mut y, 1);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    for j in 0..n {
        let want = (x[j] as f64 - mean) / (var + 1e-5).sqrt() * scale[j] as f64 + shift[j] as f64;
        assert!(
            (y[j] as f64 - want).abs() < 1e-4,
            "y[{j}] {} vs {want}",
            y[j]
        );
    }
}
