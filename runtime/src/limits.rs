//! How much memory one model may ask for. A model file names its shapes, and a hostile or
//! broken one can name shapes that need terabytes: the converter and the session compare
//! what a model needs with this limit before allocating, and refuse it naming the tensor
//! and the bytes.

/// The environment variable that sets the limit: bytes, or a number with a `K`, `M` or `G`
/// suffix (powers of 1024), e.g. `FERROLITE_MAX_MEMORY=512M`.
pub const MEMORY_ENV: &str = "FERROLITE_MAX_MEMORY";

/// The limit used where physical memory cannot be read.
const FALLBACK_BYTES: u64 = 4 << 30;

/// The memory limit in bytes: [`MEMORY_ENV`] when set, else half of the physical memory
/// (`/proc/meminfo`), else 4 GiB. A malformed value is an error naming the variable.
pub fn memory_limit() -> Result<u64, String> {
    match std::env::var(MEMORY_ENV) {
        Ok(v) => parse_bytes(&v).ok_or_else(|| {
            format!("{MEMORY_ENV}={v:?} is not a size in bytes (e.g. 1073741824, 512M or 2G)")
        }),
        Err(_) => Ok(physical_memory().map_or(FALLBACK_BYTES, |b| b / 2)),
    }
}

/// Parse `123`, `64K`, `512M`, `2G` (also `KiB`/`MB`-style suffixes, powers of 1024).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift).filter(|&b| b > 0)
}

/// Physical memory in bytes from `/proc/meminfo` (Linux and Android).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// A byte count for messages: `1.5 GB`, `300.0 MB`, `12.0 kB`, `512 bytes`.
pub fn bytes_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("64K"), Some(64 << 10));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes(" 2GiB "), Some(2 << 30));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("12X"), None);
        assert_eq!(parse_bytes("M"), None);
        assert_eq!(parse_bytes("99999999999999999999G"), None);
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(bytes_text(512), "512 bytes");
        assert_eq!(bytes_text(3 << 29), "1.5 GB");
    }
}
