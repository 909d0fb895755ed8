//! The AVX2, AVX-512 and NEON int8 depthwise kernels (fast and generic paths) against the scalar
//! kernel, byte for byte: channel counts 0, 1, block, block+1, 3*block+5 (for both the
//! 32-channel and the 64-channel block) and random ones,
//! 3x3 / 5x5 / 1x1 / 3x1 / 7x7 kernels, strides 1 and 2, dilation 2, asymmetric padding,
//! batch 2, images smaller than the kernel, every tile width of the tiled path, random
//! inputs and zero points, extreme weights, narrow clamps, scales that round exact .5 ties,
//! and untouched bytes after the output. Kernels this CPU cannot run are skipped with a
//! message. One hand-computed case checks the scalar kernel itself. The kernels are those of
//! the `qs8_dwconv` registry.

mod twins;

use ferrolite_runtime::kernels::qs8_dwconv::{
    self, pack_weights, simd_exact, ConvGeom, QDwArgs, QDwConvFn,
};
use ferrolite_runtime::kernels::requant::Requant;
use ferrolite_runtime::kernels::{for_isa, CpuFeatures, Isa};

/// Channels of one block of the AVX2 kernel and of the AVX-512 kernel's narrow block.
const BLOCK: usize = 32;
/// Channels of the AVX-512 kernel's wide block.
const WIDE: usize = 64;
/// Sentinel bytes after the output, to catch stray stores.
const GUARD: u8 = 0xA5;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// The SIMD kernels of the registry this CPU runs, generic-path test twins included (the
/// others are skipped with a message).
fn simd_kernels() -> Vec<(&'static str, QDwConvFn)> {
    twins::simd("qs8_dwconv", qs8_dwconv::DWCONV)
        .into_iter()
        .map(|e| (e.name, e.f))
        .collect()
}

/// Depthwise geometry from the input size, kernel, stride, dilation and padding
/// (top, left, bottom, right).
#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pad: (usize, usize, usize, usize),
) -> ConvGeom {
    let (pt, pl, pb, pr) = pad;
    let out = |size: usize, p0: usize, p1: usize, k: usize, s: usize, d: usize| {
        let ext = d * (k - 1) + 1;
        (size + p0 + p1).saturating_sub(ext) / s + usize::from(size + p0 + p1 >= ext)
    };
    ConvGeom {
        n,
        h,
        w,
        c,
        oh: out(h, pt, pb, k.0, s.0, d.0),
        ow: out(w, pl, pr, k.1, s.1, d.1),
        o: c,
        kh: k.0,
        kw: k.1,
        sh: s.0,
        sw: s.1,
        dh: d.0,
        dw: d.1,
        pt,
        pl,
        groups: c,
    }
}

/// Quantization parameters and tensors of one case.
struct Data {
    x: Vec<u8>,
    x_zp: i32,
    w: Vec<i8>,
    bias: Vec<i32>,
    scale: Vec<f32>,
    rq: Requant,
}

/// Random data for `g`, varied by `seed`: inputs, zero points, weights (with the extremes
/// -127, 127 and sometimes -128 planted), biases, per-channel scales (some of them powers of
/// two that make exact .5 ties) and clamps (full, narrow, or a ReLU6-like range).
fn data(g: &ConvGeom, seed: u64) -> Data {
    let mut r = Rng::new(seed);
    let taps = g.kh * g.kw;
    let x = (0..g.n * g.h * g.w * g.c)
        .map(|_| r.below(256) as u8)
        .collect();
    let x_zp = match seed % 4 {
        0 => 128,
        1 => 255,
        _ => r.range(1, 254) as i32,
    };
    // Small weights keep small accumulators, where the power-of-two scales hit ties.
    let small = seed.is_multiple_of(3);
    let mut oihw: Vec<i8> = (0..g.c * taps)
        .map(|_| {
            if small {
                r.range(-3, 3) as i8
            } else {
                r.range(-127, 127) as i8
            }
        })
        .collect();
    for v in oihw.iter_mut() {
        match r.below(16) {
            0 => *v = 127,
            1 => *v = -127,
            2 if seed.is_multiple_of(5) => *v = -128,
            _ => {}
        }
    }
    let bias = (0..g.c)
        .map(|_| match r.below(20) {
            0 => i32::MAX - r.below(1000) as i32,
            1 => i32::MIN + r.below(1000) as i32,
            _ => r.range(-20_000, 20_000) as i32,
        })
        .collect();
    let scale = (0..g.c)
        .map(|_| match r.below(4) {
            0 => 0.5,
            1 => 2f32.powi(-(r.below(10) as i32)),
            _ => (r.range(1, 1 << 20) as f32) / (1u64 << 28) as f32,
        })
        .collect();
    let out_zp = r.below(256) as i32;
    let rq = match r.below(3) {
        0 => Requant::new(out_zp, 0, 255),
        1 => {
            let lo = r.below(256) as u8;
            Requant::new(out_zp, lo, lo.saturating_add(r.below(12) as u8))
        }
        _ => Requant::new(out_zp, out_zp as u8, (out_zp + 100).min(255) as u8),
    };
    Data {
        x,
        x_zp,
        w: pack_weights(g, &oihw),
        bias,
        scale,
        rq,
    }
}

