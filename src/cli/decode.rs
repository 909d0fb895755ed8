//! Image decoding for `classify`: JPEG through libjpeg-turbo's decoder when the `libjpeg`
//! feature is on (the same pixels PIL produces, so accuracy matches reference pipelines),
//! everything else through the `image` crate, which is also the fallback for JPEGs libjpeg
//! refuses when its JPEG decoder is built in (`rust-jpeg`; the device CLI leaves it out).

use std::path::Path;

use anyhow::{Context, Result};

/// Decode an image file into RGB8.
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot open image {}", path.display()))?;
    #[cfg(feature = "libjpeg")]
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        match decode_libjpeg(&bytes) {
            Ok(img) => return Ok(img),
            #[cfg(not(feature = "rust-jpeg"))]
            Err(msg) => anyhow::bail!(
                "cannot decode image {}: not a valid JPEG file (libjpeg: {msg})",
                path.display()
            ),
            #[cfg(feature = "rust-jpeg")]
            Err(_) => {}
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
/// and hand the caller libjpeg's message (it falls back to the `image` decoder when it has
/// one, which words the error itself).
#[cfg(feature = "libjpeg")]
fn decode_libjpeg(bytes: &[u8]) -> std::result::Result<image::RgbImage, String> {
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
    match result {
        Ok(decoded) => decoded.map_err(|e| e.to_string()),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .map(|m| {
                m.trim()
                    .trim_start_matches("libjpeg fatal error: ")
                    .to_string()
            })
            .unwrap_or_else(|| "unreadable data".to_string())),
    }
}
