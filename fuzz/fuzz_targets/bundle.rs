//! Bundle bytes → load → plan → one run. Structure-aware: the file length and every checksum
//! are fixed up before loading, so mutations of the JSON sections and the weights reach the
//! validator, the planner and the executor instead of stopping at a CRC mismatch.
#![no_main]

use std::sync::{Arc, Once};

use ferrolite_runtime::bundle::{self, format};
use ferrolite_runtime::{Session, SessionOptions};
use libfuzzer_sys::fuzz_target;

/// Keep each execution small: models needing more working memory are refused by the
/// session's own limit, which is what is being exercised.
fn limit_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| std::env::set_var(ferrolite_runtime::limits::MEMORY_ENV, "64M"));
}

fuzz_target!(|data: &[u8]| {
    limit_memory();
    let mut bytes = data.to_vec();
    if bytes.len() >= 64 && format::has_magic(&bytes) {
        let len = bytes.len() as u64;
        bytes[24..32].copy_from_slice(&len.to_le_bytes());
        let _ = format::refresh_checksums(&mut bytes);
    }
    let Ok(model) = bundle::from_bytes(&bytes) else {
        return;
    };
    let opts = SessionOptions {
        threads: Some(1),
        pin: false,
        ..SessionOptions::default()
    };
    let Ok(mut session) = Session::with_options(Arc::new(model), opts) else {
        return;
    };
    let inputs: Vec<Vec<f32>> = session
        .input_shapes()
        .iter()
        .map(|s| vec![0.5; s.iter().product()])
        .collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let _ = session.run(&refs);
});