/// Run `f` into a fresh output followed by guard bytes, check the guards, return the output.
fn run(f: QDwConvFn, g: &ConvGeom, d: &Data) -> Vec<u8> {
    let len = g.n * g.oh * g.ow * g.c;
    let mut y = vec![GUARD; len + 37];
    f(QDwArgs {
        g,
        x: &d.x,
        x_zero_point: d.x_zp,
        w: &d.w,
        bias: &d.bias,
        scale: &d.scale,
        rq: d.rq,
        y: &mut y[..len],
    });
    assert!(y[len..].iter().all(|&b| b == GUARD), "stray store after y");
    y.truncate(len);
    y
}

/// Every SIMD kernel gives the scalar kernel's bytes on `g` with `d`.
fn check_data(kernels: &[(&str, QDwConvFn)], g: &ConvGeom, d: &Data, what: &str) {
    let want = run(twins::scalar("qs8_dwconv", qs8_dwconv::DWCONV).f, g, d);
    for &(name, f) in kernels {
        let got = run(f, g, d);
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            let (pix, ch) = (i / g.c.max(1), i % g.c.max(1));
            panic!(
                "{name} {what} {g:?} x_zp={} {:?}: y[{i}] (pixel {pix}, channel {ch}) = {}, \
                 scalar {}",
                d.x_zp, d.rq, got[i], want[i]
            );
        }
    }
}

fn check(kernels: &[(&str, QDwConvFn)], g: &ConvGeom, seed: u64) {
    let d = data(g, seed);
    assert!(simd_exact(&QDwArgs {
        g,
        x: &d.x,
        x_zero_point: d.x_zp,
        w: &d.w,
        bias: &d.bias,
        scale: &d.scale,
        rq: d.rq,
        y: &mut [],
    }));
    check_data(kernels, g, &d, &format!("seed={seed}"));
}

/// A 3x3 image of 2 channels, 3x3 kernel, stride 1, padding 1, worked out by hand.
#[test]
fn scalar_hand_computed() {
    let g = geom(1, 2, 3, 3, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1));
    // Input zero point 10. Channel 0 minus the zero point is [[1,2,3],[4,5,6],[7,8,9]];
    // channel 1 is 10 at the top-left, -10 at the bottom-right and 0 elsewhere.
    let c0 = [11u8, 12, 13, 14, 15, 16, 17, 18, 19];
    let c1 = [20u8, 10, 10, 10, 10, 10, 10, 10, 0];
    let x: Vec<u8> = c0.iter().zip(&c1).flat_map(|(&a, &b)| [a, b]).collect();
    // Channel 0: all ones (the sum of the valid neighbourhood). Channel 1: w[ky][kx] =
    // 3*ky + kx + 1.
    let oihw: Vec<i8> = [1i8; 9].into_iter().chain(1..=9).collect();
    // Scale 1 (channel 0) and 0.5 (channel 1, odd sums: ties); output zero point 5, clamp
    // [16, 255], so lo = 11.
    let rq = Requant::new(5, 16, 255);
    let mut y = [0u8; 18];
    qs8_dwconv::scalar::qdwconv_generic(QDwArgs {
        g: &g,
        x: &x,
        x_zero_point: 10,
        w: &pack_weights(&g, &oihw),
        bias: &[0, 101],
        scale: &[1.0, 0.5],
        rq,
        y: &mut y,
    });
    // Channel 0, neighbourhood sums + 5:
    //   12 21 16     17 26 21
    //   27 45 33  -> 32 50 38
    //   24 39 28     29 44 33
    // Channel 1: 101 + 10*w[1-oy][1-ox] (top-left pixel) - 10*w[3-oy][3-ox] (bottom-right):
    //   151 141 101      75.5 70.5 50.5     76 70 50     81 75 55
    //   121  21  21  ->  60.5 10.5 10.5 ->  60 10 10 ->  65 16 16  (10 + 5 < 16: clamped)
    //   101  41  51      50.5 20.5 25.5     50 20 26     55 25 31
    let want = [
        17, 81, 26, 75, 21, 55, //
        32, 65, 50, 16, 38, 16, //
        29, 55, 44, 25, 33, 31,
    ];
    assert_eq!(y, want);
    // The SIMD kernels (2 channels: the channel-padded path) agree.
    for (name, f) in simd_kernels() {
        let mut ys = [0u8; 18];
        f(QDwArgs {
            g: &g,
            x: &x,
            x_zero_point: 10,
            w: &pack_weights(&g, &oihw),
            bias: &[0, 101],
            scale: &[1.0, 0.5],
            rq,
            y: &mut ys,
        });
        assert_eq!(ys, want, "{name}");
    }
}

