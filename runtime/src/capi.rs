//! C interface for apps that embed the runtime (Android through JNI, C/C++ programs on a
//! board): open a bundle, run it on an f32 tensor or an RGB image, read the output.
//! The declarations are in `runtime/include/ferrolite.h`.
//!
//! Errors never cross the boundary as panics: every function returns a status (or NULL) and
//! the message is kept per thread for [`ferrolite_last_error`].
//!
//! A model runs on one thread per big core by default, the calling thread included;
//! [`ferrolite_open_with_options`] sets the thread count, the CPUs and pinning. With pinning
//! (the default) every thread has a core of its own, the calling thread included: it is
//! pinned to the fastest core when it first runs the model.

use crate::exec::{Session, SessionOptions};
use crate::preprocess::{self, RgbImage};
use crate::threads::topology::parse_cpu_list;
use crate::{bundle, Error, Result};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::sync::Arc;

/// An opened bundle with its execution state (opaque to C).
pub struct FerroliteModel {
    session: Session,
    labels: Vec<CString>,
    isa: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: String) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning an error or a panic into a stored message and `fail`.
fn guarded<T>(fail: T, f: impl FnOnce() -> Result<T>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_error(e.to_string());
            fail
        }
        Err(_) => {
            set_error("internal error (panic) in ferrolite".into());
            fail
        }
    }
}

fn invalid(what: &str) -> Error {
    Error::Input(what.to_string())
}

/// The message of the last failed call on this thread ("" if none). Valid until the next
/// call on this thread.
#[no_mangle]
pub extern "C" fn ferrolite_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// How [`ferrolite_open_with_options`] runs a model (`FerroliteOptions` in ferrolite.h).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerroliteOptions {
    /// Threads in all, the calling one included; 0: one per big core (of `cpus` if given).
    pub threads: i32,
    /// CPUs to run on as a Linux CPU list ("0-3,5"); NULL: the big cores.
    pub cpus: *const c_char,
    /// 1: pin each thread, the caller included, to a CPU of its own (the default); 0: leave
    /// them to the OS.
    pub pin: i32,
}

impl Default for FerroliteOptions {
    fn default() -> Self {
        FerroliteOptions {
            threads: 0,
            cpus: std::ptr::null(),
            pin: 1,
        }
    }
}

/// The session options `opts` asks for.
///
/// # Safety
/// `opts.cpus` must be NULL or a NUL-terminated string.
unsafe fn session_options(opts: &FerroliteOptions) -> Result<SessionOptions> {
    let threads = match opts.threads {
        0 => None,
        n if n > 0 => Some(n as usize),
        n => {
            return Err(invalid(&format!(
                "threads {n}: give a positive thread count, or 0 for the default"
            )))
        }
    };
    let cpus = if opts.cpus.is_null() {
        None
    } else {
        // SAFETY: the caller passes a NUL-terminated string (checked non-NULL above).
        let text = unsafe { CStr::from_ptr(opts.cpus) };
        let text = text.to_str().map_err(|_| invalid("cpus is not UTF-8"))?;
        Some(parse_cpu_list(text).map_err(Error::Input)?)
    };
    let pin = match opts.pin {
        0 => false,
        1 => true,
        n => return Err(invalid(&format!("pin {n}: give 1 (pin) or 0 (do not pin)"))),
    };
    Ok(SessionOptions {
        threads,
        cpus,
        pin,
        pin_caller: pin,
        ..SessionOptions::default()
    })
}

/// Open and validate the bundle at `path` (memory-mapped) and prepare it with `opts`.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `opts.cpus` NULL or one.
unsafe fn open_with(path: *const c_char, opts: &FerroliteOptions) -> Result<*mut FerroliteModel> {
    if path.is_null() {
        return Err(invalid("path is NULL"));
    }
    // SAFETY: forwarded caller contract.
    let options = unsafe { session_options(opts) }?;
    // SAFETY: the caller passes a NUL-terminated string (checked non-NULL above).
    let path = unsafe { CStr::from_ptr(path) };
    let path = path.to_str().map_err(|_| invalid("path is not UTF-8"))?;
    prepare(bundle::load(Path::new(path))?, options)
}

