//! Image decoding for `classify`: JPEG through libjpeg-turbo's decoder when the `libjpeg`
//! feature is on (the same pixels PIL produces, so accuracy matches reference pipelines),
//! everything else and the fallback through the `image` crate.

use std::path::Path;

use anyhow::{Context, Result};

/// Decode an image file into RGB8.
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    #[cfg(feature = "libjpeg")]
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        if let Some(img) = decode_libjpeg(&bytes) {
            return Ok(img);
        }
    }
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .with_context(|| format!("cannot read image {}", path.display()))?
        .decode()
        .with_context(|| format!("cannot decode image {}", path.display()))?;
    Ok(img.to_rgb8())
}

/// libjpeg reports fatal errors by unwinding out of its error handler: catch that quietly
/// and let the caller fall back to the `image` decoder, which words the error.
#[cfg(feature = "libjpeg")]
fn decode_libjpeg(bytes: &[u8]) -> Option<image::RgbImage> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| -> std::io::Result<image::RgbImage> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        let mut rgb = d.rgb()?;
        let (w, h) = (rgb.width() as u32, rgb.height() as u32);
        let rows: Vec<[u8; 3]> = rgb.read_scanlines()?;
        rgb.finish()?;
        let flat: Vec<u8> = rows.into_iter().flatten().collect();
        image::RgbImage::from_raw(w, h, flat)
            .ok_or_else(|| std::io::Error::other("decoded size mismatch"))
    });
    std::panic::set_hook(hook);
    result.ok()?.ok()
}
