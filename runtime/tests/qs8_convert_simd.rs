//! The AVX2 and NEON f32 -> 8-bit quantize kernels against their scalar twin, byte for byte:
//! lengths 0, 1, 8, 9, 29 (the AVX2 step 8), 16, 17, 53 (the NEON step 16), 1000 and random
//! ones, u8 and i8 bounds, exact .5 ties, out-of-range values, infinities and NaN, and
//! untouched bytes after the output; plus hand-computed values for the scalar kernel and the
//! slot each tier registers. The kernels are those of the `qs8_convert` registry; the ones
//! this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::qs8_convert::{self, scalar, QuantizeFn};
use ferrolite_runtime::kernels::{for_isa, CpuFeatures, Isa};

#[test]
fn scalar_quantize_by_hand() {
    // scale 0.5, zero point 10: 1.25 / 0.5 = 2.5 rounds to even 2 -> 12; 1.75 -> 3.5 -> 4
    // -> 14; -6 -> -12 -> -2 clamps to 0; 200 -> 400 -> 410 clamps to 255.
    let x = [1.25, 1.75, -6.0, 200.0, 0.0];
    let mut y = [0u8; 5];
    scalar::quantize(&x, 0.5, 10, 0, 255, &mut y);
    assert_eq!(y, [12, 14, 0, 255, 10]);
    // Signed bounds: -3 / 0.5 = -6 -> -6 with zero point 0, stored two's complement.
    scalar::quantize(&[-3.0, 100.0], 0.5, 0, -128, 127, &mut y[..2]);
    assert_eq!(y[..2], [(-6i8) as u8, 127]);
}

/// `f` against the scalar kernel on every length, special value and bound set.
fn check_matches_scalar(name: &str, f: QuantizeFn) {
    let oracle = twins::scalar("qs8_convert", qs8_convert::QUANTIZE).f;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut lens = vec![0usize, 1, 8, 9, 29, 16, 17, 53, 1000];
    lens.extend((0..6).map(|_| (next() % 300) as usize));
    for len in lens {
        let mut x: Vec<f32> = (0..len)
            .map(|_| ((next() % 20001) as f32 - 10000.0) / 37.0)
            .collect();
        let specials = [
            0.25,
            -0.25,
            0.75,
            2.5 * 0.1,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e30,
            -1e30,
            -0.0,
            63.75,
            -64.25,
        ];
        for (v, s) in x.iter_mut().zip(specials.iter().cycle()).step_by(3) {
            *v = *s;
        }
        for (scale, zp, lo, hi) in [
            (0.5, 128, 0, 255),
            (0.1, 3, 0, 255),
            (0.25, 0, -128, 127),
            (0.5, -5, -128, 127),
            (f32::INFINITY, 7, 0, 255),
        ] {
            let mut a = vec![0xA5u8; len + 3];
            let mut b = vec![0xA5u8; len + 3];
            oracle(&x, scale, zp, lo, hi, &mut a);
            f(&x, scale, zp, lo, hi, &mut b);
            assert_eq!(a, b, "{name}: len {len} scale {scale} zp {zp}");
        }
    }
}

#[test]
fn simd_quantize_matches_scalar() {
    for e in twins::simd("qs8_convert", qs8_convert::QUANTIZE) {
        check_matches_scalar(e.name, e.f);
    }
}

#[test]
fn qs8_quantize_slots_per_tier() {
    let cpu = CpuFeatures::detect();
    assert_eq!(
        for_isa(Isa::Scalar).qs8_quantize.name,
        "qs8_convert::scalar::quantize"
    );
    // (tier, kernel it registers, whether this build's architecture has the tier)
    for (isa, name, native) in [
        (
            Isa::Avx2,
            "qs8_convert::avx2::quantize_8x",
            cfg!(target_arch = "x86_64"),
        ),
        (
            Isa::Avx512,
            "qs8_convert::avx2::quantize_8x",
            cfg!(target_arch = "x86_64"),
        ),
        (
            Isa::Neon,
            "qs8_convert::neon::quantize_16x",
            cfg!(target_arch = "aarch64"),
        ),
    ] {
        if native && cpu.supports(isa) {
            assert_eq!(for_isa(isa).qs8_quantize.name, name, "{isa:?}");
        } else {
            eprintln!("SKIP {isa:?} quantize slot: tier not supported here");
        }
    }
}
