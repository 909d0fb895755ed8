//! Opening a model given on the command line: a `.flb` bundle (memory-mapped), an ONNX
//! file (converted in memory) or the default bundle embedded in the binary.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::{bundle, Model};

use super::ModelSource;

/// Load a model from a bundle or ONNX file.
pub fn open(source: &ModelSource, input_shape: Option<&[usize]>) -> Result<Arc<Model>> {
    let model = match source {
        ModelSource::Default => open_default()?,
        ModelSource::Path(p) => open_path(p, input_shape)?,
    };
    Ok(Arc::new(model))
}

fn open_default() -> Result<Model> {
    match ferrolite_models::default_bundle() {
        Some(bytes) => bundle::from_bytes(bytes).context("the embedded default bundle is invalid"),
        None => bail!(
            "no model given and this binary was built without the embedded default model \
             (feature `default-model`): pass --model MODEL.flb"
        ),
    }
}

fn open_path(path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
    let mut head = [0u8; 16];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("cannot open model {}", path.display()))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!("{} is a directory, not a model file", path.display());
        }
        f.read(&mut head)
            .with_context(|| format!("cannot read model {}", path.display()))?
    };
    if bundle::looks_like_bundle(&head[..n]) {
        if input_shape.is_some() {
            bail!("--input-shape applies to ONNX models; a bundle's shapes are fixed");
        }
        return bundle::load(path)
            .with_context(|| format!("cannot load bundle {}", path.display()));
    }
    open_onnx(path, input_shape)
}

#[cfg(feature = "onnx")]
fn open_onnx(path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
    let opts = ferrolite_quantize::ConvertOptions {
        input_shape: input_shape.map(|s| s.to_vec()),
        ..Default::default()
    };
    ferrolite_quantize::convert_onnx(path, &opts)
}

#[cfg(not(feature = "onnx"))]
fn open_onnx(path: &Path, _input_shape: Option<&[usize]>) -> Result<Model> {
    bail!(
        "{} is not a Ferrolite bundle, and this build has no ONNX import (feature `onnx`): \
         convert it on a host with `ferrolite convert`",
        path.display()
    )
}
