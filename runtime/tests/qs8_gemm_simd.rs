//! The AVX2, AVX-512 VNNI and NEON (widening and `sdot`) int8 GEMM kernels against the scalar `qgemm_1x16`: outputs must
//! be byte-identical (u8 mode) and bit-identical (f32 mode) for sizes 0, 1, tile, tile+1,
//! 3*tile+5 and random shapes, strided rows, with and without residual, narrow clamp bounds,
//! rounding ties, extreme operands (all-255 activations against all +-127 / -128 weights,
//! int32 wrap-around), untouched padding around the outputs and operands ending right before
//! an unmapped page. Kernels this CPU cannot run are skipped with a message. A hand-computed
//! product pins the scalar reference (and the SIMD kernels) down, zero-point folding included.
//! The kernels are those of the `qs8_gemm` registry.

mod twins;

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use ferrolite_runtime::kernels::qs8_gemm::{
    self, fold_zero_point, pack_b_transposed, QGemmFn, QGemmParams, QOut, QResidual,
};
use ferrolite_runtime::kernels::requant::Requant;
use ferrolite_runtime::kernels::{for_isa, CpuFeatures, Isa};
use nix::sys::mman::{mmap_anonymous, mprotect, munmap, MapFlags, ProtFlags};

/// Byte written around and between the output rows (must survive).
const GUARD: u8 = 0xA5;
/// Extra guard bytes after the last output row.
const SLACK: usize = 19;

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
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Length of a strided `rows x cols` matrix that ends exactly after its last element.
fn strided_len(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// What the kernel writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Requantized bytes with this output rule, optionally with a residual.
    U8 { rq: Requant, residual: bool },
    /// Dequantized floats.
    F32,
}

/// Inputs of one GEMM call (A, B, bias, scales, residual), shapes and strides.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    a: Vec<u8>,
    /// `W[n][k]`, unpacked.
    w: Vec<i8>,
    packed: Vec<i8>,
    bias: Vec<i32>,
    scale: Vec<f32>,
    res: Vec<u8>,
    res_zero_point: i32,
    res_scale: f32,
}

/// How the operands of a random case are drawn.
#[derive(Clone, Copy)]
enum Fill {
    /// Random bytes, weights in [-127, 127], scales spreading the outputs over the byte range.
    Random,
    /// Random bytes, weights anywhere in [-128, 127].
    FullRange,
    /// Small operands and power-of-two scales: many outputs land exactly on .5.
    Ties,
}

fn make_case(m: usize, n: usize, k: usize, lda: usize, ldc: usize, fill: Fill, seed: u64) -> Case {
    let mut r = Rng::new(seed);
    let (a, w): (Vec<u8>, Vec<i8>) = match fill {
        Fill::Random => (
            (0..strided_len(m, k, lda))
                .map(|_| r.next() as u8)
                .collect(),
            (0..n * k).map(|_| r.range(-127, 127) as i8).collect(),
        ),
        Fill::FullRange => (
            (0..strided_len(m, k, lda))
                .map(|_| r.next() as u8)
                .collect(),
            (0..n * k).map(|_| r.next() as i8).collect(),
        ),
        Fill::Ties => (
            (0..strided_len(m, k, lda))
                .map(|_| r.range(0, 5) as u8)
                .collect(),
            (0..n * k).map(|_| r.range(-3, 3) as i8).collect(),
        ),
    };
    // Accumulators of random operands spread as ~10700 * sqrt(k): scale them to about
    // +-80 so the clamp bounds and every output byte are exercised.
    let spread = 10_700.0 * (k.max(1) as f32).sqrt();
    let (bias, scale, res_scale) = match fill {
        Fill::Ties => (
            (0..n).map(|_| r.range(-20, 20) as i32).collect(),
            (0..n)
                .map(|_| [0.5, 0.25, 1.5, 0.125][r.below(4)])
                .collect(),
            0.5,
        ),
        _ => (
            (0..n)
                .map(|_| r.range(-(spread as i64), spread as i64) as i32)
                .collect(),
            (0..n)
                .map(|_| 80.0 / spread * (0.25 + 1.5 * r.unit()))
                .collect(),
            0.05 + r.unit(),
        ),
    };
    Case {
        m,
        n,
        k,
        lda,
        ldc,
        res: (0..strided_len(m, n, ldc))
            .map(|_| r.next() as u8)
            .collect(),
        res_zero_point: r.range(0, 255) as i32,
        res_scale,
        packed: pack_b_transposed(k, n, &w),
        a,
        w,
        bias,
        scale,
    }
}

