//! `ferrolite convert`: ONNX -> `.flb` bundle with preprocessing and labels.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ferrolite_quantize::{convert_onnx, read_labels, ConvertOptions};
use ferrolite_runtime::bundle;
use ferrolite_runtime::meta::{ColorOrder, Precision, Preprocess};

use super::{parse_list, parse_shape};

/// Arguments of `ferrolite convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// ONNX model to convert.
    model: PathBuf,
    /// Output bundle path.
    #[arg(short, long)]
    output: PathBuf,
    /// Shape of the first input, for models with symbolic dimensions (e.g. 1,3,48,192).
    #[arg(long, value_parser = parse_shape)]
    input_shape: Option<::std::vec::Vec<usize>>,
    /// Per-channel mean subtracted from 0..255 pixels (e.g. 127,127,127 or 123.675,116.28,103.53).
    #[arg(long, value_parser = parse_list::<f32>)]
    mean: Option<::std::vec::Vec<f32>>,
    /// Per-channel divisor applied after the mean (e.g. 128,128,128 or 58.395,57.12,57.375).
    #[arg(long, value_parser = parse_list::<f32>)]
    std: Option<::std::vec::Vec<f32>>,
    /// Resize the shorter image side to this many pixels before cropping.
    #[arg(long)]
    resize: Option<u32>,
    /// Center-crop size after resizing (a square, or HxW as `48,192`).
    #[arg(long, value_parser = parse_list::<u32>)]
    crop: Option<::std::vec::Vec<u32>>,
    /// Feed channels in BGR order instead of RGB.
    #[arg(long)]
    bgr: bool,
    /// Class names: one per line, or a TSV whose last column is the name.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Model name stored in the bundle (default: the file stem).
    #[arg(long)]
    name: Option<String>,
    /// Storage precision of the weights: fp32, or fp16 (half the size; widened to f32 at load).
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    precision: PrecisionArg,
}

/// Weight precisions `convert` can write.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PrecisionArg {
    Fp32,
    Fp16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
        }
    }
}

fn triple(v: &Option<Vec<f32>>, default: f32, what: &str) -> Result<[f32; 3]> {
    match v.as_deref() {
        None => Ok([default; 3]),
        Some([x]) => Ok([*x; 3]),
        Some([a, b, c]) => Ok([*a, *b, *c]),
        Some(other) => bail!("--{what} takes 1 or 3 values, got {}", other.len()),
    }
}

/// Run the conversion and write the bundle.
pub fn run(a: ConvertArgs) -> Result<()> {
    let image_flags =
        a.mean.is_some() || a.std.is_some() || a.resize.is_some() || a.crop.is_some() || a.bgr;
    let preprocess = if image_flags {
        let std = triple(&a.std, 255.0, "std")?;
        if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            bail!("--std values must be finite and non-zero");
        }
        let crop = match a.crop.as_deref() {
            None => None,
            Some([s]) => Some([*s, *s]),
            Some([h, w]) => Some([*h, *w]),
            Some(other) => bail!("--crop takes 1 or 2 values, got {}", other.len()),
        };
        Some(Preprocess {
            resize_shorter: a.resize,
            crop,
            mean: triple(&a.mean, 0.0, "mean")?,
            std,
            color: if a.bgr {
                ColorOrder::Bgr
            } else {
                ColorOrder::Rgb
            },
            ..Default::default()
        })
    } else {
        None
    };
    let labels = match &a.labels {
        Some(p) => read_labels(p)?,
        None => Vec::new(),
    };
    let opts = ConvertOptions {
        input_shape: a.input_shape.clone(),
        preprocess,
        labels,
        model_name: a.name.clone(),
        precision: a.precision.into(),
    };
    let model = convert_onnx(&a.model, &opts)?;
    bundle::save(&model, &a.output)
        .with_context(|| format!("cannot write bundle {}", a.output.display()))?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    out!(
        "wrote {} ({:.2} MB): {} ops, {:.2} MB of weights, precision {:?}",
        a.output.display(),
        size as f64 / 1e6,
        model.graph.nodes.len(),
        model.weights.bytes().len() as f64 / 1e6,
        model.meta.precision
    )?;
    Ok(())
}
