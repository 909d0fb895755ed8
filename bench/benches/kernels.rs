//! Kernel throughput on real MobileNet / EfficientNet layer shapes, for every kernel of the
//! `f32_gemm`, `qs8_gemm`, `f32_dwconv` and `f32_conv` registries this CPU can run (x86 or
//! ARM). Throughput is reported in FLOP (int8 kernels: OP; 2 per multiply-accumulate):
//! `cargo bench -p ferrolite-bench --bench kernels`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolite_runtime::kernels::f32_conv::{self, ConvArgs, ConvFn, ConvGeom};
use ferrolite_runtime::kernels::f32_dwconv;
use ferrolite_runtime::kernels::f32_gemm::{self, pack_b, GemmParams};
use ferrolite_runtime::kernels::qs8_gemm::{self, pack_b_transposed, QGemmParams, QOut};
use ferrolite_runtime::kernels::registry::Entry;
use ferrolite_runtime::kernels::requant::Requant;
use ferrolite_runtime::kernels::{Act, CpuFeatures};

/// Every kernel of `registry` this CPU can run (dispatched ones, kernels a tier does not
/// pick here, such as the 512-bit GEMM on Zen 4, and test twins), best first, scalar last.
fn runnable<F: Copy>(registry: &'static [Entry<F>]) -> Vec<&'static Entry<F>> {
    let cpu = CpuFeatures::detect();
    registry.iter().filter(|e| e.runs_on(&cpu)).collect()
}

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect()
}

/// (name, M pixels, K input channels, N output channels) of pointwise convolutions.
const GEMM_SHAPES: &[(&str, usize, usize, usize)] = &[
    ("mbv2_expand_56x56_24to144", 3136, 24, 144),
    ("mbv2_project_56x56_144to24", 3136, 144, 24),
    ("mbv2_expand_28x28_32to192", 784, 32, 192),
    ("mbv2_expand_14x14_64to384", 196, 64, 384),
    ("mbv2_project_14x14_384to64", 196, 384, 64),
    ("effl0_project_7x7_1152to192", 49, 1152, 192),
    ("classifier_1280to1000", 1, 1280, 1000),
];

/// (name, M pixels, K input channels, N output channels) of int8 pointwise convolutions and
/// the classifier: MobileNetV2 and EfficientNet-Lite0 expand / project layers.
const QGEMM_SHAPES: &[(&str, usize, usize, usize)] = &[
    ("mbv2_expand_56x56_24to144", 3136, 24, 144),
    ("mbv2_project_56x56_144to24", 3136, 144, 24),
    ("mbv2_project_28x28_192to32", 784, 192, 32),
    ("mbv2_expand_28x28_32to192", 784, 32, 192),
    ("mbv2_project_14x14_384to64", 196, 384, 64),
    ("mbv2_expand_14x14_64to384", 196, 64, 384),
    ("mbv2_project_7x7_960to160", 49, 960, 160),
    ("effl0_project_7x7_1152to192", 49, 1152, 192),
    ("classifier_1280to1000", 1, 1280, 1000),
];

/// (name, channels, input size, kernel, stride) of depthwise convolutions.
const DW_SHAPES: &[(&str, usize, usize, usize, usize)] = &[
    ("dw3x3s1_112x112x32", 32, 112, 3, 1),
    ("dw3x3s2_112x112x96", 96, 112, 3, 2),
    ("dw3x3s1_28x28x192", 192, 28, 3, 1),
    ("dw5x5s2_28x28x240", 240, 28, 5, 2),
    ("dw5x5s1_14x14x480", 480, 14, 5, 1),
    ("dw5x5s1_7x7x1152", 1152, 7, 5, 1),
];

/// (name, in channels, out channels, input size, kernel, stride) of dense convolutions.
const CONV_SHAPES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("stem3x3s2_224x224_3to32", 3, 32, 224, 3, 2),
    ("stem3x3s2_224x224_3to16", 3, 16, 224, 3, 2),
    ("dense3x3s1_28x28_32to32", 32, 32, 28, 3, 1),
    ("stem7x7s2_224x224_3to64", 3, 64, 224, 7, 2),
    ("dense3x3s1_56x56_64to64", 64, 64, 56, 3, 1),
    ("dense3x3s1_14x14_256to256", 256, 256, 14, 3, 1),
    ("dense3x3s1_7x7_512to512", 512, 512, 7, 3, 1),
];