/// Plan `model` for a session with `options` and box it for C.
fn prepare(model: crate::Model, options: SessionOptions) -> Result<*mut FerroliteModel> {
    let model = Arc::new(model);
    let labels = model
        .meta
        .labels
        .iter()
        .map(|l| CString::new(l.replace('\0', " ")).unwrap_or_default())
        .collect();
    let session = Session::with_options(model, options)?;
    let isa = CString::new(session.isa()).unwrap_or_default();
    Ok(Box::into_raw(Box::new(FerroliteModel {
        session,
        labels,
        isa,
    })))
}

/// Open and validate the bundle at `path` (memory-mapped) and prepare it for the best
/// kernels of this CPU (or `FERROLITE_ISA`), on one thread per big core. NULL on error.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_open(path: *const c_char) -> *mut FerroliteModel {
    // SAFETY: forwarded caller contract; the default options hold no pointer.
    guarded(std::ptr::null_mut(), || unsafe {
        open_with(path, &FerroliteOptions::default())
    })
}

/// [`ferrolite_open`] with options: the thread count, the CPUs and pinning (`opts` NULL: the
/// defaults). NULL on error, e.g. a negative thread count, a malformed CPU list or a CPU
/// that is not online.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `opts` NULL or a valid
/// `FerroliteOptions` whose `cpus` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_open_with_options(
    path: *const c_char,
    opts: *const FerroliteOptions,
) -> *mut FerroliteModel {
    guarded(std::ptr::null_mut(), || {
        // SAFETY: the caller passes NULL or a valid options struct.
        let opts = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        // SAFETY: forwarded caller contract.
        unsafe { open_with(path, &opts) }
    })
}

/// Open a bundle held in memory (`len` bytes at `data`, e.g. an app asset), validated as
/// untrusted input and copied, so the caller may free `data` on return; `opts` as in
/// [`ferrolite_open_with_options`] (NULL: the defaults). NULL on error.
///
/// # Safety
/// `data` must be NULL or point to `len` readable bytes; `opts` NULL or a valid
/// `FerroliteOptions` whose `cpus` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_open_bytes(
    data: *const u8,
    len: usize,
    opts: *const FerroliteOptions,
) -> *mut FerroliteModel {
    guarded(std::ptr::null_mut(), || {
        if data.is_null() {
            return Err(invalid("data is NULL"));
        }
        // SAFETY: the caller passes `len` readable bytes at `data` (checked non-NULL above).
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        // SAFETY: the caller passes NULL or a valid options struct.
        let opts = unsafe { opts.as_ref() }.copied().unwrap_or_default();
        // SAFETY: forwarded caller contract on `opts.cpus`.
        let options = unsafe { session_options(&opts) }?;
        prepare(bundle::from_bytes(bytes)?, options)
    })
}

/// Free a model from [`ferrolite_open`] or [`ferrolite_open_with_options`] (NULL is
/// ignored).
///
/// # Safety
/// `model` must be NULL or a pointer from `ferrolite_open` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_close(model: *mut FerroliteModel) {
    if !model.is_null() {
        // SAFETY: the pointer came from Box::into_raw in ferrolite_open and is closed once.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
unsafe fn model_ref<'a>(model: *const FerroliteModel) -> Result<&'a FerroliteModel> {
    // SAFETY: per the caller's contract the pointer is NULL or live.
    unsafe { model.as_ref() }.ok_or_else(|| invalid("model is NULL"))
}

/// The kernel tier the model runs on (`"neon"`, `"avx2"`…); "" for NULL.
///
/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_isa(model: *const FerroliteModel) -> *const c_char {
    // SAFETY: forwarded caller contract.
    match unsafe { model_ref(model) } {
        Ok(m) => m.isa.as_ptr(),
        Err(_) => c"".as_ptr(),
    }
}

/// Threads a run uses, the calling one included (0 for NULL).
///
/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_threads(model: *const FerroliteModel) -> i32 {
    // SAFETY: forwarded caller contract.
    unsafe { model_ref(model) }
        .map(|m| i32::try_from(m.session.threads()).unwrap_or(i32::MAX))
        .unwrap_or(0)
}

/// Number of f32 values of the first input (0 for NULL).
///
/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_input_len(model: *const FerroliteModel) -> usize {
    // SAFETY: forwarded caller contract.
    unsafe { model_ref(model) }
        .map(|m| m.session.input_shapes()[0].iter().product())
        .unwrap_or(0)
}

/// Number of f32 values of the first output (0 for NULL).
///
/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_output_len(model: *const FerroliteModel) -> usize {
    // SAFETY: forwarded caller contract.
    unsafe { model_ref(model) }
        .map(|m| m.session.output_shapes()[0].iter().product())
        .unwrap_or(0)
}

/// Class name of output index `index`, or NULL when the bundle has no such label.
///
/// # Safety
/// `model` must be NULL or a live pointer from `ferrolite_open`.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_label(
    model: *const FerroliteModel,
    index: usize,
) -> *const c_char {
    // SAFETY: forwarded caller contract.
    match unsafe { model_ref(model) } {
        Ok(m) => m.labels.get(index).map_or(std::ptr::null(), |l| l.as_ptr()),
        Err(_) => std::ptr::null(),
    }
}

