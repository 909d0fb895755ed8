//! Bytes → the C interface as an app calls it: `ferrolite_open_bytes`, one
//! `ferrolite_run`, `ferrolite_close` (checksums fixed up as in the bundle target).
#![no_main]

mod common;

use ferrolite_runtime::capi::{
    ferrolite_close, ferrolite_input_len, ferrolite_open_bytes, ferrolite_output_len,
    ferrolite_run, FerroliteOptions,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::limit_memory("64M");
    let bytes = common::with_fixed_checksums(data);
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
