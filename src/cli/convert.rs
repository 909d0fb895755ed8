//! `ferrolite convert`: ONNX -> `.flb` bundle with preprocessing and labels. The work is
//! `ferrolite_quantize::pipeline` (shared with the Python package); this is its flags,
//! progress bars and report lines.

use std::path::PathBuf;

use anyhow::Result;
use ferrolite_quantize::calibrate::CalibMethod;
use ferrolite_quantize::pipeline::{self, Observer, Request, Spelling};
use ferrolite_runtime::bundle;
use indicatif::{ProgressBar, ProgressStyle};

use super::batch::skipped_error;
use super::{parse_list, parse_shape, refuse_overwriting, PrecisionArg};

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
    /// Storage precision: fp32 (the default); fp16 (half the size, widened to f32 at
    /// load); int8 (a quarter of the size, int8 kernels; needs --calib). A quantized (QDQ)
    /// ONNX model always imports to int8 with its own parameters.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// int8: folder of calibration images (JPEG or PNG, sub-folders included).
    #[arg(long)]
    calib: Option<PathBuf>,
    /// int8: how many calibration images to use (the first N in path order).
    #[arg(long, default_value_t = 100)]
    calib_count: usize,
    /// int8: how activation ranges are chosen from the calibration data (percentile, the
    /// default, measured the best top-1 on EfficientNet-Lite0; see docs/quantization.md).
    #[arg(long, value_enum, default_value_t = CalibArg::Percentile)]
    calib_method: CalibArg,
    /// int8 (calibrated or QDQ): compare with the fp32 model on the images of this folder
    /// (top-1 agreement, per-layer SQNR) and store the result in the bundle (`inspect`
    /// shows it).
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Stop at the first calibration or --eval image that cannot be read (by default it is
    /// reported and skipped, the bundle is written from the others and the command fails at
    /// the end).
    #[arg(long)]
    strict: bool,
}

/// Calibration methods (see `ferrolite_quantize::calibrate`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CalibArg {
    Minmax,
    Percentile,
    Mse,
    Kl,
}

impl From<CalibArg> for CalibMethod {
    fn from(c: CalibArg) -> Self {
        match c {
            CalibArg::Minmax => CalibMethod::MinMax,
            CalibArg::Percentile => CalibMethod::Percentile,
            CalibArg::Mse => CalibMethod::Mse,
            CalibArg::Kl => CalibMethod::Kl,
        }
    }
}

impl ConvertArgs {
    /// The conversion the flags ask for.
    fn request(&self) -> Request {
        Request {
            model: self.model.clone(),
            input_shape: self.input_shape.clone(),
            mean: self.mean.clone(),
            std: self.std.clone(),
            resize: self.resize,
            crop: self.crop.clone(),
            bgr: self.bgr,
            labels: self.labels.clone(),
            name: self.name.clone(),
            precision: self.precision.map(Into::into),
            calib: self.calib.clone(),
            calib_count: self.calib_count,
            calib_method: self.calib_method.into(),
            eval: self.eval.clone(),
            strict: self.strict,
            spelling: Spelling::Flags,
        }
    }
}

/// Progress bars on stderr, report lines on stdout, skipped images above the bar.
#[derive(Default)]
struct Terminal {
    bar: Option<ProgressBar>,
}

impl Observer for Terminal {
    fn begin(&mut self, stage: &str, total: usize) {
        let style = ProgressStyle::with_template(&format!(
            "{stage} {{bar:40}} {{pos}}/{{len}}  {{elapsed}} < {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        self.bar = Some(ProgressBar::new(total as u64).with_style(style));
    }

    fn step(&mut self) -> Result<()> {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        Ok(())
    }

    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn note(&mut self, line: &str) {
        // A closed stdout is not worth failing a finished conversion for.
        let _ = out!("{line}");
    }

    fn skipped(&mut self, error: &anyhow::Error) {
        let say = || eprintln!("error: {error:#} (skipped)");
        match &self.bar {
            Some(b) => b.suspend(say),
            None => say(),
        }
    }
}

/// Run the conversion and write the bundle.
pub fn run(a: ConvertArgs) -> Result<()> {
    refuse_overwriting(&a.output, &[&a.model])?;
    let mut terminal = Terminal::default();
    let converted = pipeline::convert(&a.request(), &mut terminal);
    terminal.end();
    let converted = converted?;
    let model = &converted.model;
    bundle::save(model, &a.output)?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    out!(
        "wrote {} ({:.2} MB): {} ops, {:.2} MB of weights, precision {}",
        a.output.display(),
        size as f64 / 1e6,
        model.graph.nodes.len(),
        model.weights.bytes().len() as f64 / 1e6,
        model.meta.precision
    )?;
    match converted.skipped.len() {
        0 => Ok(()),
        n => Err(skipped_error("images", n, converted.images_seen)),
    }
}