/// Kernel shapes: (kernel, stride, dilation, padding top/left/bottom/right).
type Shape = (
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize, usize, usize),
);

const SHAPES: [Shape; 14] = [
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ((3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    ((3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),
    ((5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
    ((5, 5), (2, 2), (1, 1), (1, 1, 2, 2)),
    ((1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    ((3, 1), (1, 1), (1, 1), (1, 0, 1, 0)),
    ((7, 7), (1, 1), (1, 1), (3, 3, 3, 3)),
    ((3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
    ((3, 3), (1, 1), (2, 1), (2, 1, 0, 1)),
    ((3, 3), (1, 2), (1, 1), (2, 0, 1, 3)),
    ((5, 5), (2, 1), (1, 1), (0, 3, 4, 1)),
    ((3, 3), (1, 1), (1, 1), (0, 2, 2, 0)),
    ((5, 5), (2, 2), (2, 2), (4, 4, 4, 4)),
];

#[test]
fn simd_matches_scalar_channels_and_kernels() {
    let kernels = simd_kernels();
    let mut seed = 1;
    let channels = [
        0,
        1,
        2,
        16,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        48,
        WIDE,
        WIDE + 1,
        3 * BLOCK + 5,
        127,
        128,
        144,
        3 * WIDE + 5,
        240,
    ];
    for &c in &channels {
        for (si, &(k, s, d, pad)) in SHAPES.iter().enumerate() {
            let (h, w) = (5 + si % 5, 6 + (si * 3) % 7);
            let g = geom(1 + si % 2, c, h, w, k, s, d, pad);
            check(&kernels, &g, seed);
            seed += 1;
        }
    }
}

/// The tiled path's tile sequence: output widths 1 to 9 and around multiples of every
/// tile width in use (2, 4, 6, 7, 8 pixels), odd and even output heights (the two-row
/// tiles leave a last single row), symmetric and TF "same" padding.
#[test]
fn simd_matches_scalar_tile_widths() {
    let kernels = simd_kernels();
    let widths: [usize; 15] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 17, 25];
    let configs = [
        (3, 1, (1, 1, 1, 1)),
        (3, 1, (0, 0, 1, 1)),
        (3, 2, (1, 1, 1, 1)),
        (3, 2, (0, 0, 1, 1)),
        (5, 1, (2, 2, 2, 2)),
        (5, 1, (1, 2, 3, 2)),
        (5, 2, (2, 2, 2, 2)),
        (5, 2, (1, 1, 2, 2)),
    ];
    let mut seed = 10_000;
    for (ci, &(k, s, pad)) in configs.iter().enumerate() {
        let (_, pl, _, pr) = pad;
        for (wi, &ow) in widths.iter().enumerate() {
            // The widest input giving `ow` outputs.
            let w = ((ow - 1) * s + k).saturating_sub(pl + pr).max(1) + (s - 1);
            let h = 3 + (ci + wi) % 5;
            let c = [BLOCK, 40, 7, WIDE, 80][(ci + wi) % 5];
            let g = geom(1 + wi % 2, c, h, w, (k, k), (s, s), (1, 1), pad);
            assert_eq!(g.ow, ow);
            check(&kernels, &g, seed);
            seed += 1;
        }
    }
}

/// Images large enough for the tiled path to pair output rows (at least 100 output pixels
/// in the AVX-512 kernel), odd output heights (a last single row), every tiled geometry,
/// channel counts around both block widths.
#[test]
fn simd_matches_scalar_paired_rows() {
    let kernels = simd_kernels();
    let mut seed = 40_000;
    let configs = [
        (3, 1, (1, 1, 1, 1)),
        (3, 1, (0, 0, 1, 1)),
        (5, 1, (2, 2, 2, 2)),
        (5, 1, (0, 1, 3, 2)),
        (3, 2, (1, 1, 1, 1)),
        (5, 2, (1, 2, 2, 1)),
    ];
    for (ci, &(k, s, pad)) in configs.iter().enumerate() {
        for (i, &(h, w)) in [(16, 16), (17, 23), (33, 19)].iter().enumerate() {
            let c = [BLOCK, WIDE + 16, 100, 2 * WIDE + 40][(ci + i) % 4];
            let g = geom(1 + i % 2, c, h, w, (k, k), (s, s), (1, 1), pad);
            check(&kernels, &g, seed);
            seed += 1;
        }
    }
}

/// Images smaller than the kernel, a single pixel, empty images and an empty batch.
#[test]
fn simd_matches_scalar_tiny_images() {
    let kernels = simd_kernels();
    let cases = [
        geom(1, 33, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        geom(2, 40, 2, 2, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
        geom(1, 32, 2, 3, (5, 5), (2, 2), (1, 1), (2, 2, 2, 2)),
        geom(2, 5, 1, 4, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
        geom(1, 64, 3, 3, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
        geom(1, 35, 2, 2, (7, 7), (1, 1), (1, 1), (3, 3, 3, 3)),
        geom(1, 32, 1, 2, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
        geom(1, 16, 0, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        geom(0, 32, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ];
    for (i, g) in cases.iter().enumerate() {
        check(&kernels, g, 20_000 + i as u64);
    }
}

#[test]
fn simd_matches_scalar_random_geometries() {
    let kernels = simd_kernels();
    let mut r = Rng::new(77);
    for i in 0..80 {
        let k = (1 + r.below(5), 1 + r.below(5));
        let k = if i % 4 == 0 { (k.0, k.0) } else { k };
        let s = (1 + r.below(2), 1 + r.below(2));
        let d = if r.below(4) == 0 {
            (1 + r.below(2), 1 + r.below(2))
        } else {
            (1, 1)
        };
        let pad = (r.below(3), r.below(3), r.below(3), r.below(3));
        let g = geom(
            1 + r.below(2),
            1 + r.below(120),
            1 + r.below(14),
            1 + r.below(14),
            k,
            s,
            d,
            pad,
        );
        check(&kernels, &g, 30_000 + i);
    }
}

/// Arguments outside `simd_exact` (zero points out of range, NaN clamp bounds, bounds that
/// overflow the byte range) go to the scalar kernel, so the bytes still match.
#[test]
fn simd_falls_back_outside_simd_exact() {
    let kernels = simd_kernels();
    let g = geom(1, 40, 6, 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1));
    let base = data(&g, 5);
    let odd = [
        (300, Requant::new(3, 0, 255)),
        (-4, Requant::new(3, 0, 255)),
        (7, Requant::new(400, 0, 255)),
        (
            7,
            Requant {
                zero_point: 3,
                lo: f32::NAN,
                hi: 100.0,
            },
        ),
        (
            7,
            Requant {
                zero_point: 3,
                lo: -1000.0,
                hi: 1000.0,
            },
        ),
    ];
    for (x_zp, rq) in odd {
        let d = Data {
            x_zp,
            rq,
            x: base.x.clone(),
            w: base.w.clone(),
            bias: base.bias.clone(),
            scale: base.scale.clone(),
        };
        check_data(&kernels, &g, &d, "outside simd_exact");
    }
}

/// The SIMD tiers install these kernels in the `qs8_dwconv` slot.
#[test]
fn qs8_dwconv_slots_per_tier() {
    let cpu = CpuFeatures::detect();
    if cpu.supports(Isa::Avx2) {
        assert_eq!(
            for_isa(Isa::Avx2).qs8_dwconv.name,
            "qs8_dwconv::avx2::qdwconv_32c"
        );
    } else {
        eprintln!("SKIP avx2 slot: tier not supported");
    }
    if cpu.supports(Isa::Avx512) {
        let want = if cpu.avx512vnni {
            "qs8_dwconv::avx512::qdwconv_64c"
        } else {
            "qs8_dwconv::avx2::qdwconv_32c"
        };
        assert_eq!(for_isa(Isa::Avx512).qs8_dwconv.name, want);
    } else {
        eprintln!("SKIP avx512 slot: tier not supported");
    }
    if cfg!(target_arch = "aarch64") && cpu.supports(Isa::Neon) {
        assert_eq!(
            for_isa(Isa::Neon).qs8_dwconv.name,
            "qs8_dwconv::neon::qdwconv_8c"
        );
    }
    assert_eq!(
        for_isa(Isa::Scalar).qs8_dwconv.name,
        "qs8_dwconv::scalar::qdwconv_generic"
    );
}
