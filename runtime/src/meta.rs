//! Bundle metadata: what the model is, how to feed it and how to read its outputs.

use serde::{Deserialize, Serialize};

/// Numeric precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Int8,
}

/// Channel order of the image fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
}

/// Memory layout of the model's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageLayout {
    #[default]
    Nchw,
    Nhwc,
}

/// How to turn an image into the input tensor: resize the shorter side, center-crop, then
/// `(pixel - mean) / std` per channel with pixels in 0..=255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Resize so the shorter side has this length (bilinear, antialiased), keeping aspect.
    #[serde(default)]
    pub resize_shorter: Option<u32>,
    /// Center crop `[height, width]` after resizing; when absent the image is resized to the
    /// input's spatial size directly.
    #[serde(default)]
    pub crop: Option<[u32; 2]>,
    /// Per-channel mean, in pixel units (0..=255), in model channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in pixel units.
    pub std: [f32; 3],
    #[serde(default)]
    pub color: ColorOrder,
    #[serde(default)]
    pub layout: ImageLayout,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            resize_shorter: None,
            crop: None,
            mean: [0.0; 3],
            std: [255.0; 3],
            color: ColorOrder::Rgb,
            layout: ImageLayout::Nchw,
        }
    }
}

/// Description of one model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<usize>,
    /// Image preprocessing, when the input is an image.
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
}

/// Description of one model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Everything about a bundle except its graph and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metadata {
    pub model_name: String,
    /// Tool and version that wrote the bundle, e.g. `ferrolite 0.1.0`.
    pub producer: String,
    pub precision: Precision,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Class names in output index order; empty when unknown.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Free-form records (calibration, accuracy) added by later tools.
    #[serde(default)]
    pub records: std::collections::BTreeMap<String, serde_json::Value>,
}