/// Output buffers of one run: the bytes or floats, `SLACK` guard elements after the region.
#[derive(Debug, PartialEq)]
enum Output {
    U8(Vec<u8>),
    F32(Vec<u32>),
}

fn run(f: QGemmFn, c: &Case, mode: Mode) -> Output {
    let len = strided_len(c.m, c.n, c.ldc);
    match mode {
        Mode::U8 { rq, residual } => {
            let mut out = vec![GUARD; len + SLACK];
            f(QGemmParams {
                m: c.m,
                n: c.n,
                k: c.k,
                a: &c.a,
                lda: c.lda,
                b: &c.packed,
                bias: &c.bias,
                out: QOut::U8 {
                    c: (&mut out[..len]).into(),
                    ldc: c.ldc,
                    scale: &c.scale,
                    rq,
                    residual: residual.then(|| QResidual {
                        r: &c.res,
                        zero_point: c.res_zero_point,
                        scale: c.res_scale,
                    }),
                },
            });
            Output::U8(out)
        }
        Mode::F32 => {
            let mut out = vec![f32::from_bits(0x7FC0_0A5A); len + SLACK];
            f(QGemmParams {
                m: c.m,
                n: c.n,
                k: c.k,
                a: &c.a,
                lda: c.lda,
                b: &c.packed,
                bias: &c.bias,
                out: QOut::F32 {
                    c: (&mut out[..len]).into(),
                    ldc: c.ldc,
                    scale: &c.scale,
                },
            });
            Output::F32(out.iter().map(|v| v.to_bits()).collect())
        }
    }
}

/// The output modes every shape runs in: plain bytes, bytes with a residual, a ReLU6-like
/// narrow clamp (with residual), and floats. The zero point varies with the seed.
fn modes(seed: u64) -> Vec<Mode> {
    let zp = (seed * 37 % 256) as i32;
    vec![
        Mode::U8 {
            rq: Requant::new(zp, 0, 255),
            residual: false,
        },
        Mode::U8 {
            rq: Requant::new(zp, 0, 255),
            residual: true,
        },
        Mode::U8 {
            rq: Requant::new(zp.min(200), zp.min(200) as u8, (zp.min(200) + 40) as u8),
            residual: true,
        },
        Mode::F32,
    ]
}

/// `f` against the scalar kernel, byte for byte, in `modes`; the scalar output is checked to
/// leave the guard bytes alone, so equality also proves the SIMD kernel does.
fn check(name: &str, f: QGemmFn, c: &Case, modes: &[Mode]) {
    for &mode in modes {
        let want = run(scalar(), c, mode);
        let got = run(f, c, mode);
        let ctx = format!(
            "{name} m={} n={} k={} lda={} ldc={} {mode:?}",
            c.m, c.n, c.k, c.lda, c.ldc
        );
        if let Output::U8(w) = &want {
            for (idx, &v) in w.iter().enumerate() {
                let inside = idx < strided_len(c.m, c.n, c.ldc) && idx % c.ldc.max(1) < c.n;
                if !inside {
                    assert_eq!(v, GUARD, "{ctx}: scalar stray store at C[{idx}]");
                }
            }
        }
        if got != want {
            let first = match (&got, &want) {
                (Output::U8(g), Output::U8(w)) => g.iter().zip(w).position(|(a, b)| a != b),
                (Output::F32(g), Output::F32(w)) => g.iter().zip(w).position(|(a, b)| a != b),
                _ => None,
            }
            .unwrap();
            let (g, w) = match (&got, &want) {
                (Output::U8(g), Output::U8(w)) => (g[first] as u64, w[first] as u64),
                (Output::F32(g), Output::F32(w)) => (g[first] as u64, w[first] as u64),
                _ => unreachable!(),
            };
            panic!(
                "{ctx}: C[{}][{}] (index {first}) = {g:#x}, scalar {w:#x}",
                first / c.ldc.max(1),
                first % c.ldc.max(1)
            );
        }
    }
}

