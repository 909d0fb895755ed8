//! Image preprocessing: turn a decoded RGB8 image into the model's input tensor exactly as the
//! reference Python pipeline does (Pillow `BILINEAR` resize of the shorter side, torchvision
//! center crop, `(x - mean) / std`, NCHW or NHWC).
//!
//! The resize reproduces Pillow's antialiased resampling bit for bit: a triangle filter whose
//! support widens with the downscale factor, weights normalised per output pixel and stored
//! as 22-bit fixed point, a horizontal pass then a vertical pass, each rounded and clamped to
//! `u8`. The caller decodes the image file; this module works on pixel buffers only.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::meta::{ColorOrder, ImageLayout, Preprocess};

/// Largest image (in pixels) this module will produce, so a hostile bundle or argument cannot
/// make it allocate without bound (64 Mpixel, e.g. 8192 × 8192).
pub const MAX_PIXELS: usize = 1 << 26;

/// Fractional bits of the fixed-point filter weights (8-bit samples, 2 guard bits in `i32`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A borrowed 8-bit RGB image, channels interleaved, rows top to bottom without padding.
#[derive(Debug, Clone, Copy)]
pub struct RgbImage<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes: R, G, B of each pixel, row-major.
    pub pixels: &'a [u8],
}

impl RgbImage<'_> {
    /// Checks the dimensions are non-zero, bounded and agree with the buffer length.
    fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::Input(format!(
                "image is empty ({}x{})",
                self.width, self.height
            )));
        }
        let expected = self
            .width
            .checked_mul(self.height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| {
                Error::Input(format!(
                    "image size {}x{} overflows",
                    self.width, self.height
                ))
            })?;
        if self.pixels.len() != expected {
            return Err(Error::Input(format!(
                "RGB image {}x{} needs {expected} bytes, got {}",
                self.width,
                self.height,
                self.pixels.len()
            )));
        }
        Ok(())
    }
}

/// Checks an output size is non-zero and at most [`MAX_PIXELS`]; returns its byte length.
fn output_bytes(width: usize, height: usize) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(Error::Input(format!(
            "resize target {width}x{height} is empty"
        )));
    }
    match width.checked_mul(height) {
        Some(n) if n <= MAX_PIXELS => Ok(n * 3),
        _ => Err(Error::Input(format!(
            "resize target {width}x{height} exceeds the limit of {MAX_PIXELS} pixels"
        ))),
    }
}

/// Fixed-point filter weights of a 1-D resampling from `in_size` to `out_size` samples.
struct Taps {
    /// Per output sample: first input sample and number of taps.
    windows: Vec<(usize, usize)>,
    /// Weights of all windows, concatenated in output order.
    weights: Vec<i32>,
}

/// Triangle (bilinear) kernel of support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Computes the taps of the antialiased triangle filter mapping `in_size` samples onto
/// `out_size` (both non-zero), for the output samples in `outputs` only (each sample's taps
/// depend on nothing else). When shrinking, the kernel is stretched by the scale factor so
/// every input sample contributes; the float arithmetic follows the reference order exactly
/// so the rounded fixed-point weights are identical.
fn taps(in_size: usize, out_size: usize, outputs: Range<usize>) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // triangle support (1.0) widened by the scale
    let inv_filter_scale = 1.0 / filter_scale;
    let mut windows = Vec::with_capacity(outputs.len());
    let mut weights = Vec::new();
    let mut window = Vec::new();
    for out_x in outputs {
        let center = (out_x as f64 + 0.5) * scale;
        // `as i64` truncates toward zero, then the window is clamped to the input.
        let first = ((center - support + 0.5) as i64).max(0);
        let end = ((center + support + 0.5) as i64).min(in_size as i64);
        let len = (end - first).max(0);
        window.clear();
        let mut total = 0.0f64;
        for i in 0..len {
            let w = triangle(((i + first) as f64 - center + 0.5) * inv_filter_scale);
            window.push(w);
            total += w;
        }
        for w in &window {
            let w = if total != 0.0 { w / total } else { *w };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights.push(if w < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            });
        }
        windows.push((first as usize, len as usize));
    }
    Taps { windows, weights }
}

