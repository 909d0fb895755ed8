//! `ferrolite.convert` and `Model("model.onnx")`: the CLI's converter
//! (`ferrolite_quantize::pipeline`) on host builds. Device wheels are built without the
//! `convert` feature (no tract inside) and say so when given an ONNX file.

use std::path::{Path, PathBuf};

use ferrolite_runtime as rt;
use pyo3::prelude::*;

use crate::input_err;

/// The model a `Model(source)` names: a bundle as it is, an ONNX file (or ONNX bytes)
/// converted in memory with the converter's defaults (fp32; a QDQ model to int8).
pub fn open(py: Python<'_>, source: &Bound<'_, PyAny>) -> PyResult<rt::Model> {
    if let Ok(b) = source.cast::<pyo3::types::PyBytes>() {
        let bytes = b.as_bytes();
        if rt::bundle::looks_like_bundle(bytes) {
            return py
                .detach(|| rt::Model::from_bytes(bytes))
                .map_err(crate::to_py);
        }
        return onnx_bytes(py, bytes);
    }
    let path: PathBuf = source.extract().map_err(|_| {
        input_err("a model is a path to a .flb bundle or an .onnx file, or its bytes".into())
    })?;
    if rt::bundle::is_bundle_file(&path).map_err(crate::to_py)? {
        return py.detach(|| rt::Model::open(&path)).map_err(crate::to_py);
    }
    onnx_file(py, &path)
}

#[cfg(feature = "convert")]
mod host {
    use std::path::{Path, PathBuf};

    use ferrolite_quantize::calibrate::CalibMethod;
    use ferrolite_quantize::pipeline::{self, Observer};
    pub use ferrolite_quantize::pipeline::{Request, Spelling};
    use ferrolite_runtime as rt;
    use ferrolite_runtime::meta::Precision;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use crate::{input_err, to_py, to_python_value, ModelError, UnsupportedError};

    /// The Python exception for a converter error: the runtime's own class when one is in
    /// the chain, `NotFoundError` for a missing file, `UnsupportedError` for an operator or
    /// form the converter does not take, else `ModelError` (the ONNX file is at fault).
    pub fn to_py_anyhow(e: anyhow::Error) -> PyErr {
        let msg = format!("{e:#}");
        for cause in e.chain() {
            if let Some(r) = cause.downcast_ref::<rt::Error>() {
                return crate::class_err(r, msg);
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                let kind = io.kind();
                let r = rt::Error::Io {
                    context: String::new(),
                    cause: std::io::Error::from(kind),
                };
                return crate::class_err(&r, msg);
            }
        }
        if msg.contains("not supported") || msg.contains("unsupported") {
            return UnsupportedError::new_err(msg);
        }
        ModelError::new_err(msg)
    }

    /// Progress to a Python callable, Ctrl-C checked at every step; a Python error (the
    /// callable's, or KeyboardInterrupt) stops the conversion and is raised as it is.
    pub struct PyProgress {
        pub callback: Option<Py<PyAny>>,
        pub stage: String,
        pub done: usize,
        pub total: usize,
        pub error: Option<PyErr>,
    }

    impl PyProgress {
        pub fn new(callback: Option<Py<PyAny>>) -> PyProgress {
            PyProgress {
                callback,
                stage: String::new(),
                done: 0,
                total: 0,
                error: None,
            }
        }

        fn call(&mut self) -> anyhow::Result<()> {
            let r = Python::attach(|py| {
                py.check_signals()?;
                match &self.callback {
                    Some(cb) => cb
                        .call1(py, (self.stage.as_str(), self.done, self.total))
                        .map(drop),
                    None => Ok(()),
                }
            });
            r.map_err(|e| {
                self.error = Some(e);
                anyhow::anyhow!("stopped by Python")
            })
        }
    }

    impl Observer for PyProgress {
        fn begin(&mut self, stage: &str, total: usize) {
            self.stage = stage.to_string();
            self.done = 0;
            self.total = total;
        }

        fn step(&mut self) -> anyhow::Result<()> {
            self.done += 1;
            self.call()
        }
    }

