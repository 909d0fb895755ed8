//! The AVX2 and NEON int8 add / multiply kernels against their scalar twin, byte for byte:
//! lengths 0, 1, 8, 9, 29 (the AVX2 step 8), 16, 17, 53 (the NEON step 16), 1000 and random
//! ones, random operands and zero points, scales that land on exact .5 ties, huge and
//! non-finite scales (clamping, NaN products), narrow clamp bounds (fused ReLU6), and
//! untouched bytes after the output; plus a hand-computed case for the scalar kernel and the
//! slot each tier registers. The kernels are those of the `qs8_eltwise` registry; the ones
//! this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::qs8_eltwise::{self, scalar, QBinary, QBinaryFn};
use ferrolite_runtime::kernels::requant::Requant;
use ferrolite_runtime::kernels::{for_isa, CpuFeatures, Isa};

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn scalar_binary_by_hand() {
    // Add: (10 - 4) * 0.5 + (7 - 2) * 0.25 = 3 + 1.25 = 4.25 -> 4, + zero point 100 -> 104.
    // (9 - 4) * 0.5 + (4 - 2) * 0.25 = 2.5 + 0.5 = 3 -> 103; (5 - 4) * 0.5 + (2 - 2) * 0.25
    // = 0.5 ties to even 0 -> 100; (0 - 4) * 0.5 + 0 = -2 -> 98.
    let add = QBinary {
        mul: false,
        za: 4,
        zb: 2,
        ma: 0.5,
        mb: 0.25,
        rq: Requant::new(100, 0, 255),
    };
    let mut y = [0u8; 4];
    scalar::binary(&add, &[10, 9, 5, 0], &[7, 4, 2, 2], &mut y);
    assert_eq!(y, [104, 103, 100, 98]);
    // Multiply: (12 - 2) * (3 - 1) * 0.25 = 5 -> 5; (8 - 2) * (4 - 1) * 0.25 = 4.5 ties to
    // even 4; (255 - 2) * (255 - 1) * 0.25 clamps to qmax 6 (ReLU6 bounds).
    let mul = QBinary {
        mul: true,
        za: 2,
        zb: 1,
        ma: 0.25,
        mb: 0.0,
        rq: Requant::new(0, 0, 6),
    };
    let mut y = [0u8; 3];
    scalar::binary(&mul, &[12, 8, 255], &[3, 4, 255], &mut y);
    assert_eq!(y, [5, 4, 6]);
}

/// The SIMD kernels of the registry this CPU runs (the others are skipped with a message).
fn simd_kernels() -> Vec<(&'static str, QBinaryFn)> {
    twins::simd("qs8_eltwise", qs8_eltwise::BINARY)
        .into_iter()
        .map(|e| (e.name, e.f))
        .collect()
}

/// Runs `f` and the scalar kernel on the same row and compares every byte, guards included.
fn compare(name: &str, f: QBinaryFn, p: &QBinary, a: &[u8], b: &[u8], len: usize) {
    let mut want = vec![GUARD; len + 7];
    let mut got = vec![GUARD; len + 7];
    (twins::scalar("qs8_eltwise", qs8_eltwise::BINARY).f)(p, a, b, &mut want[..len]);
    f(p, a, b, &mut got[..len]);
    assert_eq!(want, got, "{name}: len {len} {p:?}");
}

#[test]
fn simd_binary_matches_scalar() {
    let kernels = simd_kernels();
    let mut rng = Rng::new(17);
    let mut lens = vec![0usize, 1, 8, 9, 29, 16, 17, 53, 1000];
    lens.extend((0..8).map(|_| rng.below(300) as usize));
    for &len in &lens {
        // Operands one byte longer than the output: kernels must stop at y.len().
        let a = rng.bytes(len + 1);
        let b = rng.bytes(len + 1);
        let mut params = Vec::new();
        for mul in [false, true] {
            // Exact powers of two: many results land on .5 ties.
            params.push((mul, 0, 0, 0.5, 0.25, Requant::new(0, 0, 255)));
            params.push((mul, 128, 128, 0.5, 0.5, Requant::new(128, 0, 255)));
            params.push((mul, 255, 3, 0.125, 1.5, Requant::new(7, 0, 255)));
            // Fused ReLU6-style narrow bounds.
            params.push((mul, 60, 90, 0.03, 0.07, Requant::new(20, 20, 26)));
            // Huge and non-finite scales: clamps, inf * 0 = NaN lands on the low bound.
            params.push((mul, 128, 0, 1e30, -1e30, Requant::new(128, 0, 255)));
            params.push((mul, 17, 200, f32::INFINITY, 0.5, Requant::new(3, 0, 255)));
            params.push((mul, 17, 200, f32::NAN, 0.5, Requant::new(3, 0, 255)));
            for _ in 0..4 {
                let zy = rng.below(256) as i32;
                let (q0, q1) = (rng.below(256) as u8, rng.below(256) as u8);
                params.push((
                    mul,
                    rng.below(256) as i32,
                    rng.below(256) as i32,
                    (rng.below(10_000) as f32 + 1.0) / 7919.0,
                    (rng.below(10_000) as f32 + 1.0) / 6007.0,
                    Requant::new(zy, q0.min(q1), q0.max(q1)),
                ));
            }
        }
        for (mul, za, zb, ma, mb, rq) in params {
            let p = QBinary {
                mul,
                za,
                zb,
                ma,
                mb,
                rq,
            };
            for &(name, f) in &kernels {
                compare(name, f, &p, &a, &b, len);
            }
        }
    }
}

#[test]
fn qs8_binary_slots_per_tier() {
    let cpu = CpuFeatures::detect();
    assert_eq!(
        for_isa(Isa::Scalar).qs8_binary.name,
        "qs8_eltwise::scalar::binary"
    );
    // (tier, kernel it registers, whether this build's architecture has the tier)
    for (isa, name, native) in [
        (
            Isa::Avx2,
            "qs8_eltwise::avx2::binary_8x",
            cfg!(target_arch = "x86_64"),
        ),
        (
            Isa::Avx512,
            "qs8_eltwise::avx2::binary_8x",
            cfg!(target_arch = "x86_64"),
        ),
        (
            Isa::Neon,
            "qs8_eltwise::neon::binary_16x",
            cfg!(target_arch = "aarch64"),
        ),
    ] {
        if native && cpu.supports(isa) {
            assert_eq!(for_isa(isa).qs8_binary.name, name, "{isa:?}");
        } else {
            eprintln!("SKIP {isa:?} qbinary slot: tier not supported here");
        }
    }
}
