//! `.npy` bytes → the CLI's reader (`src/cli/npy.rs`, compiled as the CLI compiles it).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/cli/npy.rs"]
#[allow(dead_code)]
mod npy;

fuzz_target!(|data: &[u8]| {
    let _ = npy::parse_npy(data, std::path::Path::new("fuzz.npy"));
});
