//! Opening a model given on the command line: a `.flb` bundle (memory-mapped), an ONNX
//! file (converted in memory), a zoo architecture (`zoo:NAME`, built and converted in
//! memory) or the default bundle embedded in the binary.

use std::path::{Path, PathBuf};
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

/// The zoo spelling of a model argument: `zoo:NAME[?options]` gives `NAME[?options]`.
pub fn zoo_spec(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix("zoo:")
}

/// A zoo model written as a temporary ONNX file (for the converter and the peers), removed
/// when dropped.
pub struct ZooOnnx {
    pub path: PathBuf,
    pub model: ferrolite_models::zoo::ZooModel,
}

impl Drop for ZooOnnx {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Build the zoo model `spec` with the zoo's fixed seed and write it as ONNX.
pub fn write_zoo_onnx(spec: &str) -> Result<ZooOnnx> {
    let model = ferrolite_models::zoo::find(spec)?;
    let built = model.onnx(ferrolite_models::zoo::SEED);
    let file: String = model
        .spec()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path =
        std::env::temp_dir().join(format!("ferrolite-zoo-{}-{file}.onnx", std::process::id()));
    let bytes = built.onnx.expect("a build with weights yields ONNX");
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ZooOnnx { path, model })
}

#[cfg(feature = "onnx")]
fn open_zoo(spec: &str, input_shape: Option<&[usize]>) -> Result<Model> {
    if input_shape.is_some() {
        bail!("--input-shape does not apply to zoo models: use zoo:NAME?resolution=R");
    }
    let zoo = write_zoo_onnx(spec)?;
    let opts = ferrolite_quantize::ConvertOptions {
        model_name: Some(format!("zoo:{}", zoo.model.spec())),
        preprocess: Some(ferrolite_runtime::meta::Preprocess {
            mean: [123.675, 116.28, 103.53],
            std: [58.395, 57.12, 57.375],
            ..Default::default()
        }),
        ..Default::default()
    };
    ferrolite_quantize::convert_onnx(&zoo.path, &opts)
        .with_context(|| format!("cannot convert zoo model {spec}"))
}

#[cfg(not(feature = "onnx"))]
fn open_zoo(spec: &str, _input_shape: Option<&[usize]>) -> Result<Model> {
    ferrolite_models::zoo::find(spec)?;
    bail!(
        "zoo:{spec} needs the ONNX converter, which this device build leaves out: on a host, \
         `ferrolite zoo export {spec} -o model.flb`, then copy the bundle"
    )
}

fn open_path(path: &Path, input_shape: Option<&[usize]>) -> Result<Model> {
    if let Some(spec) = zoo_spec(path) {
        return open_zoo(spec, input_shape);
    }
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
