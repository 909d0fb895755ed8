//! `ferrolite convert`: ONNX -> `.flb` bundle with preprocessing and labels.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ferrolite_quantize::calibrate::{calibrate, CalibMethod};
use ferrolite_quantize::int8::{quantize_model, split_activations, KeptFloat};
use ferrolite_quantize::qdq;
use ferrolite_quantize::report::compare;
use ferrolite_quantize::{convert_onnx, read_labels, ConvertOptions};
use ferrolite_runtime::bundle;
use ferrolite_runtime::meta::{ColorOrder, Precision, Preprocess, LABEL_IDS_RECORD};
use ferrolite_runtime::preprocess::prepare_into;
use ferrolite_runtime::Model;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

use super::batch::Batch;
use super::eval::collect_images;
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

fn triple(v: &Option<Vec<f32>>, default: f32, what: &str) -> Result<[f32; 3]> {
    match v.as_deref() {
        None => Ok([default; 3]),
        Some([x]) => Ok([*x; 3]),
        Some([a, b, c]) => Ok([*a, *b, *c]),
        Some(other) => bail!("--{what} takes 1 or 3 values, got {}", other.len()),
    }
}

/// The first `count` images (JPEG or PNG) under `dir`, in path order.
fn image_files(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    Ok(collect_images(&[dir.to_path_buf()], &Default::default())?
        .into_iter()
        .map(|(p, _)| p)
        .take(count)
        .collect())
}