/// A SIMD kernel under test: name, function, register tile rows and columns.
struct Kernel {
    name: &'static str,
    f: QGemmFn,
    mr: usize,
    nt: usize,
}

/// The SIMD kernels of the registry this CPU runs, with their tiles (the others are skipped
/// with a message).
fn kernels() -> Vec<Kernel> {
    twins::simd("qs8_gemm", qs8_gemm::GEMM)
        .into_iter()
        .map(|e| {
            let (mr, nt) = twins::tile(e);
            Kernel {
                name: e.name,
                f: e.f,
                mr,
                nt,
            }
        })
        .collect()
}

/// The scalar kernel of the registry: the oracle every SIMD kernel is compared with.
fn scalar() -> QGemmFn {
    twins::scalar("qs8_gemm", qs8_gemm::GEMM).f
}

/// Sizes 0, 1, tile, tile+1, 3*tile+5 for m, n and k (k's tile is a 4-byte group), plus the
/// column counts around the 8-column half panels and 16-column panels.
#[test]
fn simd_qgemm_edge_sizes_match_scalar() {
    for kn in kernels() {
        let ms = [0, 1, kn.mr, kn.mr + 1, 3 * kn.mr + 5];
        let mut ns = vec![
            0,
            1,
            7,
            8,
            9,
            16,
            17,
            24,
            25,
            40,
            kn.nt,
            kn.nt + 1,
            3 * kn.nt + 5,
        ];
        ns.sort_unstable();
        ns.dedup();
        let ks = [0, 1, 3, 4, 5, 17, 64, 67];
        let mut seed = 1;
        for &m in &ms {
            for &n in &ns {
                for &k in &ks {
                    let fill = if seed % 3 == 0 {
                        Fill::FullRange
                    } else {
                        Fill::Random
                    };
                    let c = make_case(m, n, k, k, n, fill, seed);
                    check(kn.name, kn.f, &c, &modes(seed));
                    seed += 1;
                }
            }
        }
    }
}

/// Single rows (batch-1 fully connected layers take their own path in the VNNI kernel) at
/// every column count up to five panels, and a classifier-sized one.
#[test]
fn simd_qgemm_single_rows_match_scalar() {
    for kn in kernels() {
        for n in 1..=80 {
            let k = [1, 5, 8, 23][n % 4];
            let c = make_case(1, n, k, k + 1, n, Fill::Random, 1000 + n as u64);
            check(kn.name, kn.f, &c, &modes(n as u64));
        }
        let c = make_case(1, 1000, 1280, 1280, 1000, Fill::FullRange, 7);
        check(kn.name, kn.f, &c, &modes(7));
    }
}

/// Strided rows (`lda > k`, `ldc > n`: the gaps must survive) and long reductions (B strips
/// of one register tile), on edge-heavy shapes.
#[test]
fn simd_qgemm_strided_and_large_match_scalar() {
    for kn in kernels() {
        for (seed, (m, n, k)) in (500..).zip([
            (3 * kn.mr + 5, 3 * kn.nt + 5, 23),
            (13, 40, 2048),
            (7, 37, 3001),
            (kn.mr + 1, 3 * kn.nt + 5, 1024),
            (49, 160, 960),
            (50, 24, 144),
            (9, 1000, 37),
        ]) {
            let c = make_case(m, n, k, k + 3, n + 5, Fill::Random, seed);
            check(kn.name, kn.f, &c, &modes(seed));
        }
    }
}

/// Random shapes, strides, operand fills and output modes.
#[test]
fn simd_qgemm_random_shapes_match_scalar() {
    for kn in kernels() {
        let mut r = Rng::new(99);
        for seed in 0..150 {
            let (m, n, k) = (r.below(40), r.below(100), r.below(70));
            let fill = [Fill::Random, Fill::FullRange, Fill::Ties][r.below(3)];
            let c = make_case(m, n, k, k + r.below(5), n + r.below(5), fill, 2000 + seed);
            let all = modes(seed);
            check(kn.name, kn.f, &c, &[all[r.below(all.len())]]);
        }
    }
}

