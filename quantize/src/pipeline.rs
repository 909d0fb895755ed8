//! The whole of `ferrolite convert` as one call, for the CLI and the Python package alike:
//! ONNX (or a QDQ model) in, a [`Model`] ready to write out, with the checks of the
//! options, calibration on a folder of images, the optional int8-vs-fp32 comparison and the
//! records the bundle keeps of them. What a front end shows while it runs (progress bars,
//! report lines, skipped images) goes through an [`Observer`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferrolite_runtime::meta::{ColorOrder, Precision, Preprocess, LABEL_IDS_RECORD};
use ferrolite_runtime::preprocess::prepare_into;
use ferrolite_runtime::{Error, Model};

use crate::calibrate::{calibrate, CalibMethod};
use crate::int8::{quantize_model, split_activations, KeptFloat};
use crate::report::compare;
use crate::{convert_onnx, qdq, read_labels, ConvertOptions};

/// Everything a conversion takes besides the output path: the ONNX file and the options of
/// `ferrolite convert` (each field is the flag of the same name).
#[derive(Debug, Clone)]
pub struct Request {
    /// The ONNX model (float, or quantized QDQ).
    pub model: PathBuf,
    /// Shape of the first input, for models with symbolic dimensions.
    pub input_shape: Option<Vec<usize>>,
    /// Per-channel mean subtracted from 0..255 pixels: one value or three.
    pub mean: Option<Vec<f32>>,
    /// Per-channel divisor applied after the mean: one value or three.
    pub std: Option<Vec<f32>>,
    /// Resize the shorter image side to this many pixels before cropping.
    pub resize: Option<u32>,
    /// Center-crop size after resizing: one value (a square) or height and width.
    pub crop: Option<Vec<u32>>,
    /// Feed channels in BGR order.
    pub bgr: bool,
    /// Class names: one per line, or a TSV whose last column is the name.
    pub labels: Option<PathBuf>,
    /// Model name stored in the bundle (default: the file stem).
    pub name: Option<String>,
    /// Storage precision (default fp32; a QDQ model is always int8).
    pub precision: Option<Precision>,
    /// int8: folder of calibration images.
    pub calib: Option<PathBuf>,
    /// int8: how many calibration images to use (the first N in path order).
    pub calib_count: usize,
    /// int8: how activation ranges are chosen.
    pub calib_method: CalibMethod,
    /// int8: folder of images to compare the int8 model with the fp32 one on.
    pub eval: Option<PathBuf>,
    /// Stop at the first image that cannot be read instead of skipping it.
    pub strict: bool,
    /// How error messages name the options: as flags or as keyword arguments.
    pub spelling: Spelling,
}

/// How a front end spells an option in its error messages, so a message tells the user
/// what to type: `--calib-count 0` on the command line, `calib_count=0` in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spelling {
    /// Command-line flags (`--calib DIR`).
    #[default]
    Flags,
    /// Keyword arguments (`calib=DIR`).
    Keywords,
}

impl Spelling {
    /// The option `key` (snake_case, as in [`Request`]).
    pub fn word(self, key: &str) -> String {
        match self {
            Spelling::Flags => format!("--{}", key.replace('_', "-")),
            Spelling::Keywords => format!("{key}="),
        }
    }

    /// The option `key` given `value`.
    pub fn set(self, key: &str, value: &str) -> String {
        match self {
            Spelling::Flags => format!("--{} {value}", key.replace('_', "-")),
            Spelling::Keywords => format!("{key}={value}"),
        }
    }
}

impl Request {
    /// A conversion of `model` with the CLI's defaults: fp32, 100 calibration images by
    /// percentile when int8 is asked for.
    pub fn new(model: impl Into<PathBuf>) -> Request {
        Request {
            model: model.into(),
            input_shape: None,
            mean: None,
            std: None,
            resize: None,
            crop: None,
            bgr: false,
            labels: None,
            name: None,
            precision: None,
            calib: None,
            calib_count: 100,
            calib_method: CalibMethod::Percentile,
            eval: None,
            strict: false,
            spelling: Spelling::Flags,
        }
    }
}

