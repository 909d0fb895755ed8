//! Compares `preprocess::resize_bilinear` and `preprocess::prepare` with Pillow reference
//! outputs stored in `tests/fixtures/preprocess` (regenerate with
//! `python3 tools/gen_preprocess_fixtures.py`).

use std::path::{Path, PathBuf};

use ferrolite_runtime::meta::{ColorOrder, ImageLayout, Preprocess};
use ferrolite_runtime::preprocess::{prepare, resize_bilinear, RgbImage};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

/// Parses the `<W>x<H>` at the end of a fixture name (before `.rgb`).
fn dims(name: &str) -> (usize, usize) {
    let stem = name.trim_end_matches(".rgb");
    let size = stem.rsplit('_').next().expect("size suffix");
    let (w, h) = size.split_once('x').expect("WxH");
    (w.parse().expect("width"), h.parse().expect("height"))
}

/// Same integers as `pattern()` in tools/gen_preprocess_fixtures.py.
fn pattern(w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h as u64 {
        for x in 0..w as u64 {
            for c in 0..3u64 {
                let base = (x * x * (c + 1) + 3 * y * y + 5 * x * y + 17 * c) / 7;
                let noise = ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) & 0xFFFF_FFFF;
                out.push(((base + (noise >> 13) % 32) % 256) as u8);
            }
        }
    }
    out
}

/// Loads a fixture image (or generates a `gen:` one): `(width, height, pixels)`.
fn load(name: &str) -> (usize, usize, Vec<u8>) {
    let (w, h) = dims(name);
    let pixels = match name.strip_prefix("gen:") {
        Some(g) => {
            assert!(g.starts_with("pattern_"), "unknown generator {g}");
            pattern(w, h)
        }
        None => std::fs::read(fixture_dir().join(name)).expect("read fixture"),
    };
    assert_eq!(pixels.len(), w * h * 3, "fixture {name} size");
    (w, h, pixels)
}

fn cases() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(fixture_dir().join("cases.txt")).expect("cases.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Largest absolute difference and number of differing bytes.
fn diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    let count = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (max, count)
}

#[test]
fn resize_matches_pillow_bilinear() {
    let mut checked = 0;
    let mut worst = 0;
    for case in cases().iter().filter(|c| c[0] == "resize") {
        let (iw, ih, input) = load(&case[1]);
        let (ow, oh, expected) = load(&case[2]);
        let src = RgbImage {
            width: iw,
            height: ih,
            pixels: &input,
        };
        let got = resize_bilinear(&src, ow, oh).expect("resize");
        let (max, count) = diff(&got, &expected);
        println!(
            "{iw}x{ih} -> {ow}x{oh}: max abs diff {max}, {count} of {} bytes differ",
            got.len()
        );
        worst = worst.max(max);
        checked += 1;
    }
    println!("resize: {checked} cases, worst max abs diff vs Pillow {worst}");
    assert!(checked >= 10, "too few resize cases in cases.txt");
    // The acceptance bar is one LSB, but the implementation is bit-exact, so any
    // difference is a regression in the rounding or the filter windows.
    assert_eq!(worst, 0, "resize differs from Pillow by up to {worst}");
}

#[test]
fn prepare_matches_pillow_pipeline() {
    let mut checked = 0;
    for case in cases().iter().filter(|c| c[0] == "pipeline") {
        let (iw, ih, input) = load(&case[1]);
        let shorter: u32 = case[2].parse().unwrap();
        let ch: usize = case[3].parse().unwrap();
        let cw: usize = case[4].parse().unwrap();
        let (ew, eh, crop) = load(&case[5]);
        assert_eq!((ew, eh), (cw, ch));
        let src = RgbImage {
            width: iw,
            height: ih,
            pixels: &input,
        };
        let mean = [127.0, 100.5, 3.0];
        let std = [128.0, 64.0, 57.3];
        for (color, layout) in [
            (ColorOrder::Rgb, ImageLayout::Nchw),
            (ColorOrder::Bgr, ImageLayout::Nhwc),
        ] {
            let pp = Preprocess {
                resize_shorter: Some(shorter),
                crop: Some([ch as u32, cw as u32]),
                mean,
                std,
                color,
                layout,
            };
            let shape = match layout {
                ImageLayout::Nchw => vec![1, 3, ch, cw],
                ImageLayout::Nhwc => vec![1, ch, cw, 3],
            };
            let got = prepare(&src, &pp, &shape).expect("prepare");
            let mut max_err = 0.0f32;
            for y in 0..ch {
                for x in 0..cw {
                    for c in 0..3 {
                        let sc = if color == ColorOrder::Bgr { 2 - c } else { c };
                        let px = f32::from(crop[(y * cw + x) * 3 + sc]);
                        let want = (px - mean[c]) / std[c];
                        let idx = match layout {
                            ImageLayout::Nchw => (c * ch + y) * cw + x,
                            ImageLayout::Nhwc => (y * cw + x) * 3 + c,
                        };
                        max_err = max_err.max((got[idx] - want).abs());
                    }
                }
            }
            println!("pipeline {iw}x{ih} s{shorter} crop {ch}x{cw} {color:?} {layout:?}: max err {max_err}");
            // One pixel LSB is 1/std >= 1/128 here; identical bytes give ~0.
            assert!(
                max_err < 1e-5,
                "prepare differs from the Pillow pipeline by {max_err}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "too few pipeline cases in cases.txt");
}