/// Outputs exactly halfway between two integers must round to even, as the scalar rule does.
#[test]
fn simd_qgemm_rounding_ties_match_scalar() {
    for kn in kernels() {
        let mut ties = 0;
        for (seed, (m, n, k)) in [(9, 33, 7), (17, 48, 12), (3, 25, 64)]
            .into_iter()
            .enumerate()
        {
            let c = make_case(m, n, k, k, n, Fill::Ties, 77 + seed as u64);
            // Count the outputs that are exact .5 ties (so the test keeps testing them).
            for i in 0..m {
                for j in 0..n {
                    let acc: i32 = (0..k)
                        .map(|kk| c.a[i * c.lda + kk] as i32 * c.w[j * k + kk] as i32)
                        .sum::<i32>()
                        + c.bias[j];
                    let t = acc as f32 * c.scale[j];
                    ties += usize::from(t.fract().abs() == 0.5);
                }
            }
            let modes = [
                Mode::U8 {
                    rq: Requant::new(128, 0, 255),
                    residual: false,
                },
                Mode::U8 {
                    rq: Requant::new(128, 0, 255),
                    residual: true,
                },
                Mode::U8 {
                    rq: Requant::new(120, 118, 126),
                    residual: true,
                },
                Mode::F32,
            ];
            check(kn.name, kn.f, &c, &modes);
        }
        assert!(ties > 100, "only {ties} ties: the test lost its point");
    }
}

/// The residual step rounds twice (multiply, then add); a fused multiply-add gives another
/// byte on these outputs. With `rscale = f32(1/3)` and `r - zr = 3q`, the product is
/// `q + q·2^-25` exactly but rounds to `q`; with `acc · scale = 0.5 - q` the two-step sum is
/// exactly 0.5 (even: 0) while the fused one is `0.5 + q·2^-25` (rounds to 1). Likewise with
/// the signs flipped.
#[test]
fn simd_qgemm_residual_rounds_twice() {
    let (k, zr, rscale) = (5, 128, 1.0f32 / 3.0);
    let qs: Vec<i32> = (2..=42).collect();
    let n = 2 * qs.len();
    // Column 2c: acc = 1 - 2q, r - zr = 3q; column 2c+1: acc = 2q - 1, r - zr = -3q.
    let bias: Vec<i32> = qs.iter().flat_map(|&q| [1 - 2 * q, 2 * q - 1]).collect();
    let r_row: Vec<u8> = qs
        .iter()
        .flat_map(|&q| [(zr + 3 * q) as u8, (zr - 3 * q) as u8])
        .collect();
    let rq = Requant::new(100, 0, 255);
    for j in 0..n {
        let t = bias[j] as f32 * 0.5;
        let rv = (r_row[j] as i32 - zr) as f32;
        let (two_step, fused) = (t + rv * rscale, rv.mul_add(rscale, t));
        assert_ne!(
            rq.finish(two_step),
            rq.finish(fused),
            "column {j} lost its point"
        );
    }
    let m = 3;
    let c = Case {
        m,
        n,
        k,
        lda: k,
        ldc: n,
        a: vec![0; m * k],
        packed: pack_b_transposed(k, n, &vec![77; n * k]),
        w: vec![77; n * k],
        bias,
        scale: vec![0.5; n],
        res: r_row.repeat(m),
        res_zero_point: zr,
        res_scale: rscale,
    };
    let mode = Mode::U8 { rq, residual: true };
    let Output::U8(scalar) = run(scalar(), &c, mode) else {
        unreachable!()
    };
    let zp = rq.zero_point as u8;
    let want: Vec<u8> = (0..m).flat_map(|_| (0..n).map(|_| zp)).collect();
    assert_eq!(&scalar[..m * n], &want[..], "scalar");
    for kn in kernels() {
        check(kn.name, kn.f, &c, &[mode]);
    }
}