/// What a front end is told while a conversion runs. Every method has a do-nothing default.
pub trait Observer {
    /// A stage of `total` steps starts (`"calibrate"`, `"compare"`).
    fn begin(&mut self, _stage: &str, _total: usize) {}
    /// One step of the current stage is done; an error stops the conversion (the Python
    /// package returns one on Ctrl-C).
    fn step(&mut self) -> Result<()> {
        Ok(())
    }
    /// The current stage is over.
    fn end(&mut self) {}
    /// A line of the conversion report (fp32-kept nodes, QDQ counts, int8 agreement).
    fn note(&mut self, _line: &str) {}
    /// An image could not be read and was skipped (only without `strict`).
    fn skipped(&mut self, _error: &anyhow::Error) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// A finished conversion.
pub struct Converted {
    /// The model, with its records (calibration, int8 agreement, kept-fp32 nodes).
    pub model: Model,
    /// The report lines, as they were given to [`Observer::note`].
    pub notes: Vec<String>,
    /// The images that could not be read and were skipped, with why.
    pub skipped: Vec<String>,
    /// How many images were looked at (calibration and comparison).
    pub images_seen: usize,
}

/// The observer plus what the conversion collects for [`Converted`].
struct Run<'a> {
    observer: &'a mut dyn Observer,
    notes: Vec<String>,
    skipped: Vec<String>,
    seen: usize,
    strict: bool,
}

impl Run<'_> {
    fn note(&mut self, line: String) {
        self.observer.note(&line);
        self.notes.push(line);
    }
}

/// An error in the options themselves, raised before any work (an input error to the
/// Python package).
fn bad_option(msg: String) -> anyhow::Error {
    Error::Input(msg).into()
}

fn triple(v: &Option<Vec<f32>>, default: f32, what: String) -> Result<[f32; 3]> {
    match v.as_deref() {
        None => Ok([default; 3]),
        Some([x]) => Ok([*x; 3]),
        Some([a, b, c]) => Ok([*a, *b, *c]),
        Some(other) => Err(bad_option(format!(
            "{what} takes 1 or 3 values, got {}",
            other.len()
        ))),
    }
}

/// The image preprocessing the options describe, `None` when they give none.
fn preprocess_of(r: &Request) -> Result<Option<Preprocess>> {
    let sp = r.spelling;
    if r.mean.is_some() != r.std.is_some() {
        return Err(bad_option(format!(
            "{} and {} go together (the model was trained on (pixel - mean) / std): \
             give both, e.g. {} {}, or neither for pixels / 255",
            sp.word("mean"),
            sp.word("std"),
            sp.set("mean", "127.5"),
            sp.set("std", "127.5")
        )));
    }
    if r.mean.is_none() && r.resize.is_none() && r.crop.is_none() && !r.bgr {
        return Ok(None);
    }
    let std = triple(&r.std, 255.0, sp.word("std"))?;
    if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(bad_option(format!(
            "{} values must be finite and non-zero",
            sp.word("std")
        )));
    }
    let crop = match r.crop.as_deref() {
        None => None,
        Some([s]) => Some([*s, *s]),
        Some([h, w]) => Some([*h, *w]),
        Some(other) => {
            return Err(bad_option(format!(
                "{} takes 1 or 2 values, got {}",
                sp.word("crop"),
                other.len()
            )))
        }
    };
    Ok(Some(Preprocess {
        resize_shorter: r.resize,
        crop,
        mean: triple(&r.mean, 0.0, sp.word("mean"))?,
        std,
        color: if r.bgr {
            ColorOrder::Bgr
        } else {
            ColorOrder::Rgb
        },
        ..Default::default()
    }))
}

