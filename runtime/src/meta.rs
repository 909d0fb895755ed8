//! Bundle metadata: what the model is, how to feed it and how to read its outputs.

use serde::{Deserialize, Serialize};

/// Numeric precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    Fp32,
    /// Half floats, widened to fp32 when the bundle is loaded.
    Fp16,
    /// 8-bit integers with per-channel scales, run by the int8 kernels.
    Int8,
}

/// Channel order of the image fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (OpenCV- and Caffe-trained models).
    Bgr,
}

/// Memory layout of the model's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageLayout {
    /// Channels first (ONNX).
    #[default]
    Nchw,
    /// Channels last (TFLite).
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
    /// Channel order the model expects.
    #[serde(default)]
    pub color: ColorOrder,
    /// Memory layout of the image input.
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

impl std::fmt::Display for Precision {
    /// The name the CLI takes and prints: `fp32`, `fp16`, `int8`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        })
    }
}

impl std::fmt::Display for Preprocess {
    /// One line for people: `resize shorter side to 256, crop 224x224, mean 123.7,116.3,103.5,
    /// std 58.4,57.1,57.4, RGB, NCHW`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let three = |v: &[f32; 3]| {
            v.iter()
                .map(|x| format!("{}", (x * 1000.0).round() / 1000.0))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self.resize_shorter {
            Some(r) => write!(f, "resize shorter side to {r}, ")?,
            None => f.write_str("resize to the input size, ")?,
        }
        if let Some([h, w]) = self.crop {
            write!(f, "center crop {h}x{w}, ")?;
        }
        let color = match self.color {
            ColorOrder::Rgb => "RGB",
            ColorOrder::Bgr => "BGR",
        };
        let layout = match self.layout {
            ImageLayout::Nchw => "NCHW",
            ImageLayout::Nhwc => "NHWC",
        };
        write!(
            f,
            "mean {}, std {}, {color}, {layout}",
            three(&self.mean),
            three(&self.std)
        )
    }
}

/// The metadata record holding the class ids (WordNet ids such as `n01443537`) of an
/// `index<TAB>wnid<TAB>name` labels file, one per label, so `eval` can match file and folder
/// names to outputs without the class list.
pub const LABEL_IDS_RECORD: &str = "label_ids";

/// The metadata record holding the source model's parameter and MAC counts
/// ([`crate::summary::Counts`]), written by `convert`, so a bundle reports the counts of the
/// model it came from rather than of its folded graph.
pub const COUNTS_RECORD: &str = "counts";

/// A shape as people write it: `1x3x224x224` (`scalar` for rank 0).
pub fn shape_text(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// Description of one model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The input's name in the source model.
    pub name: String,
    /// Its shape, batch first.
    pub shape: Vec<usize>,
    /// Image preprocessing, when the input is an image.
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
}

/// Description of one model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The output's name in the source model.
    pub name: String,
    /// Its shape, batch first.
    pub shape: Vec<usize>,
}

/// Everything about a bundle except its graph and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// The model's name (the source file's stem unless `convert --name` set it).
    pub model_name: String,
    /// Tool and version that wrote the bundle, e.g. `ferrolite 0.1.0`.
    pub producer: String,
    /// Precision of the stored weights.
    pub precision: Precision,
    /// The model inputs, in order.
    pub inputs: Vec<InputSpec>,
    /// The model outputs, in order.
    pub outputs: Vec<OutputSpec>,
    /// Class names in output index order; empty when unknown.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Free-form records (calibration, accuracy) added by later tools.
    #[serde(default)]
    pub records: std::collections::BTreeMap<String, serde_json::Value>,
}
