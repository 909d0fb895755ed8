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
            session.output(0).expect("output"),
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

/// Run `m` on `input` through the C interface.
///
/// # Safety
/// `m` must be a live model whose first input has `input.len()` values.
unsafe fn run_c(m: *mut FerroliteModel, input: &[f32]) -> Vec<f32> {
    // SAFETY: per the contract; the output buffer has the length passed.
    unsafe {
        let mut out = vec![0f32; ferrolite_output_len(m)];
        let rc = ferrolite_run(m, input.as_ptr(), input.len(), out.as_mut_ptr(), out.len());
        assert_eq!(rc, 0, "{}", last_error());
        out
    }
}

#[test]
fn four_threads_with_handles_of_their_own_give_the_sequential_bytes() {
    // The shipped int8 bundle behind four C handles used at once from four OS threads: two
    // mapped from the file, two opened from one shared byte buffer, with 1- and 2-thread
    // sessions mixed; 100 runs each over three images, every output bit-identical to a
    // sequential 1-thread run. (The fp32 twin on a tiny bundle is runtime/tests/capi_bytes.rs.)
    let path = root().join("models/efficientnet_lite0.flb");
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let spec = ferrolite_runtime::bundle::load(&path).unwrap().meta.inputs[0].clone();
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            let (width, height) = (160 + 40 * k, 200);
            let rgb = synthetic_rgb(width, height);
            let image = RgbImage {
                width,
                height,
                pixels: &rgb,
            };
            preprocess::prepare(&image, spec.preprocess.as_ref().unwrap(), &spec.shape).unwrap()
        })
        .collect();
    let options = |threads| FerroliteOptions {
        threads,
        cpus: std::ptr::null(),
        pin: 0,
    };
    // SAFETY: `cpath` and the options are live for the call; closed once.
    let want: Vec<Vec<u32>> = unsafe {
        let m = ferrolite_open_with_options(cpath.as_ptr(), &options(1));
        assert!(!m.is_null(), "{}", last_error());
        let want = inputs.iter().map(|x| bits(&run_c(m, x))).collect();
        ferrolite_close(m);
        want
    };
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (cpath, bytes, inputs, want) = (&cpath, &bytes, &inputs, &want);
            scope.spawn(move || {
                let opts = options(1 + worker as i32 % 2);
                // SAFETY: path, bytes and options are live for the calls; closed once below.
                let m = unsafe {
                    if worker < 2 {
                        ferrolite_open_with_options(cpath.as_ptr(), &opts)
                    } else {
                        ferrolite_open_bytes(bytes.as_ptr(), bytes.len(), &opts)
                    }
                };
                assert!(!m.is_null(), "{}", last_error());
                for run in 0..100 {
                    let k = (run + worker) % inputs.len();
                    // SAFETY: `m` is live; the input has the model's input length.
                    let got = bits(&unsafe { run_c(m, &inputs[k]) });
                    assert!(got == want[k], "worker {worker}, run {run}: differs");
                }
                // SAFETY: opened above, closed once.
                unsafe { ferrolite_close(m) };
            });
        }
    });
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn c_interface_options_set_threads_and_keep_outputs_identical() {
    let path = root().join("models/efficientnet_lite0.flb");
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let input: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
        .collect();
    // SAFETY: NUL-terminated strings, valid option structs, live models until closed.
    unsafe {
        let m = ferrolite_open(cpath.as_ptr());
        assert!(!m.is_null(), "open failed: {}", last_error());
        assert!(ferrolite_threads(m) >= 1);
        let want = run_c(m, &input);
        ferrolite_close(m);
        for (threads, pin) in [(1, 1), (2, 1), (2, 0), (3, 1)] {
            let opts = FerroliteOptions {
                threads,
                cpus: std::ptr::null(),
                pin,
            };
            let m = ferrolite_open_with_options(cpath.as_ptr(), &opts);
            assert!(!m.is_null(), "threads {threads}: {}", last_error());
            assert_eq!(ferrolite_threads(m), threads);
            let got = run_c(m, &input);
            assert!(
                got.iter()
                    .map(|v| v.to_bits())
                    .eq(want.iter().map(|v| v.to_bits())),
                "threads {threads} pin {pin}: outputs differ from ferrolite_open"
            );
            ferrolite_close(m);
        }
        // NULL options are the defaults; a CPU list of online CPU 0 gives one thread there.
        let m = ferrolite_open_with_options(cpath.as_ptr(), std::ptr::null());
        assert!(!m.is_null(), "{}", last_error());
        ferrolite_close(m);
        let cpu0 = CString::new("0").unwrap();
        let opts = FerroliteOptions {
            threads: 0,
            cpus: cpu0.as_ptr(),
            pin: 1,
        };
        let m = ferrolite_open_with_options(cpath.as_ptr(), &opts);
        assert!(!m.is_null(), "{}", last_error());
        assert_eq!(ferrolite_threads(m), 1);
        assert_eq!(run_c(m, &input), want);
        ferrolite_close(m);
        assert_eq!(ferrolite_threads(std::ptr::null()), 0);
    }
}

#[test]
fn c_interface_rejects_bad_options_with_a_message() {
    let path = root().join("models/efficientnet_lite0.flb");
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let bad = |threads: i32, cpus: Option<&str>, pin: i32, expect: &str| {
        let cpus = cpus.map(|c| CString::new(c).unwrap());
        let opts = FerroliteOptions {
            threads,
            cpus: cpus.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            pin,
        };
        // SAFETY: a NUL-terminated path and a valid option struct.
        let m = unsafe { ferrolite_open_with_options(cpath.as_ptr(), &opts) };
        assert!(
            m.is_null(),
            "threads {threads} cpus {cpus:?} pin {pin} opened"
        );
        let msg = last_error();
        assert!(msg.contains(expect), "expected {expect:?} in {msg:?}");
    };
    bad(-1, None, 1, "threads -1");
    bad(0, Some("x"), 1, "\"x\" is not a CPU number");
    bad(0, Some(""), 1, "empty");
    bad(0, Some("3-1"), 1, "descending");
    bad(0, Some("99999"), 1, "above the highest supported CPU");
    bad(0, Some("4095"), 1, "CPU 4095 is not online");
    bad(0, None, 2, "pin 2");
    // SAFETY: NULL path and options are allowed by the contract.
    assert!(unsafe { ferrolite_open_with_options(std::ptr::null(), std::ptr::null()) }.is_null());
    assert!(last_error().contains("NULL"), "{}", last_error());
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
    assert_eq!(exported.len(), 12, "{exported:?}");
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