fn window_geom(c: usize, o: usize, hw: usize, k: usize, s: usize, groups: usize) -> ConvGeom {
    let p = k / 2;
    let out = (hw + 2 * p - k) / s + 1;
    ConvGeom {
        n: 1,
        h: hw,
        w: hw,
        c,
        oh: out,
        ow: out,
        o,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        dh: 1,
        dw: 1,
        pt: p,
        pl: p,
        groups,
    }
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("f32_gemm");
    for &(name, m, k, n) in GEMM_SHAPES {
        let a = values(m * k);
        let b = pack_b(k, n, &values(k * n));
        let bias = values(n);
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for f in runnable(f32_gemm::GEMM) {
            group.bench_function(BenchmarkId::new(f.name, name), |bench| {
                bench.iter(|| {
                    (f.f)(GemmParams {
                        m,
                        n,
                        k,
                        a: &a,
                        lda: k,
                        b: &b,
                        bias: Some(&bias),
                        residual: None,
                        c: (&mut out[..]).into(),
                        ldc: n,
                        act: Act::Clip { min: 0.0, max: 6.0 },
                    })
                })
            });
        }
    }
    group.finish();
}

fn qgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("qs8_gemm");
    for &(name, m, k, n) in QGEMM_SHAPES {
        let a: Vec<u8> = (0..m * k).map(|i| (i * 37 % 251) as u8).collect();
        let w: Vec<i8> = (0..n * k).map(|i| (i * 53 % 255) as i8).collect();
        let b = pack_b_transposed(k, n, &w);
        let bias: Vec<i32> = (0..n).map(|j| (j as i32 * 97) % 2001 - 1000).collect();
        let scale: Vec<f32> = (0..n).map(|j| 1e-4 * (1.0 + (j % 7) as f32)).collect();
        let mut out = vec![0u8; m * n];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for f in runnable(qs8_gemm::GEMM) {
            group.bench_function(BenchmarkId::new(f.name, name), |bench| {
                bench.iter(|| {
                    (f.f)(QGemmParams {
                        m,
                        n,
                        k,
                        a: &a,
                        lda: k,
                        b: &b,
                        bias: &bias,
                        out: QOut::U8 {
                            c: (&mut out[..]).into(),
                            ldc: n,
                            scale: &scale,
                            // ReLU6-like bounds, as the fused expand layers use.
                            rq: Requant::new(0, 0, 170),
                            residual: None,
                        },
                    })
                })
            });
        }
    }
    group.finish();
}

/// Benchmarks every runnable kernel of `registry` (depthwise and dense convolutions share
/// the `ConvArgs` signature) on `shapes`.
fn window(
    c: &mut Criterion,
    family: &str,
    shapes: Vec<(&str, ConvGeom)>,
    registry: &'static [Entry<ConvFn>],
) {
    let mut group = c.benchmark_group(family);
    for (name, g) in shapes {
        let x = values(g.h * g.w * g.c);
        let w = values(g.kh * g.kw * g.c / g.groups * g.o);
        let bias = values(g.o);
        let mut y = vec![0.0; g.oh * g.ow * g.o];
        let macs = g.oh * g.ow * g.o * g.kh * g.kw * (g.c / g.groups);
        group.throughput(Throughput::Elements(2 * macs as u64));
        for e in runnable(registry) {
            group.bench_function(BenchmarkId::new(e.name, name), |bench| {
                bench.iter(|| {
                    (e.f)(ConvArgs {
                        g: &g,
                        x: &x,
                        w: &w,
                        bias: &bias,
                        residual: None,
                        y: &mut y,
                        act: Act::Relu,
                    })
                })
            });
        }
    }
    group.finish();
}

fn dwconv(c: &mut Criterion) {
    let shapes = DW_SHAPES
        .iter()
        .map(|&(name, ch, hw, k, s)| (name, window_geom(ch, ch, hw, k, s, ch)))
        .collect();
    window(c, "f32_dwconv", shapes, f32_dwconv::DWCONV);
}

fn conv(c: &mut Criterion) {
    let shapes = CONV_SHAPES
        .iter()
        .map(|&(name, ci, co, hw, k, s)| (name, window_geom(ci, co, hw, k, s, 1)))
        .collect();
    window(c, "f32_conv", shapes, f32_conv::CONV);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = gemm, qgemm, dwconv, conv
}
criterion_main!(benches);