/// Run on one f32 input tensor (`input_len` values, the model's layout) and copy the first
/// output into `output` (`output_len` values). 0 on success, -1 on error.
///
/// # Safety
/// `model` must be NULL or live; `input`/`output` must be NULL or point to
/// `input_len`/`output_len` valid f32 values.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_run(
    model: *mut FerroliteModel,
    input: *const f32,
    input_len: usize,
    output: *mut f32,
    output_len: usize,
) -> i32 {
    guarded(-1, || {
        // SAFETY: the caller passes NULL or a live model, used exclusively for this call.
        let m = unsafe { model.as_mut() }.ok_or_else(|| invalid("model is NULL"))?;
        if input.is_null() || output.is_null() {
            return Err(invalid("input or output is NULL"));
        }
        // SAFETY: the caller guarantees `input_len` readable f32 values at `input`.
        let input = unsafe { std::slice::from_raw_parts(input, input_len) };
        // SAFETY: the caller guarantees `output_len` writable f32 values at `output`.
        let output = unsafe { std::slice::from_raw_parts_mut(output, output_len) };
        run_into(m, input, output)?;
        Ok(0)
    })
}

/// Preprocess an RGB image (8-bit, row-major, `width * height * 3` bytes) with the
/// bundle's recipe (resize, crop, mean/std, layout), run, and copy the first output into
/// `output` (`output_len` values). 0 on success, -1 on error.
///
/// # Safety
/// `model` must be NULL or live; `rgb` must be NULL or point to `width * height * 3` bytes;
/// `output` must be NULL or point to `output_len` writable f32 values.
#[no_mangle]
pub unsafe extern "C" fn ferrolite_classify_rgb(
    model: *mut FerroliteModel,
    rgb: *const u8,
    width: usize,
    height: usize,
    output: *mut f32,
    output_len: usize,
) -> i32 {
    guarded(-1, || {
        // SAFETY: the caller passes NULL or a live model, used exclusively for this call.
        let m = unsafe { model.as_mut() }.ok_or_else(|| invalid("model is NULL"))?;
        if rgb.is_null() || output.is_null() {
            return Err(invalid("rgb or output is NULL"));
        }
        let bytes = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(3))
            .ok_or_else(|| invalid("image size overflows"))?;
        // SAFETY: the caller guarantees `width * height * 3` readable bytes at `rgb`.
        let pixels = unsafe { std::slice::from_raw_parts(rgb, bytes) };
        // SAFETY: the caller guarantees `output_len` writable f32 values at `output`.
        let output = unsafe { std::slice::from_raw_parts_mut(output, output_len) };
        let spec = &m.session.model().meta.inputs[0];
        let pp = spec.preprocess.as_ref().ok_or_else(|| {
            Error::Unsupported("the bundle's input has no image preprocessing recipe".into())
        })?;
        let image = RgbImage {
            width,
            height,
            pixels,
        };
        let input = preprocess::prepare(&image, pp, &spec.shape)?;
        run_into(m, &input, output)?;
        Ok(0)
    })
}

fn run_into(m: &mut FerroliteModel, input: &[f32], output: &mut [f32]) -> Result<()> {
    let want_in: usize = m.session.input_shapes()[0].iter().product();
    let want_out: usize = m.session.output_shapes()[0].iter().product();
    if m.session.input_shapes().len() != 1 {
        return Err(Error::Unsupported(
            "the C interface runs single-input models".into(),
        ));
    }
    if input.len() != want_in {
        return Err(invalid(&format!(
            "input has {} values, the model takes {want_in}",
            input.len()
        )));
    }
    if output.len() != want_out {
        return Err(invalid(&format!(
            "output has room for {} values, the model produces {want_out}",
            output.len()
        )));
    }
    m.session.run(&[input])?;
    let produced = m
        .session
        .output(0)
        .ok_or_else(|| invalid("the model has no output"))?;
    output.copy_from_slice(produced);
    Ok(())
}
