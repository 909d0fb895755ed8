//! `ferrolite.zoo`: the architectures built in code (`ferrolite zoo`), listed and exported as
//! ONNX with the same seeded weights as the CLI's `zoo:NAME`.

use std::path::PathBuf;

use ferrolite_models::zoo;
use ferrolite_runtime as rt;
use pyo3::prelude::*;

use crate::{input_err, to_py, to_python_value};

/// Every architecture as a dict: name, params, macs, input, options, paper (the objects of
/// `ferrolite zoo list --json`).
#[pyfunction]
pub fn zoo_list(py: Python<'_>) -> PyResult<Py<PyAny>> {
    to_python_value(py, &zoo::catalog())
}

/// Write architecture `name` (`NAME` or `NAME?width=W&resolution=R`) as an ONNX file at
/// `path` (written whole or not at all); returns its parameter count.
#[pyfunction]
pub fn zoo_export(py: Python<'_>, name: &str, path: PathBuf) -> PyResult<u64> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return Err(input_err(format!(
            "{}: the zoo exports ONNX here, so the name must end in .onnx (make a bundle \
             with `ferrolite zoo export NAME -o FILE.flb` or `ferrolite convert`)",
            path.display()
        )));
    }
    let model = zoo::find(name).map_err(|e| input_err(e.to_string()))?;
    py.detach(|| {
        let built = model.onnx(zoo::SEED);
        let bytes = built
            .onnx
            .ok_or_else(|| rt::Error::Unsupported(format!("{name} has no ONNX form")))?;
        rt::bundle::write_atomically(&path, &bytes)?;
        Ok(built.params)
    })
    .map_err(to_py)
}
