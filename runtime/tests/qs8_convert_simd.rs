//! The AVX2 f32 -> 8-bit quantize kernel against its scalar twin, byte for byte: lengths 0,
//! 1, 8, 9 and 29, u8 and i8 bounds, exact .5 ties, out-of-range values, infinities and
//! NaN; plus hand-computed values for the scalar kernel.
#![cfg(target_arch = "x86_64")]

use ferrolite_runtime::kernels::qs8_convert::{avx2, scalar};

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

#[test]
fn avx2_quantize_matches_scalar() {
    if !std::is_x86_feature_detected!("avx2") {
        eprintln!("SKIP avx2_quantize_matches_scalar: this CPU has no AVX2");
        return;
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for len in [0usize, 1, 8, 9, 29, 1000] {
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
        ];
        for (v, s) in x.iter_mut().zip(specials.iter().cycle()).step_by(3) {
            *v = *s;
        }
        for (scale, zp, lo, hi) in [(0.5, 128, 0, 255), (0.1, 3, 0, 255), (0.25, 0, -128, 127)] {
            let mut a = vec![0xA5u8; len + 3];
            let mut b = vec![0xA5u8; len + 3];
            scalar::quantize(&x, scale, zp, lo, hi, &mut a);
            avx2::quantize_8x(&x, scale, zp, lo, hi, &mut b);
            assert_eq!(a, b, "len {len} scale {scale} zp {zp}");
        }
    }
}
