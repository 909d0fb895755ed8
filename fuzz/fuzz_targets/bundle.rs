//! Bundle bytes → load → plan → one run. Structure-aware: the file length and every checksum
//! are fixed up before loading, so mutations of the JSON sections and the weights reach the
//! validator, the planner and the executor instead of stopping at a CRC mismatch.
#![no_main]

mod common;

use std::sync::Arc;

use ferrolite_runtime::bundle;
use ferrolite_runtime::{Session, SessionOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::limit_memory("64M");
    let bytes = common::with_fixed_checksums(data);
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
