//! Bytes → the C interface as an app calls it: `ferrolite_open_bytes`, one
//! `ferrolite_run`, `ferrolite_close` (checksums fixed up as in the bundle target).
#![no_main]

use std::sync::Once;

use ferrolite_runtime::bundle::format;
use ferrolite_runtime::capi::{
    ferrolite_close, ferrolite_input_len, ferrolite_open_bytes, ferrolite_output_len,
    ferrolite_run, FerroliteOptions,
};
use libfuzzer_sys::fuzz_target;

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
    let opts = FerroliteOptions {
        threads: 1,
        cpus: std::ptr::null(),
        pin: 0,
    };
    // SAFETY: `bytes` and `opts` live across the calls; the model is closed once.
    unsafe {
        let m = ferrolite_open_bytes(bytes.as_ptr(), bytes.len(), &opts);
        if m.is_null() {
            return;
        }
        let input = vec![0.25f32; ferrolite_input_len(m)];
        let mut output = vec![0f32; ferrolite_output_len(m)];
        ferrolite_run(
            m,
            input.as_ptr(),
            input.len(),
            output.as_mut_ptr(),
            output.len(),
        );
        ferrolite_close(m);
    }
});
