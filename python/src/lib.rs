//! The native part of the `ferrolite` Python package: a thin layer over the runtime's
//! high-level API (`Model`, `Session`, `Classifier`, `image::decode_*`). Python threads may
//! share one `Model`: each call takes an idle session (or makes one) and releases the GIL
//! while it runs.

mod convert;
mod zoo;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferrolite_runtime as rt;
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyException, PyFileNotFoundError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

pyo3::create_exception!(
    ferrolite,
    Error,
    PyException,
    "Every failure of ferrolite raises this or a subclass of it."
);
pyo3::create_exception!(
    ferrolite,
    ModelError,
    Error,
    "The model (bundle) is malformed, corrupted or inconsistent."
);
pyo3::create_exception!(
    ferrolite,
    InputError,
    Error,
    "An input does not fit the model (shape, size, type) or an image cannot be decoded."
);
pyo3::create_exception!(
    ferrolite,
    UnsupportedError,
    Error,
    "The model needs something this runtime does not implement."
);
pyo3::create_exception!(
    ferrolite,
    LimitError,
    Error,
    "The model or image needs more memory than the limit allows."
);

/// `NotFoundError(Error, FileNotFoundError)`, made at import (two bases).
static NOT_FOUND: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn not_found_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    NOT_FOUND
        .get_or_try_init(py, || {
            let bases = (py.get_type::<Error>(), py.get_type::<PyFileNotFoundError>());
            let doc = PyDict::new(py);
            doc.set_item("__doc__", "A file (model, image) does not exist.")?;
            doc.set_item("__module__", "ferrolite")?;
            let t = py
                .import("builtins")?
                .getattr("type")?
                .call1(("NotFoundError", bases, doc))?;
            Ok::<_, PyErr>(t.cast_into::<PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

/// The Python exception for a runtime error.
fn to_py(e: rt::Error) -> PyErr {
    let msg = e.to_string();
    class_err(&e, msg)
}

/// The exception of `e`'s class carrying `msg` (which may say more than `e` alone).
fn class_err(e: &rt::Error, msg: String) -> PyErr {
    match e {
        rt::Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            Python::attach(|py| match not_found_type(py) {
                Ok(t) => PyErr::from_type(t.clone(), (2, msg)),
                Err(err) => err,
            })
        }
        rt::Error::Io { .. } => Error::new_err(msg),
        rt::Error::Bundle(_) | rt::Error::Graph { .. } => ModelError::new_err(msg),
        rt::Error::Input(_) | rt::Error::Image(_) => InputError::new_err(msg),
        rt::Error::Unsupported(_) => UnsupportedError::new_err(msg),
        rt::Error::Limit(_) => LimitError::new_err(msg),
    }
}

/// Output `i` of the session's last run, copied.
fn output_values(s: &rt::Session, i: usize) -> rt::Result<Vec<f32>> {
    s.output(i)
        .map(<[f32]>::to_vec)
        .ok_or_else(|| rt::Error::Unsupported(format!("the model has no output {i}")))
}

fn input_err(msg: String) -> PyErr {
    InputError::new_err(msg)
}

/// A serializable value as the Python object `json.loads` makes of it (dicts, lists, ...).
fn to_python_value(py: Python<'_>, value: &impl serde::Serialize) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| Error::new_err(format!("cannot describe the result: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// One input or output of a model: name, shape (batch first, NCHW for images) and dtype.
#[pyclass(module = "ferrolite", frozen, get_all)]
#[derive(Clone)]
struct TensorInfo {
    /// The tensor's name in the source model.
    name: String,
    /// Its shape, a tuple of ints.
    shape: Vec<usize>,
    /// The type the model computes it in (`float32`, `float16`, `int8`, `uint8`, `int32`);
    /// `run` always takes and returns float32 values.
    dtype: String,
}

#[pymethods]
impl TensorInfo {
    fn __repr__(&self) -> String {
        format!(
            "TensorInfo(name={:?}, shape={:?}, dtype={:?})",
            self.name, self.shape, self.dtype
        )
    }
}

fn dtype_name(d: rt::DType) -> &'static str {
    match d {
        rt::DType::F32 => "float32",
        rt::DType::F16 => "float16",
        rt::DType::I8 => "int8",
        rt::DType::U8 => "uint8",
        rt::DType::I32 => "int32",
    }
}

fn infos(v: Vec<rt::TensorInfo>) -> Vec<TensorInfo> {
    v.into_iter()
        .map(|t| TensorInfo {
            name: t.name,
            shape: t.shape,
            dtype: dtype_name(t.dtype).to_string(),
        })
        .collect()
}

/// A loaded `.flb` model, ready to run from any number of Python threads.
///
/// Model(source, threads=None, cpus=None)
///   source: a path (str or os.PathLike) to a .flb bundle or its bytes; on host builds
///           also an .onnx model (or its bytes), converted in memory as `ferrolite run
///           model.onnx` does (fp32; a quantized QDQ model to int8). For int8 with
///           calibration, or to store preprocessing and labels, use ferrolite.convert.
///   threads: threads per run, the calling one included (default: one per big core).
///   cpus: CPUs to run on, a Linux list such as "0-3" or a list of ints (default: the big
///         cores).
#[pyclass(module = "ferrolite", frozen)]
struct Model {
    model: Arc<rt::Model>,
    opts: rt::SessionOptions,
    /// Idle sessions; a call takes one (or makes one) and puts it back.
    idle: Mutex<Vec<rt::Session>>,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    isa: &'static str,
    threads: usize,
}

/// Parse `cpus`: a string in the Linux list syntax or a sequence of ints.
fn parse_cpus(cpus: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<usize>>> {
    let Some(c) = cpus else { return Ok(None) };
    if c.is_none() {
        return Ok(None);
    }
    if let Ok(s) = c.extract::<String>() {
        return rt::threads::topology::parse_cpu_list(&s)
            .map(Some)
            .map_err(input_err);
    }
    c.extract::<Vec<usize>>().map(Some).map_err(|_| {
        input_err("cpus must be a CPU list such as \"0-3,5\" or a list of ints".into())
    })
}

impl Model {
    /// Run `f` on an idle session (made on first need), the GIL released.
    fn with_session<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut rt::Session) -> rt::Result<T> + Send,
    ) -> PyResult<T> {
        let taken = self.idle.lock().ok().and_then(|mut v| v.pop());
        let (model, opts) = (&self.model, &self.opts);
        let (result, session) = py
            .detach(move || {
                let mut session = match taken {
                    Some(s) => s,
                    None => rt::Session::with_options(model.clone(), opts.clone())?,
                };
                let r = f(&mut session);
                Ok::<_, rt::Error>((r, session))
            })
            .map_err(to_py)?;
        if let Ok(mut v) = self.idle.lock() {
            v.push(session);
        }
        result.map_err(to_py)
    }

    /// One input as a float32 C-contiguous buffer of the expected shape: borrowed when the
    /// array already is one, else converted with one copy.
    fn input_values<'py>(
        &self,
        py: Python<'py>,
        i: usize,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
        let want = &self.inputs[i];
        let arr = match x.cast::<PyArrayDyn<f32>>() {
            Ok(a) if a.is_c_contiguous() => a.clone(),
            _ => {
                let np = py.import("numpy")?;
                let kw = PyDict::new(py);
                kw.set_item("dtype", "float32")?;
                let c = np
                    .getattr("ascontiguousarray")?
                    .call((x,), Some(&kw))
                    .map_err(|e| {
                        input_err(format!(
                            "input {:?} cannot be read as float32 values: {e}",
                            want.name
                        ))
                    })?;
                c.cast_into::<PyArrayDyn<f32>>().map_err(|_| {
                    input_err(format!("input {:?} must be a numeric array", want.name))
                })?
            }
        };
        if arr.shape() != want.shape.as_slice() {
            return Err(input_err(format!(
                "input {:?} has shape {:?}; the model takes {:?}",
                want.name,
                arr.shape(),
                want.shape
            )));
        }
        Ok(arr.readonly())
    }

    fn output_array<'py>(&self, py: Python<'py>, i: usize, v: Vec<f32>) -> PyResult<Py<PyAny>> {
        let a = numpy::PyArray1::from_vec(py, v);
        Ok(a.reshape(self.outputs[i].shape.clone())?
            .into_any()
            .unbind())
    }

    /// Classify RGB8 pixels with the bundle's preprocessing.
    fn classify_pixels(
        &self,
        py: Python<'_>,
        width: usize,
        height: usize,
        pixels: &[u8],
        top: usize,
    ) -> PyResult<Vec<(usize, String, f32)>> {
        let image = rt::preprocess::RgbImage {
            width,
            height,
            pixels,
        };
        let pp = rt::classifier::image_preprocess(&self.model, None).map_err(to_py)?;
        let x = rt::preprocess::prepare(&image, &pp, &self.inputs[0].shape).map_err(to_py)?;
        let scores = self.with_session(py, |s| {
            s.run(&[&x])?;
            output_values(s, 0)
        })?;
        Ok(rt::classifier::rank(&scores, &self.model.meta.labels, top)
            .into_iter()
            .map(|c| (c.index, c.label, c.score))
            .collect())
    }
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (source, threads=None, cpus=None))]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        threads: Option<usize>,
        cpus: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if threads == Some(0) {
            return Err(input_err("threads must be at least 1".into()));
        }
        let model = convert::open(py, source)?;
        let opts = rt::SessionOptions {
            threads,
            cpus: parse_cpus(cpus)?,
            ..rt::SessionOptions::default()
        };
        let model = Arc::new(model);
        let session = py
            .detach(|| rt::Session::with_options(model.clone(), opts.clone()))
            .map_err(to_py)?;
        Ok(Model {
            inputs: infos(session.inputs()),
            outputs: infos(session.outputs()),
            isa: session.isa(),
            threads: session.threads(),
            idle: Mutex::new(vec![session]),
            model,
            opts,
        })
    }

    /// The model inputs, a list of TensorInfo.
    #[getter]
    fn inputs(&self) -> Vec<TensorInfo> {
        self.inputs.clone()
    }

    /// The model outputs, a list of TensorInfo.
    #[getter]
    fn outputs(&self) -> Vec<TensorInfo> {
        self.outputs.clone()
    }

    /// The model's name as its bundle records it.
    #[getter]
    fn name(&self) -> String {
        self.model.meta.model_name.clone()
    }

    /// Weights precision of the bundle: "fp32", "fp16" or "int8".
    #[getter]
    fn precision(&self) -> &'static str {
        match self.model.meta.precision {
            rt::Precision::Fp32 => "fp32",
            rt::Precision::Fp16 => "fp16",
            rt::Precision::Int8 => "int8",
        }
    }

    /// Class names in output order (empty when the bundle has none).
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.model.meta.labels.clone()
    }

    /// The image preprocessing stored in the bundle, as a dict, or None.
    #[getter]
    fn preprocess(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self
            .model
            .meta
            .inputs
            .first()
            .and_then(|i| i.preprocess.as_ref())
        {
            None => Ok(py.None()),
            Some(pp) => to_python_value(py, pp),
        }
    }

    /// The kernel tier chosen for this CPU ("avx512", "avx2", "neon", "scalar").
    #[getter]
    fn isa(&self) -> &'static str {
        self.isa
    }

    /// Threads per run, the calling one included.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// Run the model.
    ///
    /// run(x) -> numpy.ndarray: x is the single input (float32 C-contiguous arrays are used
    /// without a copy; other dtypes and strides are converted once). A model with several
    /// outputs returns a list of arrays.
    /// run({name: x, ...}) -> {name: array}: every input by name, every output by name.
    fn run(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let named = x.cast::<PyDict>().ok();
        let mut arrays = Vec::with_capacity(self.inputs.len());
        match &named {
            Some(d) => {
                for (i, info) in self.inputs.iter().enumerate() {
                    let v = d.get_item(&info.name)?.ok_or_else(|| {
                        input_err(format!("no value given for input {:?}", info.name))
                    })?;
                    arrays.push(self.input_values(py, i, &v)?);
                }
                if d.len() != self.inputs.len() {
                    let names: Vec<&str> = self.inputs.iter().map(|t| t.name.as_str()).collect();
                    return Err(input_err(format!(
                        "{} inputs given; the model takes {} ({names:?})",
                        d.len(),
                        self.inputs.len()
                    )));
                }
            }
            None if self.inputs.len() != 1 => {
                return Err(input_err(format!(
                    "the model has {} inputs: pass a dict {{name: array}}",
                    self.inputs.len()
                )))
            }
            None => arrays.push(self.input_values(py, 0, x)?),
        }
        let n_outputs = self.outputs.len();
        let slices = arrays
            .iter()
            .map(|a| a.as_slice().map_err(|e| input_err(e.to_string())))
            .collect::<PyResult<Vec<&[f32]>>>()?;
        let outs = self.with_session(py, |s| {
            s.run(&slices)?;
            (0..n_outputs)
                .map(|i| output_values(s, i))
                .collect::<rt::Result<Vec<_>>>()
        })?;
        let mut arrays = Vec::with_capacity(outs.len());
        for (i, v) in outs.into_iter().enumerate() {
            arrays.push(self.output_array(py, i, v)?);
        }
        if named.is_some() {
            let d = PyDict::new(py);
            for (info, a) in self.outputs.iter().zip(arrays) {
                d.set_item(&info.name, a)?;
            }
            return Ok(d.into_any().unbind());
        }
        if arrays.len() == 1 {
            return Ok(arrays.remove(0));
        }
        Ok(PyList::new(py, arrays)?.into_any().unbind())
    }

    /// classify(image, top=5) -> [(index, label, score), ...], most probable first.
    ///
    /// image: a file path (decoded as the CLI does: libjpeg for JPEG, PIL's pixels), a PIL
    /// image or an HxWx3 uint8 RGB array. The bundle's own preprocessing is applied.
    #[pyo3(signature = (image, top=5))]
    fn classify(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        top: usize,
    ) -> PyResult<Vec<(usize, String, f32)>> {
        if let Ok(path) = image.extract::<PathBuf>() {
            let img = py.detach(|| rt::image::decode_file(&path)).map_err(to_py)?;
            return self.classify_pixels(py, img.width, img.height, &img.pixels, top);
        }
        if image.hasattr("convert")? && image.hasattr("tobytes")? {
            let rgb = image.call_method1("convert", ("RGB",))?;
            let (w, h): (usize, usize) = rgb.getattr("size")?.extract()?;
            let bytes = rgb.call_method0("tobytes")?;
            let bytes = bytes.cast::<PyBytes>()?;
            return self.classify_pixels(py, w, h, bytes.as_bytes(), top);
        }
        if let Ok(a) = image.cast::<PyArrayDyn<u8>>() {
            let shape = a.shape().to_vec();
            if shape.len() != 3 || shape[2] != 3 {
                return Err(input_err(format!(
                    "an image array must be HxWx3 uint8 (RGB); this one has shape {shape:?}"
                )));
            }
            let a = a.readonly();
            let owned;
            let pixels = match a.as_slice() {
                Ok(s) => s,
                Err(_) => {
                    owned = a.as_array().iter().copied().collect::<Vec<u8>>();
                    &owned
                }
            };
            return self.classify_pixels(py, shape[1], shape[0], pixels, top);
        }
        Err(input_err(format!(
            "cannot classify a {}: give a file path, a PIL image or an HxWx3 uint8 array",
            image.get_type().name()?
        )))
    }

    /// classify_batch(images, top=5) -> one classify() result per image.
    #[pyo3(signature = (images, top=5))]
    fn classify_batch(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        top: usize,
    ) -> PyResult<Vec<Vec<(usize, String, f32)>>> {
        images
            .try_iter()?
            .map(|image| self.classify(py, &image?, top))
            .collect()
    }

    /// bench(runs=50, warmup=5) -> dict: latency of one run on deterministic inputs, with the
    /// keys and figures of `ferrolite bench --json`: model, median_ms, p90_ms, min_ms,
    /// max_ms, runs, threads, cpus, pinned, isa.
    #[pyo3(signature = (runs=50, warmup=5))]
    fn bench(&self, py: Python<'_>, runs: usize, warmup: usize) -> PyResult<Py<PyAny>> {
        let report = self.with_session(py, |s| rt::bench(s, warmup, runs))?;
        to_python_value(py, &report)
    }

    fn __repr__(&self) -> String {
        format!(
            "ferrolite.Model({:?}, precision={:?}, isa={:?}, threads={})",
            self.model.meta.model_name,
            self.precision(),
            self.isa,
            self.threads
        )
    }
}

/// Ferrolite: fast CNN inference on mobile-class CPUs (native part).
#[pymodule]
fn _ferrolite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add_class::<TensorInfo>()?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("NotFoundError", not_found_type(py)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(convert::convert, m)?)?;
    m.add_function(wrap_pyfunction!(zoo::zoo_list, m)?)?;
    m.add_function(wrap_pyfunction!(zoo::zoo_export, m)?)?;
    Ok(())
}