/// Extreme operands: all-255 activations against all-+127, all--127 and all--128 weights
/// (pair sums of 2 x 255 x 127 exceed i16: a saturating `vpmaddubsw` would fail here), and a
/// reduction long enough for the int32 accumulator to wrap (every tier wraps the same way).
#[test]
fn simd_qgemm_extreme_values_match_scalar() {
    for kn in kernels() {
        for (wv, k, bias) in [
            (127i8, 64, 0),
            (-127, 64, 0),
            (-128, 1001, 0),
            (127, 4093, -(1 << 30)),
            (-128, 70_001, 12345),
            (127, 70_001, i32::MAX - 5),
        ] {
            for (m, n) in [(1, 17), (kn.mr + 1, kn.nt + 8), (3, 40)] {
                let mut c = make_case(m, n, k, k, n, Fill::Random, k as u64);
                c.a.fill(255);
                c.w.fill(wv);
                c.packed = pack_b_transposed(k, n, &c.w);
                c.bias.fill(bias);
                // Tiny scales keep the f32 values distinct (no clamping) in the f32 mode; the
                // byte modes saturate at 0 / 255 or use the narrow bounds.
                c.scale.fill(1.0 / (255.0 * 127.0 * k as f32));
                check(kn.name, kn.f, &c, &modes(k as u64));
                c.scale.fill(1.0 / 255.0);
                check(kn.name, kn.f, &c, &modes(k as u64 + 1));
            }
        }
    }
}

/// `len` bytes of memory immediately followed by an inaccessible page: a kernel reading or
/// writing one element past the end of a slice made from it faults.
struct Guarded {
    map: NonNull<c_void>,
    map_len: usize,
    offset: usize,
    len: usize,
}

const PAGE: usize = 4096;

impl Guarded {
    fn new(bytes: &[u8]) -> Guarded {
        let body = bytes.len().div_ceil(PAGE).max(1) * PAGE;
        let map_len = body + PAGE;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let map = unsafe {
            mmap_anonymous(
                None,
                NonZeroUsize::new(map_len).unwrap(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_ANONYMOUS,
            )
        }
        .expect("mmap");
        // SAFETY: the last page lies inside the mapping made above.
        unsafe {
            let last = NonNull::new_unchecked(map.as_ptr().cast::<u8>().add(body).cast());
            mprotect(last, PAGE, ProtFlags::PROT_NONE).expect("mprotect");
        }
        let g = Guarded {
            map,
            map_len,
            offset: body - bytes.len(),
            len: bytes.len(),
        };
        // SAFETY: `offset..body` is readable and writable memory of the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), g.ptr(), bytes.len());
        }
        g
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: `offset <= body` is inside the mapping.
        unsafe { self.map.as_ptr().cast::<u8>().add(self.offset) }
    }

    fn slice<T>(&self) -> &[T] {
        assert_eq!(self.offset % std::mem::align_of::<T>(), 0);
        // SAFETY: `len` initialised bytes at an aligned pointer, borrowed from `self`; every
        // bit pattern is a valid u8 / i8 / i32 / f32.
        unsafe { std::slice::from_raw_parts(self.ptr().cast(), self.len / size_of::<T>()) }
    }

    fn slice_mut<T>(&mut self) -> &mut [T] {
        assert_eq!(self.offset % std::mem::align_of::<T>(), 0);
        // SAFETY: as `slice`, borrowed mutably from `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr().cast(), self.len / size_of::<T>()) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        unsafe { munmap(self.map, self.map_len) }.expect("munmap");
    }
}

fn bytes_of<T: Copy>(v: &[T]) -> Vec<u8> {
    // SAFETY: plain-old-data elements viewed as their bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        .to_vec()
}

