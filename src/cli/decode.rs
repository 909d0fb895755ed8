//! Image decoding for `classify`, `eval` and calibration: JPEG through libjpeg-turbo's
//! decoder when the `libjpeg` feature is on (the same pixels PIL produces, so accuracy
//! matches reference pipelines), everything else through the `image` crate, which is also
//! the fallback for JPEGs libjpeg refuses when its JPEG decoder is built in (`rust-jpeg`;
//! the device CLI leaves it out).
//!
//! Both decoders read the header first and refuse an image larger than the pixel limit
//! before allocating anything for it: a file's header can claim any size (a 632-byte JPEG
//! claiming 65000x65000 pixels once drove a decode to 24 GB).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Default largest image decoded, in pixels (width × height): 50 megapixels, more than any
/// common phone photo; `FERROLITE_MAX_IMAGE_PIXELS` raises or lowers it.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// Bytes the decoders may allocate per pixel of the limit (the RGB image, the decoder's
/// own buffers, a progressive JPEG's coefficients).
const BYTES_PER_PIXEL_BUDGET: u64 = 16;

/// The pixel limit in force: `FERROLITE_MAX_IMAGE_PIXELS` when set, else
/// [`DEFAULT_MAX_PIXELS`].
pub fn max_pixels() -> Result<u64> {
    match std::env::var("FERROLITE_MAX_IMAGE_PIXELS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("FERROLITE_MAX_IMAGE_PIXELS={v:?} is not a positive whole number of pixels"),
        },
        Err(_) => Ok(DEFAULT_MAX_PIXELS),
    }
}

/// Refuse an image whose header claims more pixels than `limit`.
fn check_size(path: &Path, width: u64, height: u64, limit: u64) -> Result<()> {
    if width == 0 || height == 0 {
        bail!(
            "cannot decode image {}: it claims {width}x{height} pixels",
            path.display()
        );
    }
    let pixels = width.saturating_mul(height);
    if pixels > limit {
        bail!(
            "image {} is {width}x{height} pixels ({:.1} megapixels), over the limit of {:.1} \
             megapixels: set FERROLITE_MAX_IMAGE_PIXELS to a larger pixel count to decode it",
            path.display(),
            pixels as f64 / 1e6,
            limit as f64 / 1e6
        );
    }
    Ok(())
}

/// Decode an image file into RGB8, refusing one over [`max_pixels`].
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let limit = max_pixels()?;
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    #[allow(unused_mut)]
    let mut libjpeg_said = String::new();
    #[cfg(feature = "libjpeg")]
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        match decode_libjpeg(&bytes, path, limit) {
            Ok(img) => return Ok(img),
            Err(LibjpegError::TooLarge(e)) => return Err(e),
            #[cfg(not(feature = "rust-jpeg"))]
            Err(LibjpegError::Refused(msg)) => bail!(
                "cannot decode image {}: not a valid JPEG file (libjpeg: {msg})",
                path.display()
            ),
            #[cfg(feature = "rust-jpeg")]
            Err(LibjpegError::Refused(msg)) => libjpeg_said = format!(" (libjpeg: {msg})"),
        }
    }
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .with_context(|| format!("cannot read image {}", path.display()))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .with_context(|| format!("cannot decode image {}{libjpeg_said}", path.display()))?;
    check_size(path, w.into(), h.into(), limit)?;
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(limit.saturating_mul(BYTES_PER_PIXEL_BUDGET));
    r.limits(limits);
    let img = r
        .decode()
        .with_context(|| format!("cannot decode image {}", path.display()))?;
    Ok(img.to_rgb8())
}

/// Why libjpeg did not give an image.
#[cfg(feature = "libjpeg")]
enum LibjpegError {
    /// The header claims more pixels than the limit: final, no fallback.
    TooLarge(anyhow::Error),
    /// libjpeg's own reason (the caller may try the other decoder).
    Refused(String),
}

/// libjpeg reports fatal errors by unwinding out of its error handler: catch that quietly
/// and hand the caller libjpeg's message (it falls back to the `image` decoder when it has
/// one, which words the error itself). The size is checked after the header is read and
/// before decompression starts, which is where libjpeg allocates.
#[cfg(feature = "libjpeg")]
fn decode_libjpeg(
    bytes: &[u8],
    path: &Path,
    limit: u64,
) -> std::result::Result<image::RgbImage, LibjpegError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| -> std::io::Result<Result<image::RgbImage>> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        let (w, h) = d.size();
        if let Err(e) = check_size(path, w as u64, h as u64, limit) {
            return Ok(Err(e));
        }
        let mut rgb = d.rgb()?;
        let (w, h) = (rgb.width() as u32, rgb.height() as u32);
        let flat: Vec<u8> = rgb.read_scanlines()?;
        rgb.finish()?;
        Ok(image::RgbImage::from_raw(w, h, flat)
            .ok_or_else(|| anyhow::anyhow!("decoded size mismatch")))
    });
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(Ok(img))) => Ok(img),
        Ok(Ok(Err(e))) => Err(LibjpegError::TooLarge(e)),
        Ok(Err(io)) => Err(LibjpegError::Refused(io.to_string())),
        Err(payload) => Err(LibjpegError::Refused(
            payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .map(|m| {
                    m.trim()
                        .trim_start_matches("libjpeg fatal error: ")
                        .to_string()
                })
                .unwrap_or_else(|| "unreadable data".to_string()),
        )),
    }
}
