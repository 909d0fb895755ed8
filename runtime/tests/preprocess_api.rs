//! Hand-computed checks of `preprocess::prepare` (crop offsets, colour order, normalisation,
//! layouts), a float reference for `resize_bilinear`, and the error paths.

use ferrolite_runtime::meta::{ColorOrder, ImageLayout, Preprocess};
use ferrolite_runtime::preprocess::{
    prepare, prepare_into, resize_bilinear, resized_size, RgbImage, MAX_PIXELS,
};
use ferrolite_runtime::Error;

fn img(width: usize, height: usize, pixels: &[u8]) -> RgbImage<'_> {
    RgbImage {
        width,
        height,
        pixels,
    }
}

fn is_input_err<T: std::fmt::Debug>(r: ferrolite_runtime::Result<T>, needle: &str) {
    match r {
        Err(Error::Input(msg)) => assert!(
            msg.contains(needle),
            "message {msg:?} does not mention {needle:?}"
        ),
        other => panic!("expected Error::Input({needle:?}), got {other:?}"),
    }
}

/// 2x2 image, no resize, known mean/std: every value computed by hand.
#[test]
fn prepare_tiny_by_hand() {
    // (x, y): (0,0) = 10,20,30  (1,0) = 40,50,60  (0,1) = 70,80,90  (1,1) = 255,0,127
    let px = [10, 20, 30, 40, 50, 60, 70, 80, 90, 255, 0, 127];
    let src = img(2, 2, &px);
    let pp = Preprocess {
        resize_shorter: None,
        crop: None,
        mean: [10.0, 20.0, 30.0],
        std: [2.0, 4.0, 0.5],
        color: ColorOrder::Rgb,
        layout: ImageLayout::Nchw,
    };
    let got = prepare(&src, &pp, &[1, 3, 2, 2]).unwrap();
    #[rustfmt::skip]
    let want = [
        0.0, 15.0, 30.0, 122.5,     // R: (v - 10) / 2
        0.0, 7.5, 15.0, -5.0,       // G: (v - 20) / 4
        0.0, 60.0, 120.0, 194.0,    // B: (v - 30) / 0.5
    ];
    assert_eq!(got, want);

    // BGR + NHWC: model channel 0 is blue, normalised with mean[0]/std[0].
    let pp = Preprocess {
        color: ColorOrder::Bgr,
        layout: ImageLayout::Nhwc,
        ..pp
    };
    let got = prepare(&src, &pp, &[1, 2, 2, 3]).unwrap();
    #[rustfmt::skip]
    let want = [
        10.0, 0.0, -40.0,     // (0,0): B=30, G=20, R=10
        25.0, 7.5, 20.0,      // (1,0): B=60, G=50, R=40
        40.0, 15.0, 80.0,     // (0,1): B=90, G=80, R=70
        58.5, -5.0, 450.0,    // (1,1): B=127, G=0, R=255
    ];
    assert_eq!(got, want);

    // prepare_into writes the same values in place.
    let mut out = vec![f32::NAN; 12];
    prepare_into(&src, &pp, &[1, 2, 2, 3], &mut out).unwrap();
    assert_eq!(out, want);
}

/// Image whose red channel encodes x and green channel encodes y.
fn coords(w: usize, h: usize) -> Vec<u8> {
    (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 0]))
        .collect()
}

/// Center crop offsets follow torchvision: `int(round(d / 2.0))`, round half to even.
#[test]
fn center_crop_rounds_half_to_even() {
    let px = coords(7, 4);
    let src = img(7, 4, &px);
    // Shorter side 4 on a 7x4 image: no resize, so the crop sees the coordinates directly.
    // (crop_h, crop_w, top, left): d/2 = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 0 -> 0.
    for (ch, cw, top, left) in [(3, 4, 0, 2), (1, 2, 2, 2), (4, 6, 0, 0), (2, 1, 1, 3)] {
        let pp = Preprocess {
            resize_shorter: Some(4),
            crop: Some([ch, cw]),
            std: [1.0; 3],
            ..Preprocess::default()
        };
        let (ch, cw) = (ch as usize, cw as usize);
        let got = prepare(&src, &pp, &[1, 3, ch, cw]).unwrap();
        for y in 0..ch {
            for x in 0..cw {
                assert_eq!(got[y * cw + x], (left + x) as f32, "x at crop {ch}x{cw}");
                assert_eq!(
                    got[ch * cw + y * cw + x],
                    (top + y) as f32,
                    "y at crop {ch}x{cw}"
                );
            }
        }
    }
    // crop = None with a resize: crops to the input's H x W.
    let pp = Preprocess {
        resize_shorter: Some(4),
        std: [1.0; 3],
        ..Preprocess::default()
    };
    let got = prepare(&src, &pp, &[1, 3, 1, 2]).unwrap();
    assert_eq!(&got[..2], &[2.0, 3.0]);
    assert_eq!(&got[2..4], &[2.0, 2.0]);
}