/// Convert `r.model` as `ferrolite convert` does. Images that cannot be read are skipped
/// and listed in [`Converted::skipped`] (the first one is final with `strict`); the caller
/// decides whether a conversion with skipped images failed.
pub fn convert(r: &Request, observer: &mut dyn Observer) -> Result<Converted> {
    if r.calib_count == 0 {
        return Err(bad_option(format!(
            "{} leaves nothing to calibrate on: give at least 1 (the default is 100)",
            r.spelling.set("calib_count", "0")
        )));
    }
    let labels = match &r.labels {
        Some(p) => read_labels(p)?,
        None => Default::default(),
    };
    let opts = ConvertOptions {
        input_shape: r.input_shape.clone(),
        preprocess: preprocess_of(r)?,
        labels: labels.names,
        model_name: r.name.clone(),
        precision: Precision::Fp32,
        unfused: false,
    };
    let mut run = Run {
        observer,
        notes: Vec::new(),
        skipped: Vec::new(),
        seen: 0,
        strict: r.strict,
    };
    let mut model = if qdq::is_qdq(&r.model)? {
        import_qdq(r, &opts, &mut run)?
    } else {
        convert_float(r, opts, &mut run)?
    };
    if !labels.ids.is_empty() {
        model
            .meta
            .records
            .insert(LABEL_IDS_RECORD.into(), serde_json::json!(labels.ids));
    }
    Ok(Converted {
        model,
        notes: run.notes,
        skipped: run.skipped,
        images_seen: run.seen,
    })
}

/// A float ONNX model at the asked precision (int8: calibrated on `r.calib`).
fn convert_float(r: &Request, mut opts: ConvertOptions, run: &mut Run) -> Result<Model> {
    let precision = r.precision.unwrap_or(Precision::Fp32);
    let int8 = precision == Precision::Int8;
    if int8 != r.calib.is_some() || (r.eval.is_some() && !int8) {
        let sp = r.spelling;
        return Err(bad_option(format!(
            "{} is required with {}, and {} / {} are only used with it",
            sp.set("calib", "DIR"),
            sp.set("precision", "int8"),
            sp.word("calib"),
            sp.word("eval")
        )));
    }
    if !int8 {
        opts.precision = precision;
    }
    let model = convert_onnx(&r.model, &opts)?;
    match &r.calib {
        Some(dir) => quantize_int8(model, dir, r, run),
        None => Ok(model),
    }
}

/// Decode and preprocess images into model inputs of `shape`, one step of the observer's
/// stage each; one that cannot be read is skipped (or final with `strict`). Fails when none
/// is left.
fn load_inputs(
    images: &[PathBuf],
    preprocess: &Preprocess,
    shape: &[usize],
    run: &mut Run,
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
        run.seen += 1;
        match input {
            Ok(input) => inputs.push(input),
            Err(e) if run.strict => return Err(e),
            Err(e) => {
                run.observer.skipped(&e);
                run.skipped.push(format!("{e:#}"));
            }
        }
        run.observer.step()?;
    }
    if inputs.is_empty() {
        bail!("none of the {} images could be read", images.len());
    }
    Ok(inputs)
}

/// The first `count` images under `dir`, in path order.
fn image_files(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    let images = ferrolite_runtime::image::list_images(dir)?;
    if images.is_empty() {
        bail!("no JPEG or PNG images found in {}", dir.display());
    }
    Ok(images.into_iter().take(count).collect())
}

/// The preprocessing and shape of the model's image input, for feeding it images (`what`
/// names the step that needs them).
fn image_input(model: &Model, what: &str, sp: Spelling) -> Result<(Preprocess, Vec<usize>)> {
    let preprocess = model
        .meta
        .inputs
        .first()
        .and_then(|i| i.preprocess.clone())
        .ok_or_else(|| {
            let words = ["mean", "std", "resize", "crop"].map(|k| sp.word(k));
            bad_option(format!(
                "{what} feeds images: give the preprocessing ({})",
                words.join(" / ")
            ))
        })?;
    let shape = model
        .graph
        .inputs
        .first()
        .map(|&t| model.graph.tensors[t].shape.clone());
    Ok((preprocess, shape.context("the model has no input")?))
}