/// Every operand and output ends right before an unmapped page: the k tail (`k % 4 != 0`)
/// of the last row of A, the bias, scale, residual and C column tails must be read and
/// written without touching one byte past their slices.
#[test]
fn simd_qgemm_stay_inside_slices() {
    for kn in kernels() {
        let mut seed = 3000;
        for (m, n, k) in [
            (1, 1, 1),
            (1, 13, 3),
            (2, 7, 5),
            (kn.mr + 1, 24, 6),
            (3, 40, 7),
            (5, kn.nt + 3, 67),
            (1, 1000, 1281),
        ] {
            let c = make_case(m, n, k, k, n, Fill::Random, seed);
            seed += 1;
            for mode in modes(seed) {
                let want = run(scalar(), &c, mode);
                let a = Guarded::new(&c.a);
                let bias = Guarded::new(&bytes_of(&c.bias));
                let scale = Guarded::new(&bytes_of(&c.scale));
                let res = Guarded::new(&c.res);
                let len = strided_len(m, n, n);
                let got = match mode {
                    Mode::U8 { rq, residual } => {
                        let mut out = Guarded::new(&vec![GUARD; len]);
                        (kn.f)(QGemmParams {
                            m,
                            n,
                            k,
                            a: a.slice(),
                            lda: k,
                            b: &c.packed,
                            bias: bias.slice(),
                            out: QOut::U8 {
                                c: out.slice_mut().into(),
                                ldc: n,
                                scale: scale.slice(),
                                rq,
                                residual: residual.then(|| QResidual {
                                    r: res.slice(),
                                    zero_point: c.res_zero_point,
                                    scale: c.res_scale,
                                }),
                            },
                        });
                        let mut v = out.slice::<u8>().to_vec();
                        v.extend([GUARD; SLACK]);
                        Output::U8(v)
                    }
                    Mode::F32 => {
                        let mut out = Guarded::new(&vec![0; len * 4]);
                        (kn.f)(QGemmParams {
                            m,
                            n,
                            k,
                            a: a.slice(),
                            lda: k,
                            b: &c.packed,
                            bias: bias.slice(),
                            out: QOut::F32 {
                                c: out.slice_mut().into(),
                                ldc: n,
                                scale: scale.slice(),
                            },
                        });
                        let mut v: Vec<u32> =
                            out.slice::<f32>().iter().map(|x| x.to_bits()).collect();
                        v.extend([0x7FC0_0A5A; SLACK]);
                        Output::F32(v)
                    }
                };
                assert!(got == want, "{} m={m} n={n} k={k} {mode:?}", kn.name);
            }
        }
    }
}

/// The tiers install these kernels in the qs8_gemm slot, and each slot matches the scalar one.
#[test]
fn qs8_gemm_slots_per_tier() {
    let cpu = CpuFeatures::detect();
    assert_eq!(
        for_isa(Isa::Scalar).qs8_gemm.name,
        "qs8_gemm::scalar::qgemm_1x16"
    );
    for (isa, name) in [
        (Isa::Avx2, "qs8_gemm::avx2::qgemm_6x8"),
        (
            // 32-bit ARM has no int8 NEON kernels: its NEON tier keeps the scalar one.
            Isa::Neon,
            if !cfg!(target_arch = "aarch64") {
                "qs8_gemm::scalar::qgemm_1x16"
            } else if cpu.dotprod {
                "qs8_gemm::neon::qgemm_4x16_dot"
            } else {
                "qs8_gemm::neon::qgemm_2x16_mull"
            },
        ),
        (
            Isa::Avx512,
            if cpu.avx512vnni {
                "qs8_gemm::avx512::qgemm_8x32"
            } else {
                "qs8_gemm::avx2::qgemm_6x8"
            },
        ),
    ] {
        if !cpu.supports(isa) {
            eprintln!("SKIP qs8 {isa:?} slot: tier not supported");
            continue;
        }
        let slot = for_isa(isa).qs8_gemm;
        assert_eq!(slot.name, name);
        let c = make_case(19, 57, 45, 47, 60, Fill::Random, 4242);
        check(slot.name, slot.f, &c, &modes(5));
    }
}

/// The 2 x 3 x 5 product of [`qgemm_hand_computed`] writing to `out`.
fn hand_params<'a>(a: &'a [u8], b: &'a [i8], bias: &'a [i32], out: QOut<'a>) -> QGemmParams<'a> {
    QGemmParams {
        m: 2,
        n: 3,
        k: 5,
        a,
        lda: 5,
        b,
        bias,
        out,
    }
}

