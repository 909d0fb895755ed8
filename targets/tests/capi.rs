//! The C interface (`runtime/include/ferrolite.h`, what Android apps link) against the Rust
//! API on the shipped bundle: same outputs, errors as NULL / -1 with a message, never a
//! panic; and the header compiles and declares exactly the exported functions.

use ferrolite_runtime::capi::*;
use ferrolite_runtime::exec::Session;
use ferrolite_runtime::preprocess::{self, RgbImage};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn last_error() -> String {
    // SAFETY: ferrolite_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ferrolite_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A deterministic synthetic photo (gradients), so the test needs no image decoder.
fn synthetic_rgb(w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = (p % w, p / w);
            ((x * (c + 1) * 255 / w + y * 255 / h) % 256) as u8
        })
        .collect()
}

#[test]
fn c_interface_matches_the_rust_api_on_the_shipped_bundle() {
    let path = root().join("models/efficientnet_lite0.flb");
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    let m = unsafe { ferrolite_open(cpath.as_ptr()) };
    assert!(!m.is_null(), "open failed: {}", last_error());
    // SAFETY: `m` is live until ferrolite_close below; buffers have the stated lengths.
    unsafe {
        let isa = CStr::from_ptr(ferrolite_isa(m))
            .to_str()
            .unwrap()
            .to_string();
        assert!(!isa.is_empty());
        assert_eq!(ferrolite_input_len(m), 3 * 224 * 224);
        assert_eq!(ferrolite_output_len(m), 1000);
        let label = CStr::from_ptr(ferrolite_label(m, 954)).to_str().unwrap();
        assert!(label.contains("banana"), "{label}");
        assert!(ferrolite_label(m, 1000).is_null());

        let (w, h) = (320, 240);
        let rgb = synthetic_rgb(w, h);
        let mut out = vec![0f32; 1000];
        let rc = ferrolite_classify_rgb(m, rgb.as_ptr(), w, h, out.as_mut_ptr(), out.len());
        assert_eq!(rc, 0, "{}", last_error());

        let model = Arc::new(ferrolite_runtime::bundle::load(&path).unwrap());
        let spec = model.meta.inputs[0].clone();
        let image = RgbImage {
            width: w,
            height: h,
            pixels: &rgb,
        };
        let input =
            preprocess::prepare(&image, spec.preprocess.as_ref().unwrap(), &spec.shape).unwrap();
        let mut session = Session::new(model).unwrap();
        session.run(&[&input]).unwrap();
        assert_eq!(
            out,
            session.output(0),
            "classify_rgb differs from the Rust API"
        );

        let mut again = vec![0f32; 1000];
        let rc = ferrolite_run(
            m,
            input.as_ptr(),
            input.len(),
            again.as_mut_ptr(),
            again.len(),
        );
        assert_eq!(rc, 0, "{}", last_error());
        assert_eq!(again, out, "run on the same tensor differs");

        // Wrong lengths are errors with a message, and the output is left alone.
        let mut short = vec![7f32; 999];
        let rc = ferrolite_run(m, input.as_ptr(), input.len() - 1, short.as_mut_ptr(), 999);
        assert_eq!(rc, -1);
        assert!(
            last_error().contains("input has 150527 values"),
            "{}",
            last_error()
        );
        assert!(short.iter().all(|&v| v == 7.0));
        let rc = ferrolite_run(m, input.as_ptr(), input.len(), short.as_mut_ptr(), 999);
        assert_eq!(rc, -1);
        assert!(last_error().contains("output"), "{}", last_error());
        let rc = ferrolite_classify_rgb(m, std::ptr::null(), w, h, out.as_mut_ptr(), 1000);
        assert_eq!(rc, -1);
        assert!(last_error().contains("NULL"), "{}", last_error());
        ferrolite_close(m);
    }
}

#[test]
fn c_interface_reports_bad_paths_and_null_models() {
    let missing = CString::new("/nonexistent/model.flb").unwrap();
    // SAFETY: NUL-terminated strings or NULL; NULL models are allowed by the contract.
    unsafe {
        assert!(ferrolite_open(missing.as_ptr()).is_null());
        assert!(
            last_error().contains("/nonexistent/model.flb"),
            "{}",
            last_error()
        );
        assert!(ferrolite_open(std::ptr::null()).is_null());
        assert!(last_error().contains("NULL"), "{}", last_error());
        let not_a_bundle = CString::new(root().join("Cargo.toml").to_str().unwrap()).unwrap();
        assert!(ferrolite_open(not_a_bundle.as_ptr()).is_null());
        assert!(last_error().contains("invalid bundle"), "{}", last_error());
        assert_eq!(ferrolite_input_len(std::ptr::null()), 0);
        assert!(ferrolite_label(std::ptr::null(), 0).is_null());
        assert_eq!(
            CStr::from_ptr(ferrolite_isa(std::ptr::null())).to_bytes(),
            b""
        );
        let mut out = [0f32; 4];
        let rc = ferrolite_run(std::ptr::null_mut(), out.as_ptr(), 4, out.as_mut_ptr(), 4);
        assert_eq!(rc, -1);
        ferrolite_close(std::ptr::null_mut());
    }
}

#[test]
fn header_declares_exactly_the_exported_functions_and_compiles() {
    let header = std::fs::read_to_string(root().join("runtime/include/ferrolite.h")).unwrap();
    let source = std::fs::read_to_string(root().join("runtime/src/capi.rs")).unwrap();
    let names = |text: &str, marker: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .split(marker)
            .skip(1)
            .filter_map(|rest| rest.split('(').next())
            .map(|n| n.trim().trim_start_matches('*').to_string())
            .filter(|n| n.starts_with("ferrolite_"))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let exported = names(&source, "extern \"C\" fn ");
    let declared: Vec<String> = {
        let mut v: Vec<String> = header
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ferrolite_"))
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(exported.len(), 9, "{exported:?}");
    assert_eq!(declared, exported, "header and capi.rs disagree");

    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Werror", "-fsyntax-only", "-x", "c"])
        .arg(root().join("runtime/include/ferrolite.h"))
        .output();
    match out {
        Ok(o) => assert!(
            o.status.success(),
            "the header does not compile: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("skipping the header compile check: no C compiler ({cc}: {e})"),
    }
}