/// Rounds a fixed-point accumulator (which started at one half) back to a clamped `u8`.
#[inline]
fn to_u8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples each row of `src` (`rows` rows of `in_w` RGB pixels) to `taps.windows.len()`
/// pixels.
fn resample_rows(src: &[u8], in_w: usize, rows: usize, taps: &Taps) -> Vec<u8> {
    let out_w = taps.windows.len();
    let mut out = Vec::with_capacity(out_w * rows * 3);
    for row in src.chunks_exact(in_w * 3).take(rows) {
        let mut offset = 0;
        for &(first, len) in &taps.windows {
            let ws = &taps.weights[offset..offset + len];
            offset += len;
            let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
            for (k, &w) in ws.iter().enumerate() {
                let p = &row[(first + k) * 3..(first + k) * 3 + 3];
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            out.extend(acc.iter().map(|&a| to_u8(a)));
        }
    }
    out
}

/// Resamples the columns of `src` (rows of `row_len` bytes, rows numbered from `row_base`)
/// to `taps.windows.len()` rows.
fn resample_columns(src: &[u8], row_len: usize, row_base: usize, taps: &Taps) -> Vec<u8> {
    let mut out = Vec::with_capacity(row_len * taps.windows.len());
    let mut acc = vec![0i64; row_len];
    let mut offset = 0;
    for &(first, len) in &taps.windows {
        let ws = &taps.weights[offset..offset + len];
        offset += len;
        acc.fill(1i64 << (PRECISION_BITS - 1));
        for (k, &w) in ws.iter().enumerate() {
            let start = (first + k - row_base) * row_len;
            let row = &src[start..start + row_len];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i64::from(p) * i64::from(w);
            }
        }
        out.extend(acc.iter().map(|&a| to_u8(a)));
    }
    out
}

/// Resizes an RGB image to `out_w` × `out_h` with Pillow-compatible antialiased bilinear
/// resampling (`Image.resize(..., Image.BILINEAR)`), up or down; returns RGB8 bytes.
pub fn resize_bilinear(src: &RgbImage, out_w: usize, out_h: usize) -> Result<Vec<u8>> {
    src.validate()?;
    output_bytes(out_w, out_h)?;
    Ok(resize_window(src, out_w, out_h, 0..out_w, 0..out_h))
}

/// The pixels `cols` × `rows` of `src` resized to `out_w` × `out_h` (a valid image, a
/// window inside the output), computed alone: each output pixel depends only on its own
/// taps, so a center crop costs its own size, not the resized image's (a 16x15116 photo
/// resized to shorter side 256 is 62 M pixels, of which a 224x224 crop needs 50 k).
fn resize_window(
    src: &RgbImage,
    out_w: usize,
    out_h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
) -> Vec<u8> {
    let (in_w, in_h) = (src.width, src.height);
    // The vertical pass, and the input rows it reads.
    let (vertical, first_row, end_row) = if in_h == out_h {
        (None, rows.start, rows.end)
    } else {
        let v = taps(in_h, out_h, rows);
        let first = v.windows.iter().map(|w| w.0).min().unwrap_or(0);
        let end = v
            .windows
            .iter()
            .map(|w| w.0 + w.1)
            .max()
            .unwrap_or(0)
            .max(first);
        (Some(v), first, end)
    };
    let band = &src.pixels[first_row * in_w * 3..end_row * in_w * 3];
    let horizontal = if in_w == out_w {
        band.chunks_exact(in_w * 3)
            .flat_map(|row| &row[cols.start * 3..cols.end * 3])
            .copied()
            .collect()
    } else {
        resample_rows(
            band,
            in_w,
            end_row - first_row,
            &taps(in_w, out_w, cols.clone()),
        )
    };
    match vertical {
        None => horizontal,
        Some(v) => resample_columns(&horizontal, cols.len() * 3, first_row, &v),
    }
}

/// Size `(width, height)` after torchvision's `Resize(shorter)`: the shorter side becomes
/// `shorter`, the longer one `int(shorter * long / short)` (truncated).
pub fn resized_size(width: usize, height: usize, shorter: usize) -> Result<(usize, usize)> {
    if width == 0 || height == 0 || shorter == 0 {
        return Err(Error::Input(format!(
            "cannot resize a {width}x{height} image to shorter side {shorter}"
        )));
    }
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Exact in f64 as long as the product stays below 2^53; the division is then correctly
    // rounded like Python's int / int.
    let product = (shorter as u128) * (long as u128);
    if product >= 1u128 << 53 {
        return Err(Error::Input(format!(
            "resize of a {width}x{height} image to shorter side {shorter} is too large"
        )));
    }
    let new_long = (product as f64 / short as f64) as usize;
    let size = if width <= height {
        (shorter, new_long)
    } else {
        (new_long, shorter)
    };
    output_bytes(size.0, size.1)?;
    Ok(size)
}

