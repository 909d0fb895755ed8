//! `.npy` files for `run`: read an f32 (or f64) C-ordered array, write one atomically. The
//! header is untrusted: the shape it claims is compared with the data present before any
//! allocation.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::meta::shape_text;

/// Read an .npy file as f32 values with its shape.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_npy(&bytes, path)
}

/// Parse `.npy` bytes (read from `path`, named in errors) as f32 values with their shape.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    check_header(bytes).with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    let npy = npyz::NpyFile::new(bytes)
        .with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!(
            "{}: Fortran-ordered arrays are not supported",
            path.display()
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    // The header may claim any shape: compare it with the data present before reading.
    let claimed = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let have = bytes.len() / npy.dtype().num_bytes().unwrap_or(1).max(1);
    if claimed.is_none_or(|n| n > have) {
        bail!(
            "{}: its header claims shape {} but the file holds only {} values",
            path.display(),
            shape_text(&shape),
            have
        );
    }
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => bail!(
            "{}: dtype {other:?} is not supported (use float32)",
            path.display()
        ),
    };
    let data: Vec<f32> = match descr.as_str() {
        "<f4" => npy.into_vec::<f32>()?,
        "<f8" => npy
            .into_vec::<f64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => bail!(
            "{}: dtype {other} is not supported (use float32)",
            path.display()
        ),
    };
    Ok((shape, data))
}

/// The header's Python dict literal, checked before npyz parses it: its parser takes
/// exponential time on deeply nested brackets (a 293-byte file with 64 `[` ran for seconds),
/// and a real header nests two deep (`{'shape': (1, 3, 224, 224)}`).
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        bail!("it does not start with the NumPy magic");
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("format version {v} is not 1, 2 or 3"),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .context("the header is longer than the file")?;
    let mut depth = 0usize;
    for &b in header {
        match b {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 3 {
            bail!("its header nests brackets more than 3 deep");
        }
    }
    Ok(())
}

/// Write f32 values with a shape as an .npy file, atomically (the old file survives a
/// failed write).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    use npyz::WriterBuilder;
    let mut bytes = Vec::with_capacity(128 + data.len() * 4);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
        .writer(std::io::Cursor::new(&mut bytes))
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    ferrolite_runtime::bundle::write_atomically(path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
