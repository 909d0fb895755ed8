//! Image decoding for library users, the CLI and the Python package: JPEG through
//! libjpeg-turbo's decoder when the `libjpeg` feature is on (the same pixels PIL produces,
//! so accuracy matches reference pipelines), everything else through the `image` crate,
//! which is also the fallback for JPEGs libjpeg refuses when its JPEG decoder is built in
//! (`rust-jpeg`; the device CLI leaves it out).
//!
//! Both decoders read the header first and refuse an image larger than the pixel limit
//! before allocating anything for it: a file's header can claim any size (a 632-byte JPEG
//! claiming 65000x65000 pixels once drove a decode to 24 GB).

use std::path::Path;

use crate::error::{Error, Result};
use crate::preprocess::RgbImage;

/// Default largest image decoded, in pixels (width × height): 50 megapixels, more than any
/// common phone photo; `FERROLITE_MAX_IMAGE_PIXELS` raises or lowers it.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;

/// Bytes the decoders may allocate per pixel of the limit (the RGB image, the decoder's
/// own buffers, a progressive JPEG's coefficients).
const BYTES_PER_PIXEL_BUDGET: u64 = 16;

/// A decoded image: RGB, 8 bits per channel, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes, R G B per pixel.
    pub pixels: Vec<u8>,
}

impl Image {
    /// A borrowed view, as the preprocessing takes it.
    pub fn view(&self) -> RgbImage<'_> {
        RgbImage {
            width: self.width,
            height: self.height,
            pixels: &self.pixels,
        }
    }
}

/// The pixel limit in force: `FERROLITE_MAX_IMAGE_PIXELS` when set, else
/// [`DEFAULT_MAX_PIXELS`].
pub fn max_pixels() -> Result<u64> {
    match std::env::var("FERROLITE_MAX_IMAGE_PIXELS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::Limit(format!(
                "FERROLITE_MAX_IMAGE_PIXELS={v:?} is not a positive whole number of pixels"
            ))),
        },
        Err(_) => Ok(DEFAULT_MAX_PIXELS),
    }
}

/// Refuse an image whose header claims more pixels than `limit`.
fn check_size(name: &str, width: u64, height: u64, limit: u64) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Image(format!(
            "cannot decode image {name}: it claims {width}x{height} pixels"
        )));
    }
    let pixels = width.saturating_mul(height);
    if pixels > limit {
        return Err(Error::Limit(format!(
            "image {name} is {width}x{height} pixels ({:.1} megapixels), over the limit of {:.1} \
             megapixels: set FERROLITE_MAX_IMAGE_PIXELS to a larger pixel count to decode it",
            pixels as f64 / 1e6,
            limit as f64 / 1e6
        )));
    }
    Ok(())
}

/// Whether `path` names a JPEG or PNG file by its extension (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// The entries of a folder, sorted by path; an entry that cannot be read is an error.
fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let io = |what: &str| {
        let context = format!("cannot {what} image folder {}", dir.display());
        move |cause| Error::Io { context, cause }
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(io("read"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io("list"))?;
    paths.sort();
    Ok(paths)
}

/// Every JPEG or PNG image in `dir` and its direct sub-folders, in path order (a
/// sub-folder's images where the sub-folder sorts), as calibration and `eval` read a
/// folder. An empty list is not an error here.
pub fn list_images(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            out.extend(sorted_entries(&p)?.into_iter().filter(|f| is_image_file(f)));
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Decode an image file into RGB8, refusing one over [`max_pixels`].
pub fn decode_file(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|cause| Error::Io {
        context: format!("cannot open image {}", path.display()),
        cause,
    })?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// Decode an encoded image (JPEG, PNG, …) held in memory into RGB8, refusing one over
/// [`max_pixels`]; `name` (a file name, say) is what error messages call it.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<Image> {
    let limit = max_pixels()?;
    #[allow(unused_mut)]
    let mut libjpeg_said = String::new();
    #[cfg(feature = "libjpeg")]
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        match libjpeg::decode(bytes, name, limit) {
            Ok(img) => return Ok(img),
            Err(libjpeg::Refusal::Final(e)) => return Err(e),
            #[cfg(not(feature = "rust-jpeg"))]
            Err(libjpeg::Refusal::Said(msg)) => {
                return Err(Error::Image(format!(
                    "cannot decode image {name}: not a valid JPEG file (libjpeg: {msg})"
                )))
            }
            #[cfg(feature = "rust-jpeg")]
            Err(libjpeg::Refusal::Said(msg)) => libjpeg_said = format!(" (libjpeg: {msg})"),
        }
    }
    let cannot = |what: &str, e: &dyn std::fmt::Display| {
        Error::Image(format!("cannot {what} image {name}{libjpeg_said}: {e}"))
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| cannot("read", &e))
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| cannot("decode", &e))?;
    check_size(name, w.into(), h.into(), limit)?;
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(limit.saturating_mul(BYTES_PER_PIXEL_BUDGET));
    r.limits(limits);
    let rgb = r.decode().map_err(|e| cannot("decode", &e))?.to_rgb8();
    Ok(Image {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

/// libjpeg-turbo through mozjpeg. libjpeg reports fatal errors by unwinding out of its
/// error handler: that unwind is caught and its message handed back, and a process-wide
/// panic hook installed once keeps it off stderr for the decoding thread only (other
/// threads' panics still print), so concurrent decodes are safe.
#[cfg(feature = "libjpeg")]
mod libjpeg {
    use std::cell::Cell;
    use std::sync::Once;

    use super::{check_size, Image};
    use crate::error::{Error, Result};

    /// Why libjpeg did not give an image.
    pub(super) enum Refusal {
        /// The header claims more pixels than the limit, or the sizes disagree: final.
        Final(Error),
        /// libjpeg's own reason (the caller may try the other decoder).
        Said(String),
    }

    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    /// Install, once, a panic hook that stays silent on a thread inside [`decode`].
    fn quiet_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
    }

    /// The size is checked after the header is read and before decompression starts,
    /// which is where libjpeg allocates.
    pub(super) fn decode(bytes: &[u8], name: &str, limit: u64) -> Result<Image, Refusal> {
        quiet_hook();
        QUIET.with(|q| q.set(true));
        let result = std::panic::catch_unwind(|| -> std::io::Result<Result<Image>> {
            let d = mozjpeg::Decompress::new_mem(bytes)?;
            let (w, h) = d.size();
            if let Err(e) = check_size(name, w as u64, h as u64, limit) {
                return Ok(Err(e));
            }
            let mut rgb = d.rgb()?;
            let (w, h) = (rgb.width(), rgb.height());
            let pixels: Vec<u8> = rgb.read_scanlines()?;
            rgb.finish()?;
            if pixels.len() != w * h * 3 {
                return Ok(Err(Error::Image(format!(
                    "cannot decode image {name}: libjpeg gave {} bytes for {w}x{h} pixels",
                    pixels.len()
                ))));
            }
            Ok(Ok(Image {
                width: w,
                height: h,
                pixels,
            }))
        });
        QUIET.with(|q| q.set(false));
        match result {
            Ok(Ok(Ok(img))) => Ok(img),
            Ok(Ok(Err(e))) => Err(Refusal::Final(e)),
            Ok(Err(io)) => Err(Refusal::Said(io.to_string())),
            Err(payload) => Err(Refusal::Said(
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
}
