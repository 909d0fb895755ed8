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

/// The header's Python dict literal, checked before npyz parses it: its general Python
/// literal parser takes exponential time on some inputs (a 293-byte file with 64 nested `[`
/// ran for seconds; a 118-byte header of braces and string escapes for half a second), so
/// only the form NumPy writes gets through: `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (1, 3, 224, 224), }`, keys in any order, padded with spaces and a newline.
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
    HeaderScan {
        text: header,
        at: 0,
    }
    .dict()
    .map_err(|e| anyhow::anyhow!("its header is not the dictionary NumPy writes: {e}"))
}

/// A scanner over an .npy header for [`check_header`].
struct HeaderScan<'a> {
    text: &'a [u8],
    at: usize,
}

impl HeaderScan<'_> {
    fn spaces(&mut self) {
        while self.text.get(self.at).is_some_and(|b| *b == b' ') {
            self.at += 1;
        }
    }

    /// Skip spaces, then take `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.spaces();
        let next = self.text.get(self.at) == Some(&b);
        self.at += usize::from(next);
        next
    }

    fn expect(&mut self, b: u8) -> std::result::Result<(), String> {
        if self.eat(b) {
            return Ok(());
        }
        Err(match self.text.get(self.at) {
            Some(c) => format!(
                "{:?} at byte {} where {:?} belongs",
                *c as char, self.at, b as char
            ),
            None => format!("it ends where {:?} belongs", b as char),
        })
    }

    /// A quoted string of letters, digits and `<>|=_` (no escapes), without its quotes.
    fn word(&mut self) -> std::result::Result<String, String> {
        self.spaces();
        let quote = match self.text.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("no quoted name at byte {}", self.at)),
        };
        self.at += 1;
        let from = self.at;
        while let Some(&c) = self.text.get(self.at) {
            if c == quote {
                self.at += 1;
                return Ok(String::from_utf8_lossy(&self.text[from..self.at - 1]).into_owned());
            }
            if !(c.is_ascii_alphanumeric() || b"<>|=_".contains(&c)) {
                return Err(format!("{:?} inside a name at byte {}", c as char, self.at));
            }
            self.at += 1;
        }
        Err("a name is not closed".into())
    }

    /// `True` or `False`.
    fn flag(&mut self) -> std::result::Result<(), String> {
        self.spaces();
        for w in [&b"True"[..], b"False"] {
            if self.text[self.at..].starts_with(w) {
                self.at += w.len();
                return Ok(());
            }
        }
        Err(format!(
            "fortran_order is not True or False at byte {}",
            self.at
        ))
    }

    /// A tuple of non-negative integers: `()`, `(5,)`, `(1, 3, 224, 224)`.
    fn shape(&mut self) -> std::result::Result<(), String> {
        self.expect(b'(')?;
        loop {
            if self.eat(b')') {
                return Ok(());
            }
            let from = self.at;
            while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
                self.at += 1;
            }
            if self.at == from || self.at - from > 20 {
                return Err(format!("the shape has no dimension at byte {from}"));
            }
            if !self.eat(b',') {
                return self.expect(b')');
            }
        }
    }

    fn dict(&mut self) -> std::result::Result<(), String> {
        self.expect(b'{')?;
        let mut seen = Vec::new();
        while !self.eat(b'}') {
            let key = self.word()?;
            self.expect(b':')?;
            match key.as_str() {
                "descr" => self.word().map(drop)?,
                "fortran_order" => self.flag()?,
                "shape" => self.shape()?,
                other => return Err(format!("unknown key {other:?}")),
            }
            if seen.contains(&key) {
                return Err(format!("key {key:?} twice"));
            }
            seen.push(key);
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        if seen.len() != 3 {
            return Err("it needs the keys descr, fortran_order and shape".into());
        }
        let rest = &self.text[self.at..];
        if rest.iter().any(|&b| !b" \n\0".contains(&b)) {
            return Err(format!("text after the dictionary at byte {}", self.at));
        }
        Ok(())
    }
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
    Ok(ferrolite_runtime::bundle::write_atomically(path, &bytes)?)
}