fn progress(what: &str, len: usize) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}}  {{elapsed}} < {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// Decode and preprocess images into model inputs of `shape`; one that cannot be read is
/// left to `batch` (reported and skipped, or final under `--strict`). Fails when none is left.
fn load_inputs(
    images: &[PathBuf],
    preprocess: &Preprocess,
    shape: &[usize],
    bar: &ProgressBar,
    batch: &mut Batch,
) -> Result<Vec<Vec<f32>>> {
    let mut inputs = Vec::with_capacity(images.len());
    for p in images {
        let input = (|| -> Result<Vec<f32>> {
            let image = ferrolite_runtime::image::decode_file(p)?;
            let mut input = vec![0f32; shape.iter().product()];
            prepare_into(&image.view(), preprocess, shape, &mut input)
                .with_context(|| format!("cannot preprocess {}", p.display()))?;
            Ok(input)
        })();
        if let Some(input) = batch.take(input, Some(bar))? {
            inputs.push(input);
        }
        bar.inc(1);
    }
    if inputs.is_empty() {
        bail!("none of the {} images could be read", images.len());
    }
    Ok(inputs)
}

/// The preprocessing and shape of the model's image input, for feeding it images (`what`
/// names the step that needs them).
fn image_input(model: &Model, what: &str) -> Result<(Preprocess, Vec<usize>)> {
    let preprocess = model
        .meta
        .inputs
        .first()
        .and_then(|i| i.preprocess.clone())
        .with_context(|| {
            format!("{what} feeds images: give the preprocessing (--mean/--std/--resize/--crop)")
        })?;
    let shape = model
        .graph
        .inputs
        .first()
        .map(|&t| model.graph.tensors[t].shape.clone());
    Ok((preprocess, shape.context("the model has no input")?))
}

/// Calibrate the fp32 `model` on the images in `dir` and quantize it to int8.
fn quantize_int8(model: Model, dir: &Path, a: &ConvertArgs, batch: &mut Batch) -> Result<Model> {
    let (preprocess, shape) = image_input(&model, "int8 calibration")?;
    let method: CalibMethod = a.calib_method.into();
    let passes = if method == CalibMethod::MinMax { 1 } else { 2 };
    let images = image_files(dir, a.calib_count)?;
    let bar = progress("calibrate", images.len() * (passes + 1));
    let inputs = load_inputs(&images, &preprocess, &shape, &bar, batch)?;
    let model = split_activations(&model);
    let ranges = calibrate(&model, &inputs, method, || bar.inc(1))?;
    bar.finish_and_clear();
    let q = quantize_model(&model, &ranges)?;
    let mut m = finish_int8(&model, q.model, &q.kept_float, a, batch)?;
    m.meta.records.insert(
        "calibration".into(),
        serde_json::json!({
            "method": method.name(),
            "images": inputs.len(),
            "folder": dir.display().to_string(),
        }),
    );
    Ok(m)
}

/// Import a quantized (QDQ) ONNX model to int8 with its own parameters.
fn import_qdq(a: &ConvertArgs, opts: &ConvertOptions, batch: &mut Batch) -> Result<Model> {
    let r = qdq::import_qdq(&a.model, opts)?;
    for w in &r.requantized {
        out!("re-quantized weight of {}: {}", w.node, w.reason)?;
    }
    out!(
        "QDQ model: {} activation quantizations and {} int8 weights used as given",
        r.params
            .fixed_activations
            .iter()
            .filter(|q| q.is_some())
            .count(),
        r.params.fixed_weights.len()
    )?;
    finish_int8(&r.fp32, r.int8, &r.kept_float, a, batch)
}

/// Report and record the nodes an int8 model keeps in fp32, and with `--eval`, compare it
/// with its fp32 source.
fn finish_int8(
    fp32: &Model,
    mut m: Model,
    kept: &[KeptFloat],
    a: &ConvertArgs,
    batch: &mut Batch,
) -> Result<Model> {
    for k in kept {
        out!("kept fp32: {} {} ({})", k.op, k.node, k.reason)?;
    }
    if !kept.is_empty() {
        let kept: Vec<_> = kept
            .iter()
            .map(|k| serde_json::json!({"node": k.node, "op": k.op, "reason": k.reason}))
            .collect();
        m.meta
            .records
            .insert("int8_kept_fp32".into(), serde_json::Value::Array(kept));
    }
    if let Some(eval_dir) = &a.eval {
        let (preprocess, shape) = image_input(fp32, "--eval")?;
        let images = image_files(eval_dir, usize::MAX)?;
        let bar = progress("compare", images.len() * 2);
        let inputs = load_inputs(&images, &preprocess, &shape, &bar, batch)?;
        let c = compare(fp32, &m, &inputs, || bar.inc(1))?;
        bar.finish_and_clear();
        let worst = c
            .layers
            .iter()
            .min_by(|x, y| x.sqnr_db.total_cmp(&y.sqnr_db));
        out!(
            "int8 vs fp32 on {} images: top-1 agreement {}/{} = {:.1} %{}",
            c.images,
            c.agreement,
            c.images,
            100.0 * c.agreement as f64 / c.images as f64,
            worst.map_or(String::new(), |w| format!(
                ", lowest layer SQNR {:.1} dB ({})",
                w.sqnr_db, w.node
            ))
        )?;
        m.meta.records.insert(
            "int8_vs_fp32".into(),
            serde_json::json!({
                "images": c.images,
                "agreement": c.agreement as f64 / c.images as f64,
                "folder": eval_dir.display().to_string(),
            }),
        );
        let layers: Vec<_> = c
            .layers
            .iter()
            .map(|l| serde_json::json!({"node": l.node, "sqnr_db": (l.sqnr_db * 10.0).round() / 10.0}))
            .collect();
        m.meta
            .records
            .insert("int8_sqnr_db".into(), serde_json::Value::Array(layers));
    }
    Ok(m)
}

/// Run the conversion and write the bundle.
pub fn run(a: ConvertArgs) -> Result<()> {
    refuse_overwriting(&a.output, &[&a.model])?;
    if a.calib_count == 0 {
        bail!(
            "--calib-count 0 leaves nothing to calibrate on: give at least 1 (the default is 100)"
        );
    }
    if a.mean.is_some() != a.std.is_some() {
        bail!(
            "--mean and --std go together (the model was trained on (pixel - mean) / std): \
             give both, e.g. --mean 127.5 --std 127.5, or neither for pixels / 255"
        );
    }
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
        None => Default::default(),
    };
    let mut batch = Batch::new("images", usize::MAX, a.strict);
    let mut opts = ConvertOptions {
        input_shape: a.input_shape.clone(),
        preprocess,
        labels: labels.names,
        model_name: a.name.clone(),
        precision: Precision::Fp32,
        unfused: false,
    };
    let model = if qdq::is_qdq(&a.model)? {
        let what = format!(
            "{} is a quantized (QDQ) ONNX model: it imports to int8 with its own parameters",
            a.model.display()
        );
        match a.precision {
            None | Some(PrecisionArg::Int8) => {}
            Some(p) => bail!(
                "{what}, so --precision {} does not apply (leave it out)",
                format!("{p:?}").to_lowercase()
            ),
        }
        if a.calib.is_some() {
            bail!(
                "{what}, so --calib would be ignored: leave it out, or calibrate the fp32 \
                 model instead (--precision int8 --calib DIR on the unquantized ONNX file)"
            );
        }
        import_qdq(&a, &opts, &mut batch)?
    } else {
        let precision: Precision = a.precision.unwrap_or(PrecisionArg::Fp32).into();
        let int8 = precision == Precision::Int8;
        if int8 != a.calib.is_some() || (a.eval.is_some() && !int8) {
            bail!("--calib DIR is required with --precision int8, and --calib / --eval are only used with it");
        }
        if !int8 {
            opts.precision = precision;
        }
        let model = convert_onnx(&a.model, &opts)?;
        match &a.calib {
            Some(dir) => quantize_int8(model, dir, &a, &mut batch)?,
            None => model,
        }
    };
    let mut model = model;
    if !labels.ids.is_empty() {
        model
            .meta
            .records
            .insert(LABEL_IDS_RECORD.into(), serde_json::json!(labels.ids));
    }
    bundle::save(&model, &a.output)?;
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    out!(
        "wrote {} ({:.2} MB): {} ops, {:.2} MB of weights, precision {}",
        a.output.display(),
        size as f64 / 1e6,
        model.graph.nodes.len(),
        model.weights.bytes().len() as f64 / 1e6,
        model.meta.precision
    )?;
    batch.finish()
}