    /// One value or a list of them.
    #[derive(FromPyObject)]
    pub enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }

    impl<T> OneOrMany<T> {
        /// The values as a list.
        pub fn into_vec(self) -> Vec<T> {
            match self {
                OneOrMany::One(v) => vec![v],
                OneOrMany::Many(v) => v,
            }
        }
    }

    /// The precision a `precision=` keyword names.
    pub fn precision(p: Option<&str>) -> PyResult<Option<Precision>> {
        match p {
            None => Ok(None),
            Some("fp32") => Ok(Some(Precision::Fp32)),
            Some("fp16") => Ok(Some(Precision::Fp16)),
            Some("int8") => Ok(Some(Precision::Int8)),
            Some(other) => Err(input_err(format!(
                "precision={other:?}: use \"fp32\", \"fp16\" or \"int8\""
            ))),
        }
    }

    /// The calibration method a `calib_method=` keyword names.
    pub fn calib_method(m: &str) -> PyResult<CalibMethod> {
        CalibMethod::from_name(m).ok_or_else(|| {
            let names: Vec<_> = CalibMethod::ALL.iter().map(|m| m.name()).collect();
            input_err(format!(
                "calib_method={m:?}: use one of {}",
                names.join(", ")
            ))
        })
    }

    /// Run the conversion with the GIL released, progress and Ctrl-C through `progress`.
    /// `context`, when given, says what the model file stands for in an error message.
    pub fn run(
        py: Python<'_>,
        request: &Request,
        progress: &mut PyProgress,
        context: Option<&str>,
    ) -> PyResult<pipeline::Converted> {
        let r = py.detach(|| pipeline::convert(request, progress));
        match (r, progress.error.take()) {
            (_, Some(e)) => Err(e),
            (Ok(done), None) => Ok(done),
            (Err(e), None) => Err(to_py_anyhow(match context {
                Some(c) => e.context(c.to_string()),
                None => e,
            })),
        }
    }

    /// Convert, write the bundle at `output` (whole or not at all) and describe the result.
    pub fn convert_to(
        py: Python<'_>,
        request: Request,
        output: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        rt::bundle::refuse_overwriting(&output, &[&request.model]).map_err(to_py)?;
        let mut progress = PyProgress::new(progress);
        let done = run(py, &request, &mut progress, None)?;
        py.detach(|| rt::bundle::save(&done.model, &output))
            .map_err(to_py)?;
        let m = &done.model;
        let d = PyDict::new(py);
        d.set_item("path", output.display().to_string())?;
        d.set_item("bytes", std::fs::metadata(&output).map(|m| m.len()).ok())?;
        d.set_item("ops", m.graph.nodes.len())?;
        d.set_item("weights_bytes", m.weights.bytes().len())?;
        d.set_item("precision", m.meta.precision.to_string())?;
        d.set_item("notes", &done.notes)?;
        d.set_item("skipped", &done.skipped)?;
        d.set_item("records", to_python_value(py, &m.meta.records)?)?;
        if !done.skipped.is_empty() {
            let msg = format!(
                "{} of {} images could not be read and were skipped (the report's \
                 \"skipped\" names them; strict=True stops at the first)",
                done.skipped.len(),
                done.images_seen
            );
            let warning = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            PyErr::warn(py, &warning, &std::ffi::CString::new(msg)?, 1)?;
        }
        Ok(d.into_any().unbind())
    }

    /// An ONNX file converted in memory with the defaults; `context` as for [`run`].
    pub fn onnx_model(py: Python<'_>, path: &Path, context: Option<&str>) -> PyResult<rt::Model> {
        let request = Request {
            spelling: Spelling::Keywords,
            ..Request::new(path)
        };
        let mut progress = PyProgress::new(None);
        Ok(run(py, &request, &mut progress, context)?.model)
    }
}

#[cfg(feature = "convert")]
fn onnx_file(py: Python<'_>, path: &Path) -> PyResult<rt::Model> {
    host::onnx_model(py, path, None)
}

#[cfg(feature = "convert")]
fn onnx_bytes(py: Python<'_>, bytes: &[u8]) -> PyResult<rt::Model> {
    let dir = std::env::temp_dir();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("ferrolite-{}-{n}.onnx", std::process::id()));
    /// Removes the temporary file however the conversion ends.
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    std::fs::write(&path, bytes)
        .map_err(|cause| rt::Error::Io {
            context: format!("cannot write the ONNX bytes to {}", path.display()),
            cause,
        })
        .map_err(crate::to_py)?;
    let _remove = Remove(&path);
    let context = "the bytes are not a Ferrolite bundle, so they were read as ONNX";
    host::onnx_model(py, &path, Some(context))
}

