//! `ferrolite classify`: decode images, preprocess them as the bundle says, print top-k.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use super::batch::Batch;
use super::{load, ModelSource, ThreadArgs};
use ferrolite_runtime::classifier::{rank, Class};

/// Arguments of `ferrolite classify`.
#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// Images to classify (JPEG or PNG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model bundle or ONNX file with preprocessing (default: the embedded EfficientNet-Lite0).
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print one JSON object per image per line.
    #[arg(long)]
    json: bool,
    /// Stop at the first image that cannot be read (by default it is reported and skipped,
    /// and the command fails at the end).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    thread_args: ThreadArgs,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    image: &'a str,
    top: Vec<Class>,
    latency_ms: f64,
}

/// Classify every image with one session.
pub fn run(a: ClassifyArgs) -> Result<()> {
    let source = match &a.model {
        Some(p) => ModelSource::Path(p.clone()),
        None => ModelSource::Default,
    };
    let opts = a.thread_args.options()?;
    let mut classifier = super::open_classifier(load::open(&source, None)?, None, opts)?;
    let labels = classifier.model().meta.labels.clone();
    let mut batch = Batch::new("images", a.images.len(), a.strict);
    for path in &a.images {
        if batch
            .take(super::load_image(&mut classifier, path), None)?
            .is_none()
        {
            continue;
        }
        let start = Instant::now();
        let scores = classifier.scores()?;
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let top = rank(scores, &labels, a.top);
        let name = path.display().to_string();
        if a.json {
            let report = Report {
                image: &name,
                top,
                latency_ms,
            };
            out!("{}", serde_json::to_string(&report)?)?;
        } else {
            out!("{name}  ({latency_ms:.1} ms)")?;
            for s in &top {
                out!("  {:6.2}%  {:4}  {}", s.score * 100.0, s.index, s.label)?;
            }
        }
    }
    batch.finish()
}