/// A 2x3 product over k = 5, computed by hand: activations with zero point 10 (folded into
/// the bias by `fold_zero_point`), weights packed by `pack_b_transposed`, scales with exact
/// .5 results, plain / residual / narrow-clamp byte outputs and the f32 output. Run on the
/// scalar kernel and on every SIMD kernel this CPU has.
#[test]
fn qgemm_hand_computed() {
    let a: [u8; 10] = [
        10, 12, 8, 20, 11, // row 0: a - 10 = [0, 2, -2, 10, 1]
        0, 255, 10, 13, 9, // row 1: a - 10 = [-10, 245, 0, 3, -1]
    ];
    let w: [i8; 15] = [
        1, 2, 3, 4, 5, // column 0
        -1, 0, 1, 0, -1, // column 1
        127, -128, 0, 2, -3, // column 2
    ];
    // Σ w = [15, -1, -2]: folded bias = bias - 10 Σ w.
    let bias = fold_zero_point(&[100, -50, 7], &w, 5, 10);
    assert_eq!(bias, [-50, -40, 27]);
    // bias + Σ (a - 10) w:
    //   row 0: 100 + (0 + 4 - 6 + 40 + 5) = 143,  -50 + (0 + 0 - 2 + 0 - 1) = -53,
    //          7 + (0 - 256 + 0 + 20 - 3) = -232
    //   row 1: 100 + (-10 + 490 + 0 + 12 - 5) = 587,  -50 + (10 + 0 + 0 + 0 + 1) = -39,
    //          7 + (-1270 - 31360 + 0 + 6 + 3) = -32614
    // times scale [0.5, 0.5, 0.125]:
    let want_f32 = [71.5f32, -26.5, -29.0, 293.5, -19.5, -4076.75];
    // Output zero point 128, bounds 0..=255 (t clamped to [-128, 127], ties to even):
    //   71.5 -> 72, -26.5 -> -26, -29, 293.5 -> 127, -19.5 -> -20, -4076.75 -> -128.
    let want_plain = [200u8, 102, 99, 255, 108, 0];
    // Residual (zero point 5, scale 0.5) of [6, 5, 0, 9, 10, 255] adds
    // [0.5, 0, -2.5, 2, 2.5, 125]: 72, -26.5 -> -26, -31.5 -> -32, 295.5 -> 127, -17,
    // -3951.75 -> -128.
    let res = [6u8, 5, 0, 9, 10, 255];
    let want_res = [200u8, 102, 96, 255, 111, 0];
    // Bounds 100..=205 (t clamped to [-28, 77]): 72, -26, -28, 77, -20, -28.
    let want_narrow = [200u8, 102, 100, 205, 108, 100];
    let packed = pack_b_transposed(5, 3, &w);
    let scale = [0.5f32, 0.5, 0.125];

    let mut fns: Vec<(&str, QGemmFn)> = vec![("scalar", scalar())];
    fns.extend(kernels().into_iter().map(|k| (k.name, k.f)));
    for (name, f) in fns {
        let mut c = [0f32; 6];
        f(hand_params(
            &a,
            &packed,
            &bias,
            QOut::F32 {
                c: (&mut c[..]).into(),
                ldc: 3,
                scale: &scale,
            },
        ));
        assert_eq!(c, want_f32, "{name} f32");
        for (rq, residual, want) in [
            (Requant::new(128, 0, 255), false, want_plain),
            (Requant::new(128, 0, 255), true, want_res),
            (Requant::new(128, 100, 205), false, want_narrow),
        ] {
            let mut c = [0u8; 6];
            f(hand_params(
                &a,
                &packed,
                &bias,
                QOut::U8 {
                    c: (&mut c[..]).into(),
                    ldc: 3,
                    scale: &scale,
                    rq,
                    residual: residual.then_some(QResidual {
                        r: &res,
                        zero_point: 5,
                        scale: 0.5,
                    }),
                },
            ));
            assert_eq!(c, want, "{name} {rq:?} residual={residual}");
        }
    }
}
