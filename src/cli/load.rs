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
        ModelSource::Path(p) => open_path(p, input_shape, false)?,
    };
    Ok(Arc::new(model))
}

/// Load a model with its operators as authored: ONNX and zoo models are converted without
/// the graph fusions (BatchNorm and activations stay separate layers); a bundle is as stored.
pub fn open_unfused(source: &ModelSource, input_shape: Option<&[usize]>) -> Result<Arc<Model>> {
    let model = match source {
        ModelSource::Default => open_default()?,
        ModelSource::Path(p) => open_path(p, input_shape, true)?,
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

/// Per-channel mean of 0..255 pixels stored with zoo models (ImageNet's, as torchvision's
/// classifiers expect).
#[cfg(feature = "onnx")]
const ZOO_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// Per-channel divisor stored with zoo models (ImageNet's).
#[cfg(feature = "onnx")]
const ZOO_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// Synthetic images int8 zoo models are calibrated on.
#[cfg(feature = "onnx")]
pub const ZOO_CALIBRATION_IMAGES: usize = 4;

#[cfg(feature = "onnx")]
fn open_zoo(spec: &str, input_shape: Option<&[usize]>, unfused: bool) -> Result<Model> {
    if input_shape.is_some() {
        bail!("--input-shape does not apply to zoo models: use zoo:NAME?resolution=R");
    }
    let zoo = write_zoo_onnx(spec)?;
    if unfused {
        let opts = ferrolite_quantize::ConvertOptions {
            model_name: Some(format!("zoo:{}", zoo.model.spec())),
            unfused: true,
            ..Default::default()
        };
        return ferrolite_quantize::convert_onnx(&zoo.path, &opts)
            .with_context(|| format!("cannot convert zoo model {spec}"));
    }
    convert_zoo(&zoo, ferrolite_runtime::meta::Precision::Fp32)
}

/// Convert a zoo model written by [`write_zoo_onnx`] with weights at `precision`. int8 is
/// post-training quantization calibrated (percentile ranges) on [`ZOO_CALIBRATION_IMAGES`]
/// deterministic [`synthetic_images`]: the weights are random, so only speed is meaningful.
#[cfg(feature = "onnx")]
pub fn convert_zoo(zoo: &ZooOnnx, precision: ferrolite_runtime::meta::Precision) -> Result<Model> {
    use ferrolite_quantize::calibrate::{calibrate, CalibMethod};
    use ferrolite_quantize::int8::{quantize_model, split_activations};
    use ferrolite_runtime::meta::Precision;

    let spec = zoo.model.spec();
    let int8 = precision == Precision::Int8;
    let opts = ferrolite_quantize::ConvertOptions {
        model_name: Some(format!("zoo:{spec}")),
        preprocess: Some(ferrolite_runtime::meta::Preprocess {
            mean: ZOO_MEAN,
            std: ZOO_STD,
            ..Default::default()
        }),
        precision: if int8 { Precision::Fp32 } else { precision },
        ..Default::default()
    };
    let model = ferrolite_quantize::convert_onnx(&zoo.path, &opts)
        .with_context(|| format!("cannot convert zoo model {spec}"))?;
    if !int8 {
        return Ok(model);
    }
    let inputs = synthetic_images(&zoo.model.input_shape(), ZOO_CALIBRATION_IMAGES);
    let method = CalibMethod::Percentile;
    let model = split_activations(&model);
    let ranges = calibrate(&model, &inputs, method, || Ok(()))
        .with_context(|| format!("cannot calibrate zoo model {spec}"))?;
    let mut quantized = quantize_model(&model, &ranges)
        .with_context(|| format!("cannot quantize zoo model {spec} to int8"))?
        .model;
    quantized.meta.records.insert(
        "calibration".into(),
        serde_json::json!({
            "method": method.name(),
            "images": inputs.len(),
            "source": "synthetic: seeded uniform pixels, ImageNet mean/std",
        }),
    );
    Ok(quantized)
}

/// Without the converter, zoo models cannot be built into runnable models.
#[cfg(not(feature = "onnx"))]
pub fn convert_zoo(zoo: &ZooOnnx, _precision: ferrolite_runtime::meta::Precision) -> Result<Model> {
    open_zoo(&zoo.model.spec(), None, false)
}

/// `count` deterministic calibration inputs of NCHW `shape`: uniform pseudo-random pixels in
/// 0..=255 (a fixed xorshift stream per image), normalised with the zoo's ImageNet mean/std.
#[cfg(feature = "onnx")]
pub fn synthetic_images(shape: &[usize], count: usize) -> Vec<Vec<f32>> {
    let channels = shape.get(1).copied().unwrap_or(1).max(1);
    let plane: usize = shape.iter().skip(2).product();
    (0..count)
        .map(|image| {
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (image as u64 + 1);
            (0..shape.iter().product::<usize>())
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let pixel = (state >> 56) as f32;
                    let c = (i / plane.max(1)) % channels;
                    (pixel - ZOO_MEAN[c % 3]) / ZOO_STD[c % 3]
                })
                .collect()
        })
        .collect()
}

#[cfg(not(feature = "onnx"))]
fn open_zoo(spec: &str, _input_shape: Option<&[usize]>, _unfused: bool) -> Result<Model> {
    ferrolite_models::zoo::find(spec)?;
    bail!(
        "zoo:{spec} needs the ONNX converter, which this device build leaves out: on a host, \
         `ferrolite zoo export {spec} -o model.flb`, then copy the bundle"
    )
}

fn open_path(path: &Path, input_shape: Option<&[usize]>, unfused: bool) -> Result<Model> {
    if let Some(spec) = zoo_spec(path) {
        return open_zoo(spec, input_shape, unfused);
    }
    if bundle::is_bundle_file(path)? {
        if input_shape.is_some() {
            bail!("--input-shape applies to ONNX models; a bundle's shapes are fixed");
        }
        return bundle::load(path)
            .with_context(|| format!("cannot load bundle {}", path.display()));
    }
    open_onnx(path, input_shape, unfused)
}

#[cfg(feature = "onnx")]
fn open_onnx(path: &Path, input_shape: Option<&[usize]>, unfused: bool) -> Result<Model> {
    let opts = ferrolite_quantize::ConvertOptions {
        input_shape: input_shape.map(|s| s.to_vec()),
        unfused,
        ..Default::default()
    };
    ferrolite_quantize::convert_onnx(path, &opts)
}

#[cfg(not(feature = "onnx"))]
fn open_onnx(path: &Path, _input_shape: Option<&[usize]>, _unfused: bool) -> Result<Model> {
    bail!(
        "{} is not a Ferrolite bundle, and this build has no ONNX import (feature `onnx`): \
         convert it on a host with `ferrolite convert`",
        path.display()
    )
}
