//! `ferrolite eval`: accuracy of an image classifier on labeled folders (top-1, top-5) and,
//! against a reference model, how often both pick the same class (top-1 agreement), which
//! is what a lower-precision bundle is judged by.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::exec::SessionOptions;
use ferrolite_runtime::meta::{Metadata, LABEL_IDS_RECORD};
use indicatif::{ProgressBar, ProgressStyle};

use super::batch::Batch;
use super::{load, ModelSource, ThreadArgs};
use ferrolite_runtime::classifier::top_k;

/// Arguments of `ferrolite eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model bundle (or ONNX file) with image preprocessing.
    model: PathBuf,
    /// Folders of images (JPEG or PNG). The label of an image is the WordNet id its file name
    /// starts with (`n01443537_2625.jpg`) or the name of its sub-folder; images whose label is
    /// not a known class count only for agreement.
    #[arg(long, required = true, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Reference model (e.g. the fp32 bundle) for top-1 agreement; without preprocessing of
    /// its own it uses the model's.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Class list `index<TAB>wnid<TAB>name` (imagenet_classes.tsv), to map WordNet ids and
    /// names to output indices; without it, sub-folder names are matched to the model's labels.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Print one JSON object: images, labeled, top1, top5, agreement (fractions or null).
    #[arg(long)]
    json: bool,
    /// Stop at the first image that cannot be read (by default it is reported and skipped,
    /// and the command fails at the end).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    thread_args: ThreadArgs,
}

/// What `eval` measured.
#[derive(serde::Serialize, Debug, Default)]
struct Report {
    /// Images evaluated (fewer than found when interrupted).
    images: usize,
    /// Images found.
    found: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupted: bool,
    labeled: usize,
    top1: Option<f64>,
    top5: Option<f64>,
    agreement: Option<f64>,
}

/// Output index by WordNet id and by class name.
fn class_index(args: &EvalArgs, meta: &Metadata) -> Result<HashMap<String, usize>> {
    let labels = &meta.labels;
    let mut index = HashMap::new();
    match &args.classes {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read class list {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
                let Ok(i) = fields[0].parse::<usize>() else {
                    continue; // a header line
                };
                if fields.len() < 2 {
                    bail!(
                        "{} line {}: expected index<TAB>wnid[<TAB>name]",
                        path.display(),
                        n + 1
                    );
                }
                for key in &fields[1..] {
                    index.insert(key.to_string(), i);
                }
            }
        }
        None => {
            for (i, name) in labels.iter().enumerate() {
                index.insert(name.clone(), i);
            }
            let ids = meta
                .records
                .get(LABEL_IDS_RECORD)
                .and_then(|v| v.as_array());
            for (i, id) in ids.into_iter().flatten().enumerate() {
                if let Some(id) = id.as_str() {
                    index.insert(id.to_string(), i);
                }
            }
        }
    }
    Ok(index)
}

/// The WordNet id a file name starts with (`n` and eight digits).
fn wnid_prefix(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let id = name.get(..9)?;
    (id.starts_with('n') && id[1..].bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// Every image under the folders (and their direct sub-folders), sorted, with its label
/// when it names a known class: by its own WordNet-id prefix, else its sub-folder's name.
fn collect_images(
    dirs: &[PathBuf],
    classes: &HashMap<String, usize>,
) -> Result<Vec<(PathBuf, Option<usize>)>> {
    let mut out = Vec::new();
    for dir in dirs {
        for f in ferrolite_runtime::image::list_images(dir)? {
            let own = wnid_prefix(&f).and_then(|w| classes.get(w).copied());
            let folder = f
                .parent()
                .filter(|p| p != dir)
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| classes.get(n).copied());
            out.push((f, own.or(folder)));
        }
    }
    if out.is_empty() {
        bail!("no JPEG or PNG images found in the given folders");
    }
    Ok(out)
}

fn fraction(hits: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| hits as f64 / of as f64)
}

/// Evaluate the model (and the reference) on every image.
pub fn run(a: EvalArgs) -> Result<()> {
    let opts = a.thread_args.options()?;
    let mut model = super::open_classifier(
        load::open(&ModelSource::Path(a.model.clone()), None)?,
        None,
        opts.clone(),
    )?;
    // The reference runs in turn with the model: it shares the model's threads.
    let mut reference = match &a.reference {
        Some(p) => Some(super::open_classifier(
            load::open(&ModelSource::Path(p.clone()), None)?,
            Some(model.preprocess()),
            SessionOptions {
                pool: Some(Arc::clone(model.session().pool())),
                ..opts
            },
        )?),
        None => None,
    };
    let classes = class_index(&a, &model.model().meta)?;
    let images = collect_images(&a.images, &classes)?;
    let bar = ProgressBar::new(images.len() as u64).with_style(
        ProgressStyle::with_template("eval {bar:40} {pos}/{len} images  {elapsed} < {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut report, mut top1, mut top5, mut agree) = (Report::default(), 0, 0, 0);
    let mut batch = Batch::new("images", images.len(), a.strict);
    report.found = images.len();
    super::interrupt::watch();
    for (path, label) in &images {
        if super::interrupt::requested() {
            report.interrupted = true;
            break;
        }
        if batch
            .take(super::load_image(&mut model, path), Some(&bar))?
            .is_none()
        {
            bar.inc(1);
            continue;
        }
        let ranked = top_k(model.scores()?, 5);
        if let Some(truth) = label {
            report.labeled += 1;
            top1 += usize::from(ranked.first() == Some(truth));
            top5 += usize::from(ranked.contains(truth));
        }
        if let Some(r) = reference.as_mut() {
            super::load_image(r, path)?;
            let want = top_k(r.scores()?, 1);
            agree += usize::from(ranked.first() == want.first());
        }
        report.images += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.top1 = fraction(top1, report.labeled);
    report.top5 = fraction(top5, report.labeled);
    if reference.is_some() {
        report.agreement = fraction(agree, report.images);
    }
    if report.labeled == 0 {
        eprintln!(
            "warning: no image has a label this model knows, so there is no accuracy: name \
             files after their WordNet id (n01443537_1.jpg) or put them in folders named after \
             a class, and give --classes imagenet_classes.tsv if the bundle was converted \
             without --labels of that form"
        );
    }
    if a.json {
        out!("{}", serde_json::to_string(&report)?)?;
        return finish(&report, &batch);
    }
    let of = if report.interrupted {
        format!(
            " (interrupted: {} of {} found)",
            report.images, report.found
        )
    } else {
        String::new()
    };
    out!(
        "{}: {} images{of}, {} with a known label",
        model.model().meta.model_name,
        report.images,
        report.labeled
    )?;
    let pct =
        |hits: usize, of: usize| format!("{hits}/{of} = {:.1} %", 100.0 * hits as f64 / of as f64);
    if report.labeled > 0 {
        out!("top-1      {}", pct(top1, report.labeled))?;
        out!("top-5      {}", pct(top5, report.labeled))?;
    }
    if let Some(r) = &a.reference {
        out!(
            "agreement  {}  (same top-1 as {})",
            pct(agree, report.images),
            r.display()
        )?;
    }
    finish(&report, &batch)
}

/// The end of an evaluation: interrupted, some images unreadable, or done.
fn finish(report: &Report, batch: &Batch) -> Result<()> {
    if report.interrupted {
        return Err(super::interrupt::Interrupted(format!(
            "the figures above cover the first {} of {} images",
            report.images, report.found
        ))
        .into());
    }
    batch.finish()
}
