//! Set-up shared by the fuzz targets.

use std::sync::Once;

/// Set the runtime's memory limit for the whole run (once), so models needing more are
/// refused by the limit itself — part of what is fuzzed — and executions stay small.
pub fn limit_memory(limit: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(ferrolite_runtime::limits::MEMORY_ENV, limit));
}

/// `data` as a bundle whose file length and checksums are fixed up (when it has the magic),
/// so mutations of its sections reach the validator, the planner and the executor instead
/// of stopping at a CRC mismatch.
#[allow(dead_code)]
pub fn with_fixed_checksums(data: &[u8]) -> Vec<u8> {
    use ferrolite_runtime::bundle::format;
    let mut bytes = data.to_vec();
    if bytes.len() >= 64 && format::has_magic(&bytes) {
        let len = bytes.len() as u64;
        bytes[24..32].copy_from_slice(&len.to_le_bytes());
        let _ = format::refresh_checksums(&mut bytes);
    }
    bytes
}
