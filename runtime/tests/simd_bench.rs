//! GFLOP/s of the GEMM and depthwise kernels of the registries (every one this CPU runs) on
//! MobileNet-like shapes. A measurement, not a test: run with
//! `cargo test --release -p ferrolite-runtime --test simd_bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use ferrolite_runtime::kernels::f32_dwconv::{self, pack_weights, ConvArgs, ConvGeom, DwConvFn};
use ferrolite_runtime::kernels::f32_gemm::{self, pack_b, GemmFn, GemmParams};
use ferrolite_runtime::kernels::registry::Entry;
use ferrolite_runtime::kernels::{Act, CpuFeatures};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// Best time of `f` over repeated runs lasting about `budget` in total.
fn best_time(mut f: impl FnMut(), budget: Duration) -> Duration {
    f();
    let start = Instant::now();
    let mut best = Duration::MAX;
    while start.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

/// Every GEMM of the registry this CPU runs, scalar included.
fn gemm_kernels() -> Vec<(&'static str, GemmFn)> {
    runnable(f32_gemm::GEMM)
}

/// Every depthwise kernel of the registry this CPU runs (generic-path twins included).
fn dw_kernels() -> Vec<(&'static str, DwConvFn)> {
    runnable(f32_dwconv::DWCONV)
}

/// The entries of `registry` this CPU runs, as (name, function).
fn runnable<F: Copy>(registry: &'static [Entry<F>]) -> Vec<(&'static str, F)> {
    let cpu = CpuFeatures::detect();
    registry
        .iter()
        .filter(|e| e.runs_on(&cpu))
        .map(|e| (e.name, e.f))
        .collect()
}

#[test]
#[ignore = "benchmark; run in release with --ignored --nocapture"]
fn simd_gflops() {
    let budget = Duration::from_millis(400);
    for (m, k, n) in [
        (3136, 96, 24),
        (784, 144, 32),
        (3136, 24, 144),
        (196, 384, 64),
        (49, 960, 160),
        (1, 1280, 1000),
    ] {
        let a = values(m * k);
        let b = pack_b(k, n, &values(k * n));
        let bias = values(n);
        let mut c = vec![0.0; m * n];
        for (name, f) in gemm_kernels() {
            let t = best_time(
                || {
                    f(GemmParams {
                        m,
                        n,
                        k,
                        a: &a,
                        lda: k,
                        b: &b,
                        bias: Some(&bias),
                        residual: None,
                        c: (&mut c[..]).into(),
                        ldc: n,
                        act: Act::Clip { min: 0.0, max: 6.0 },
                    })
                },
                budget,
            );
            let gflops = 2.0 * (m * n * k) as f64 / t.as_secs_f64() / 1e9;
            println!(
                "gemm M={m:4} K={k:4} N={n:4}  {name:28} {:9.1} us {gflops:7.1} GFLOP/s",
                t.as_secs_f64() * 1e6
            );
        }
    }
    for (hw, c, k, s) in [
        (56, 144, 3, 1),
        (28, 192, 3, 2),
        (14, 480, 5, 1),
        (112, 32, 3, 1),
    ] {
        let p = k / 2;
        let o = (hw + 2 * p - k) / s + 1;
        let g = ConvGeom {
            n: 1,
            h: hw,
            w: hw,
            c,
            oh: o,
            ow: o,
            o: c,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: 1,
            dw: 1,
            pt: p,
            pl: p,
            groups: c,
        };
        let x = values(hw * hw * c);
        let w = pack_weights(&g, &values(c * k * k));
        let bias = values(c);
        let mut y = vec![0.0; o * o * c];
        for (name, f) in dw_kernels() {
            let t = best_time(
                || {
                    f(ConvArgs {
                        g: &g,
                        x: &x,
                        w: &w,
                        bias: &bias,
                        residual: None,
                        y: &mut y,
                        act: Act::Clip { min: 0.0, max: 6.0 },
                    })
                },
                budget,
            );
            let gflops = 2.0 * (o * o * c * k * k) as f64 / t.as_secs_f64() / 1e9;
            println!(
                "dwconv {hw}x{hw}x{c} {k}x{k} s{s}  {name:28} {:9.1} us {gflops:7.1} GFLOP/s",
                t.as_secs_f64() * 1e6
            );
        }
    }
}
