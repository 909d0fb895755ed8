//! Kernel throughput on real MobileNet / EfficientNet layer shapes, for every kernel tier
//! this CPU can run (the slots of `kernels::for_isa`). Throughput is reported in FLOP (int8
//! kernels: OP; 2 per multiply-accumulate): `cargo bench -p ferrolite-bench --bench kernels`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolite_runtime::kernels::f32_conv::{ConvArgs, ConvGeom};
use ferrolite_runtime::kernels::f32_gemm::{self, pack_b, GemmFn, GemmParams};
use ferrolite_runtime::kernels::qs8_gemm::{self, pack_b_transposed, QGemmFn, QGemmParams, QOut};
use ferrolite_runtime::kernels::requant::Requant;
use ferrolite_runtime::kernels::{cpu, for_isa, Act, Isa, Kernels, Slot};

fn tiers() -> Vec<Kernels> {
    let features = cpu::CpuFeatures::detect();
    [Isa::Scalar, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&isa| features.supports(isa))
        .map(for_isa)
        .collect()
}

/// Every GEMM kernel this CPU can run, once each: a tier may install another tier's kernel
/// (AVX-512 on Zen 4 keeps the 256-bit tiles), and the 512-bit one is still measured.
fn gemm_kernels() -> Vec<Slot<GemmFn>> {
    let mut v: Vec<Slot<GemmFn>> = Vec::new();
    for k in tiers() {
        if !v.iter().any(|s| s.name == k.f32_gemm.name) {
            v.push(k.f32_gemm);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if cpu::CpuFeatures::detect().supports(Isa::Avx512)
        && !v.iter().any(|s| s.name.contains("avx512"))
    {
        v.push(Slot {
            f: f32_gemm::avx512::gemm_8x32,
            name: "f32_gemm::avx512::gemm_8x32",
        });
    }
    v
}

/// Every int8 GEMM kernel this CPU can run, once each: the scalar reference, the AVX2 one
/// and the VNNI one (the AVX-512 tier installs the AVX2 kernel on CPUs without VNNI).
fn qgemm_kernels() -> Vec<Slot<QGemmFn>> {
    let mut v: Vec<Slot<QGemmFn>> = Vec::new();
    for k in tiers() {
        if !v.iter().any(|s| s.name == k.qs8_gemm.name) {
            v.push(k.qs8_gemm);
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !v.iter().any(|s| s.name.contains("avx2")) {
        v.push(Slot {
            f: qs8_gemm::avx2::qgemm_6x8,
            name: "qs8_gemm::avx2::qgemm_6x8",
        });
    }
    v
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
        for f in gemm_kernels() {
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
        for f in qgemm_kernels() {
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

/// Selects a window kernel (function and name) from a kernel table.
type PickWindow = fn(&Kernels) -> (fn(ConvArgs<'_>), &'static str);

fn window(c: &mut Criterion, family: &str, shapes: Vec<(&str, ConvGeom)>, pick: PickWindow) {
    let mut group = c.benchmark_group(family);
    for (name, g) in shapes {
        let x = values(g.h * g.w * g.c);
        let w = values(g.kh * g.kw * g.c / g.groups * g.o);
        let bias = values(g.o);
        let mut y = vec![0.0; g.oh * g.ow * g.o];
        let macs = g.oh * g.ow * g.o * g.kh * g.kw * (g.c / g.groups);
        group.throughput(Throughput::Elements(2 * macs as u64));
        let mut seen = Vec::new();
        for kernels in tiers() {
            let (f, kname) = pick(&kernels);
            if seen.contains(&kname) {
                continue;
            }
            seen.push(kname);
            group.bench_function(BenchmarkId::new(kname, name), |bench| {
                bench.iter(|| {
                    f(ConvArgs {
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
    window(c, "f32_dwconv", shapes, |k| {
        (k.f32_dwconv.f, k.f32_dwconv.name)
    });
}

fn conv(c: &mut Criterion) {
    let shapes = CONV_SHAPES
        .iter()
        .map(|&(name, ci, co, hw, k, s)| (name, window_geom(ci, co, hw, k, s, 1)))
        .collect();
    window(c, "f32_conv", shapes, |k| (k.f32_conv.f, k.f32_conv.name));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = gemm, qgemm, dwconv, conv
}
criterion_main!(benches);