/// Offset of a centered crop of `crop` out of `size` as torchvision computes it:
/// `int(round((size - crop) / 2.0))` with Python's round-half-to-even.
fn center_offset(size: usize, crop: usize) -> usize {
    let diff = size - crop;
    let half = diff / 2;
    if diff % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Spatial size `(height, width)` and layout read from a `[1,3,H,W]` / `[1,H,W,3]` shape.
fn input_hw(input_shape: &[usize], layout: ImageLayout) -> Result<(usize, usize)> {
    let (c, h, w) = match (input_shape, layout) {
        ([1, c, h, w], ImageLayout::Nchw) => (*c, *h, *w),
        ([1, h, w, c], ImageLayout::Nhwc) => (*c, *h, *w),
        _ => {
            let want = match layout {
                ImageLayout::Nchw => "[1, 3, H, W]",
                ImageLayout::Nhwc => "[1, H, W, 3]",
            };
            return Err(Error::Input(format!(
                "image input shape {input_shape:?} is not {want} ({layout:?})"
            )));
        }
    };
    if c != 3 || h == 0 || w == 0 {
        return Err(Error::Input(format!(
            "image input shape {input_shape:?} must have 3 channels and non-zero H, W"
        )));
    }
    output_bytes(w, h)?;
    Ok((h, w))
}

/// Converts `src` into the model input tensor described by `pp` and `input_shape`
/// (`[1,3,H,W]` for NCHW, `[1,H,W,3]` for NHWC); allocates and returns it.
pub fn prepare(src: &RgbImage, pp: &Preprocess, input_shape: &[usize]) -> Result<Vec<f32>> {
    let (h, w) = input_hw(input_shape, pp.layout)?;
    let mut out = vec![0.0f32; h * w * 3];
    prepare_into(src, pp, input_shape, &mut out)?;
    Ok(out)
}

/// Like [`prepare`] but writes into `out`, which must hold exactly `H * W * 3` values; the
/// only allocation is the resized image.
///
/// Steps: resize the shorter side to `pp.resize_shorter` (or, when absent, straight to
/// `H × W`), center-crop to `pp.crop` (or to `H × W`), which must equal the input's `H × W`,
/// swap to BGR if asked, then `(pixel - mean[c]) / std[c]` in the requested layout.
pub fn prepare_into(
    src: &RgbImage,
    pp: &Preprocess,
    input_shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    src.validate()?;
    let (h, w) = input_hw(input_shape, pp.layout)?;
    if out.len() != h * w * 3 {
        return Err(Error::Input(format!(
            "output buffer holds {} values, input shape {input_shape:?} needs {}",
            out.len(),
            h * w * 3
        )));
    }
    if let Some([ch, cw]) = pp.crop {
        if (ch as usize, cw as usize) != (h, w) {
            return Err(Error::Input(format!(
                "preprocessing crops to {ch}x{cw} (HxW) but the model input is {h}x{w}"
            )));
        }
    }
    if let Some(i) = pp.std.iter().position(|s| *s == 0.0 || !s.is_finite()) {
        return Err(Error::Input(format!(
            "preprocessing std[{i}] = {} is not a usable divisor",
            pp.std[i]
        )));
    }
    let (rw, rh) = match pp.resize_shorter {
        Some(s) => resized_size(src.width, src.height, s as usize)?,
        None => (w, h),
    };
    if rh < h || rw < w {
        return Err(Error::Input(format!(
            "center crop {h}x{w} (HxW) is larger than the resized image {rh}x{rw}"
        )));
    }
    src.validate()?;
    output_bytes(rw, rh)?;
    let top = center_offset(rh, h);
    let left = center_offset(rw, w);
    let crop = resize_window(src, rw, rh, left..left + w, top..top + h);
    // Source channel feeding each model channel.
    let order = match pp.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    for y in 0..h {
        let row = &crop[y * w * 3..(y + 1) * w * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            for (c, &sc) in order.iter().enumerate() {
                let v = (f32::from(px[sc]) - pp.mean[c]) / pp.std[c];
                let idx = match pp.layout {
                    ImageLayout::Nchw => (c * h + y) * w + x,
                    ImageLayout::Nhwc => (y * w + x) * 3 + c,
                };
                out[idx] = v;
            }
        }
    }
    Ok(())
}