#[test]
fn resized_size_truncates_like_torchvision() {
    assert_eq!(resized_size(600, 366, 256).unwrap(), (419, 256)); // 419.67
    assert_eq!(resized_size(366, 600, 256).unwrap(), (256, 419));
    assert_eq!(resized_size(120, 114, 256).unwrap(), (269, 256)); // 269.47
    assert_eq!(resized_size(300, 200, 64).unwrap(), (96, 64)); // exact
    assert_eq!(resized_size(100, 100, 256).unwrap(), (256, 256));
    assert_eq!(resized_size(500, 333, 256).unwrap(), (384, 256)); // 384.38
}

/// Without `resize_shorter` the image goes straight to the input's H x W.
#[test]
fn prepare_without_resize_shorter_resizes_to_input() {
    let px: Vec<u8> = (0..6 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let src = img(6, 4, &px);
    let pp = Preprocess {
        std: [1.0; 3],
        ..Preprocess::default()
    };
    let got = prepare(&src, &pp, &[1, 3, 3, 5]).unwrap();
    let resized = resize_bilinear(&src, 5, 3).unwrap();
    for (i, p) in resized.chunks_exact(3).enumerate() {
        for c in 0..3 {
            assert_eq!(got[c * 15 + i], f32::from(p[c]));
        }
    }
}

/// Direct float evaluation of the antialiased triangle filter, rounding once at the end.
fn reference_resize(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f64> {
    fn weights(n: usize, on: usize, o: usize) -> Vec<(usize, f64)> {
        let scale = n as f64 / on as f64;
        let fs = scale.max(1.0);
        let center = (o as f64 + 0.5) * scale;
        let mut ws: Vec<(usize, f64)> = (0..n)
            .map(|i| (i, (1.0 - ((i as f64 + 0.5 - center) / fs).abs()).max(0.0)))
            .filter(|&(_, v)| v > 0.0)
            .collect();
        let total: f64 = ws.iter().map(|p| p.1).sum();
        ws.iter_mut().for_each(|p| p.1 /= total);
        ws
    }
    let mut out = Vec::with_capacity(ow * oh * 3);
    for oy in 0..oh {
        let wy = weights(h, oh, oy);
        for ox in 0..ow {
            let wx = weights(w, ow, ox);
            for c in 0..3 {
                let mut acc = 0.0;
                for &(y, vy) in &wy {
                    for &(x, vx) in &wx {
                        acc += vy * vx * f64::from(src[(y * w + x) * 3 + c]);
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// Against the float reference the two-pass 8-bit result may differ by the intermediate
/// rounding only: at most one unit (plus the fixed-point weight error).
#[test]
fn resize_close_to_float_reference() {
    let mut state = 0x2545_f491_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let (w, h) = (41, 29);
    let px: Vec<u8> = (0..w * h * 3).map(|_| (next() >> 24) as u8).collect();
    let src = img(w, h, &px);
    for (ow, oh) in [
        (3, 2),
        (10, 29),
        (41, 7),
        (20, 13),
        (97, 64),
        (1, 40),
        (40, 28),
    ] {
        let got = resize_bilinear(&src, ow, oh).unwrap();
        let want = reference_resize(&px, w, h, ow, oh);
        for (i, (&g, &r)) in got.iter().zip(&want).enumerate() {
            assert!(
                (f64::from(g) - r).abs() <= 1.01,
                "{ow}x{oh} byte {i}: got {g}, float reference {r}"
            );
        }
    }
}

#[test]
fn resize_identity_and_constant() {
    let px = coords(5, 3);
    assert_eq!(resize_bilinear(&img(5, 3, &px), 5, 3).unwrap(), px);
    let flat = vec![200u8; 7 * 5 * 3];
    for (ow, oh) in [(1, 1), (3, 2), (19, 11), (7, 12)] {
        let out = resize_bilinear(&img(7, 5, &flat), ow, oh).unwrap();
        assert!(out.iter().all(|&v| v == 200), "{ow}x{oh}");
    }
}

#[test]
fn bad_images_and_sizes_are_errors() {
    let px = [0u8; 12];
    is_input_err(resize_bilinear(&img(0, 2, &[]), 2, 2), "empty");
    is_input_err(
        resize_bilinear(&img(2, 2, &px[..11]), 2, 2),
        "needs 12 bytes",
    );
    is_input_err(resize_bilinear(&img(2, 2, &px), 0, 2), "empty");
    is_input_err(resize_bilinear(&img(2, 2, &px), 1 << 14, 1 << 13), "limit");
    is_input_err(resize_bilinear(&img(usize::MAX, 2, &px), 1, 1), "overflows");
    is_input_err(resized_size(2, 2, 0), "shorter side 0");
    is_input_err(resized_size(1, 1 << 20, 1 << 20), "");
    const { assert!(MAX_PIXELS >= 4096 * 4096) };
}

#[test]
fn bad_preprocess_inputs_are_errors() {
    let px = coords(8, 6);
    let src = img(8, 6, &px);
    let pp = Preprocess {
        resize_shorter: Some(6),
        crop: Some([4, 4]),
        ..Preprocess::default()
    };
    // Shapes: not 4-D, wrong channel count, batch != 1, zero spatial size, wrong layout.
    is_input_err(prepare(&src, &pp, &[3, 4, 4]), "is not [1, 3, H, W]");
    is_input_err(prepare(&src, &pp, &[1, 4, 4, 4]), "3 channels");
    is_input_err(prepare(&src, &pp, &[2, 3, 4, 4]), "is not");
    is_input_err(prepare(&src, &pp, &[1, 3, 0, 4]), "");
    let nhwc = Preprocess {
        layout: ImageLayout::Nhwc,
        ..pp.clone()
    };
    is_input_err(prepare(&src, &nhwc, &[1, 3, 4, 4]), "3 channels");
    // Crop not matching the model input.
    is_input_err(prepare(&src, &pp, &[1, 3, 4, 5]), "crops to 4x4");
    // Crop larger than the resized image (8x6 resized to shorter side 3 is 4x3).
    let small = Preprocess {
        resize_shorter: Some(3),
        ..pp.clone()
    };
    is_input_err(
        prepare(&src, &small, &[1, 3, 4, 4]),
        "larger than the resized",
    );
    // Zero std, bad image, wrong output buffer.
    let zero_std = Preprocess {
        std: [1.0, 0.0, 1.0],
        ..pp.clone()
    };
    is_input_err(prepare(&src, &zero_std, &[1, 3, 4, 4]), "std[1]");
    is_input_err(prepare(&img(8, 6, &px[..10]), &pp, &[1, 3, 4, 4]), "needs");
    let mut out = vec![0.0; 47];
    is_input_err(prepare_into(&src, &pp, &[1, 3, 4, 4], &mut out), "48");
    // Absurd resize target from a hostile bundle.
    let huge = Preprocess {
        resize_shorter: Some(u32::MAX),
        crop: None,
        ..pp
    };
    is_input_err(prepare(&src, &huge, &[1, 3, 4, 4]), "");
}

/// A center crop is computed alone (only its own output pixels are resampled): it must
/// equal cropping the fully resized image, up and down, on odd and extreme aspect ratios.
#[test]
fn a_crop_equals_the_same_window_of_the_full_resize() {
    for (w, h, shorter, ch, cw) in [
        (16, 151, 32, 24, 20),
        (151, 16, 32, 20, 24),
        (97, 61, 40, 40, 33),
        (301, 257, 64, 57, 64),
        (5, 7, 13, 13, 9),
        (33, 33, 33, 31, 17),
    ] {
        let px: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let src = img(w, h, &px);
        let pp = Preprocess {
            resize_shorter: Some(shorter as u32),
            crop: Some([ch as u32, cw as u32]),
            mean: [0.0; 3],
            std: [1.0; 3],
            color: ColorOrder::Rgb,
            layout: ImageLayout::Nhwc,
        };
        let got = prepare(&src, &pp, &[1, ch, cw, 3]).unwrap();
        let (rw, rh) = resized_size(w, h, shorter).unwrap();
        let full = resize_bilinear(&src, rw, rh).unwrap();
        // torchvision's center offsets (round half to even of (size - crop) / 2).
        let offset =
            |size: usize, crop: usize| ((size - crop) as f64 / 2.0).round_ties_even() as usize;
        let (top, left) = (offset(rh, ch), offset(rw, cw));
        let want: Vec<f32> = (0..ch)
            .flat_map(|y| {
                let start = ((top + y) * rw + left) * 3;
                full[start..start + cw * 3].to_vec()
            })
            .map(f32::from)
            .collect();
        assert_eq!(got, want, "{w}x{h} -> shorter {shorter}, crop {ch}x{cw}");
    }
}