#[cfg(not(feature = "convert"))]
fn no_converter(what: String) -> PyErr {
    crate::UnsupportedError::new_err(format!(
        "{what} is not a Ferrolite bundle, and this build of the package has no ONNX \
         converter (device wheels leave it out): convert it on a host with \
         ferrolite.convert(...) or `ferrolite convert`, then copy the .flb"
    ))
}

#[cfg(not(feature = "convert"))]
fn onnx_file(_py: Python<'_>, path: &Path) -> PyResult<rt::Model> {
    Err(no_converter(path.display().to_string()))
}

#[cfg(not(feature = "convert"))]
fn onnx_bytes(_py: Python<'_>, _bytes: &[u8]) -> PyResult<rt::Model> {
    Err(no_converter("the given bytes".into()))
}

/// Convert an ONNX model to a `.flb` bundle, as `ferrolite convert` does; returns a report.
///
/// convert(model, output, precision=None, calib=None, calib_count=100,
///         calib_method="percentile", eval=None, input_shape=None, mean=None, std=None,
///         resize=None, crop=None, bgr=False, labels=None, name=None, strict=False,
///         progress=None)
///   model: the ONNX file (float, or quantized QDQ, which always imports to int8).
///   output: the bundle path, written whole or not at all (never over `model`).
///   precision: "fp32" (default), "fp16" or "int8" (needs calib).
///   calib: folder of JPEG/PNG calibration images (sub-folders included), for int8;
///          calib_count: how many (the first N by path); calib_method: "minmax",
///          "percentile", "mse" or "kl".
///   eval: folder of images to compare the int8 model with the fp32 one on (top-1
///         agreement, per-layer SQNR, stored in the bundle).
///   input_shape: the first input's shape, for models with symbolic dimensions.
///   mean, std: per-channel (or one) values, pixels 0..255 become (p - mean) / std;
///   resize: shorter side before the center crop; crop: a size or (height, width);
///   bgr: feed channels BGR. The bundle stores this preprocessing for classify.
///   labels: class names, one per line or a TSV whose last column is the name.
///   name: the model's name (default: the file stem).
///   strict: stop at the first unreadable image (by default it is skipped, named in the
///           report and a RuntimeWarning says how many).
///   progress: called as progress(stage, done, total) during calibration and comparison.
///
/// Returns a dict: path, bytes, ops, weights_bytes, precision, notes (the CLI's report
/// lines), skipped (unreadable images and why), records (what the bundle records).
#[pyfunction]
#[pyo3(signature = (model, output, precision=None, calib=None, calib_count=100,
    calib_method="percentile".to_string(), eval=None, input_shape=None, mean=None, std=None,
    resize=None, crop=None, bgr=false, labels=None, name=None, strict=false, progress=None))]
#[allow(clippy::too_many_arguments)]
#[cfg(feature = "convert")]
pub fn convert(
    py: Python<'_>,
    model: PathBuf,
    output: PathBuf,
    precision: Option<String>,
    calib: Option<PathBuf>,
    calib_count: usize,
    calib_method: String,
    eval: Option<PathBuf>,
    input_shape: Option<Vec<usize>>,
    mean: Option<host::OneOrMany<f32>>,
    std: Option<host::OneOrMany<f32>>,
    resize: Option<u32>,
    crop: Option<host::OneOrMany<u32>>,
    bgr: bool,
    labels: Option<PathBuf>,
    name: Option<String>,
    strict: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let request = host::Request {
        model,
        input_shape,
        mean: mean.map(host::OneOrMany::into_vec),
        std: std.map(host::OneOrMany::into_vec),
        resize,
        crop: crop.map(host::OneOrMany::into_vec),
        bgr,
        labels,
        name,
        precision: host::precision(precision.as_deref())?,
        calib,
        calib_count,
        calib_method: host::calib_method(&calib_method)?,
        eval,
        strict,
        spelling: host::Spelling::Keywords,
    };
    host::convert_to(py, request, output, progress)
}

/// Without the converter: the same signature, an UnsupportedError.
#[pyfunction]
#[pyo3(signature = (model, output, **_options))]
#[cfg(not(feature = "convert"))]
pub fn convert(
    model: PathBuf,
    output: PathBuf,
    _options: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<Py<PyAny>> {
    let _ = output;
    Err(crate::UnsupportedError::new_err(format!(
        "cannot convert {}: this build of the package has no ONNX converter (device wheels \
         leave it out); convert on a host and copy the .flb",
        model.display()
    )))
}
