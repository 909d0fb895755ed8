//! The C interface on a tiny bundle held in memory (`ferrolite_open_bytes`): run it, read
//! errors; one bundle's bytes serving models on four threads at once, every output
//! byte-identical to the Rust session's. Small enough to run under valgrind
//! (`.ci/valgrind`); the shipped-bundle C API tests are `targets/tests/capi.rs`.

mod bundle_common;

use std::ffi::{CStr, CString};
use std::sync::Arc;

use bundle_common::small_model;
use ferrolite_runtime::capi::{
    ferrolite_close, ferrolite_input_len, ferrolite_last_error, ferrolite_open,
    ferrolite_open_bytes, ferrolite_output_len, ferrolite_run, FerroliteOptions,
};
use ferrolite_runtime::{bundle, Session, SessionOptions};

fn last_error() -> String {
    // SAFETY: ferrolite_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ferrolite_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn options(threads: i32) -> FerroliteOptions {
    FerroliteOptions {
        threads,
        cpus: std::ptr::null(),
        pin: 0,
    }
}

/// The bundle bytes of the test model, an input for it and the Rust session's output bits.
fn reference() -> (Vec<u8>, Vec<f32>, Vec<u32>) {
    let m = small_model(7);
    let bytes = bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).unwrap();
    let input: Vec<f32> = (0..3 * 8 * 8)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let opts = SessionOptions {
        threads: Some(1),
        pin: false,
        ..SessionOptions::default()
    };
    let mut s = Session::with_options(Arc::new(bundle::from_bytes(&bytes).unwrap()), opts).unwrap();
    s.run(&[&input]).unwrap();
    let bits = s
        .output(0)
        .expect("output")
        .iter()
        .map(|v| v.to_bits())
        .collect();
    (bytes, input, bits)
}

/// One run through the C interface; the output bits.
fn run_c(model: *mut ferrolite_runtime::capi::FerroliteModel, input: &[f32]) -> Vec<u32> {
    // SAFETY: `model` is live; the buffers have the lengths passed.
    unsafe {
        let mut out = vec![0f32; ferrolite_output_len(model)];
        assert_eq!(ferrolite_input_len(model), input.len());
        let rc = ferrolite_run(
            model,
            input.as_ptr(),
            input.len(),
            out.as_mut_ptr(),
            out.len(),
        );
        assert_eq!(rc, 0, "{}", last_error());
        out.iter().map(|v| v.to_bits()).collect()
    }
}

#[test]
fn a_bundle_opened_from_memory_runs_like_the_rust_session() {
    let (bytes, input, want) = reference();
    // SAFETY: `bytes` is live for the call; the model is closed once.
    unsafe {
        let m = ferrolite_open_bytes(bytes.as_ptr(), bytes.len(), std::ptr::null());
        assert!(!m.is_null(), "{}", last_error());
        assert_eq!(run_c(m, &input), want);
        let mut out = vec![0f32; ferrolite_output_len(m)];
        let short = ferrolite_run(
            m,
            input.as_ptr(),
            input.len() - 1,
            out.as_mut_ptr(),
            out.len(),
        );
        assert_eq!(short, -1);
        assert!(last_error().contains("input"), "{}", last_error());
        ferrolite_close(m);
    }
}

#[test]
fn bad_bytes_and_paths_are_errors_with_messages() {
    let (bytes, _, _) = reference();
    // SAFETY: every pointer passed is NULL or points to the length given.
    unsafe {
        assert!(ferrolite_open_bytes(std::ptr::null(), 10, std::ptr::null()).is_null());
        assert!(last_error().contains("NULL"), "{}", last_error());
        let junk = b"definitely not a bundle";
        assert!(ferrolite_open_bytes(junk.as_ptr(), junk.len(), std::ptr::null()).is_null());
        assert!(last_error().contains("invalid bundle"), "{}", last_error());
        let cut = &bytes[..bytes.len() / 2];
        assert!(ferrolite_open_bytes(cut.as_ptr(), cut.len(), std::ptr::null()).is_null());
        assert!(last_error().contains("invalid bundle"), "{}", last_error());
        let bad = options(-3);
        assert!(ferrolite_open_bytes(bytes.as_ptr(), bytes.len(), &bad).is_null());
        assert!(!last_error().is_empty());
        let missing = CString::new("/nonexistent/model.flb").unwrap();
        assert!(ferrolite_open(missing.as_ptr()).is_null());
        assert!(
            last_error().contains("cannot open bundle"),
            "{}",
            last_error()
        );
    }
}

#[test]
fn models_on_four_threads_at_once_give_the_sequential_bytes() {
    let (bytes, input, want) = reference();
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (bytes, input, want) = (&bytes, &input, &want);
            scope.spawn(move || {
                let opts = options(1 + worker % 2);
                // SAFETY: `bytes` and `opts` are live for the call; closed once below.
                let m = unsafe { ferrolite_open_bytes(bytes.as_ptr(), bytes.len(), &opts) };
                assert!(!m.is_null(), "{}", last_error());
                for run in 0..250 {
                    assert!(
                        run_c(m, input) == *want,
                        "worker {worker} run {run} differs"
                    );
                }
                // SAFETY: opened above, closed once.
                unsafe { ferrolite_close(m) };
            });
        }
    });
}