/// Calibrate the fp32 `model` on the images in `dir` and quantize it to int8.
fn quantize_int8(model: Model, dir: &Path, r: &Request, run: &mut Run) -> Result<Model> {
    let (preprocess, shape) = image_input(&model, "int8 calibration", r.spelling)?;
    let method = r.calib_method;
    let passes = if method == CalibMethod::MinMax { 1 } else { 2 };
    let images = image_files(dir, r.calib_count)?;
    run.observer.begin("calibrate", images.len() * (passes + 1));
    let inputs = load_inputs(&images, &preprocess, &shape, run)?;
    let model = split_activations(&model);
    let ranges = calibrate(&model, &inputs, method, || run.observer.step())?;
    run.observer.end();
    let q = quantize_model(&model, &ranges)?;
    let mut m = finish_int8(&model, q.model, &q.kept_float, r, run)?;
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
fn import_qdq(r: &Request, opts: &ConvertOptions, run: &mut Run) -> Result<Model> {
    let what = format!(
        "{} is a quantized (QDQ) ONNX model: it imports to int8 with its own parameters",
        r.model.display()
    );
    let sp = r.spelling;
    if let Some(p) = r.precision.filter(|p| *p != Precision::Int8) {
        return Err(bad_option(format!(
            "{what}, so {} does not apply (leave it out)",
            sp.set("precision", &p.to_string())
        )));
    }
    if r.calib.is_some() {
        return Err(bad_option(format!(
            "{what}, so {} would be ignored: leave it out, or calibrate the fp32 model \
             instead ({} {} on the unquantized ONNX file)",
            sp.word("calib"),
            sp.set("precision", "int8"),
            sp.set("calib", "DIR")
        )));
    }
    let q = qdq::import_qdq(&r.model, opts)?;
    for w in &q.requantized {
        run.note(format!("re-quantized weight of {}: {}", w.node, w.reason));
    }
    let fixed = q.params.fixed_activations.iter().flatten().count();
    run.note(format!(
        "QDQ model: {fixed} activation quantizations and {} int8 weights used as given",
        q.params.fixed_weights.len()
    ));
    finish_int8(&q.fp32, q.int8, &q.kept_float, r, run)
}

/// Report and record the nodes an int8 model keeps in fp32, and with `r.eval`, compare it
/// with its fp32 source.
fn finish_int8(
    fp32: &Model,
    mut m: Model,
    kept: &[KeptFloat],
    r: &Request,
    run: &mut Run,
) -> Result<Model> {
    for k in kept {
        run.note(format!("kept fp32: {} {} ({})", k.op, k.node, k.reason));
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
    compare_with_fp32(fp32, &mut m, r, run)?;
    Ok(m)
}

/// Compare the int8 model `m` with `fp32` on the images in `dir`; report and record the
/// top-1 agreement and the per-layer SQNR.
fn compare_with_fp32(fp32: &Model, m: &mut Model, r: &Request, run: &mut Run) -> Result<()> {
    let Some(dir) = &r.eval else { return Ok(()) };
    let (preprocess, shape) = image_input(fp32, &r.spelling.word("eval"), r.spelling)?;
    let images = image_files(dir, usize::MAX)?;
    run.observer.begin("compare", images.len() * 2);
    let inputs = load_inputs(&images, &preprocess, &shape, run)?;
    let c = compare(fp32, m, &inputs, || run.observer.step())?;
    run.observer.end();
    let worst = c
        .layers
        .iter()
        .min_by(|x, y| x.sqnr_db.total_cmp(&y.sqnr_db));
    run.note(format!(
        "int8 vs fp32 on {} images: top-1 agreement {}/{} = {:.1} %{}",
        c.images,
        c.agreement,
        c.images,
        100.0 * c.agreement as f64 / c.images as f64,
        worst.map_or(String::new(), |w| format!(
            ", lowest layer SQNR {:.1} dB ({})",
            w.sqnr_db, w.node
        ))
    ));
    m.meta.records.insert(
        "int8_vs_fp32".into(),
        serde_json::json!({
            "images": c.images,
            "agreement": c.agreement as f64 / c.images as f64,
            "folder": dir.display().to_string(),
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
    Ok(())
}
