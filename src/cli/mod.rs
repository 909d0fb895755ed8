//! Command-line interface: argument definitions and one module per command.

/// `println!` that returns an error instead of panicking when stdout is gone (a reader such
/// as `head` closed the pipe); `main` ends quietly on that error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(anyhow::Error::from)
    }};
}

use ferrolite_runtime::bundle::refuse_overwriting;

mod batch;
mod bench;
mod classify;
#[cfg(feature = "onnx")]
mod convert;
mod eval;
mod inspect;
pub mod interrupt;
mod load;
mod npy;
#[cfg(feature = "plot")]
mod plot;
mod run;
mod summary;
mod zoo;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use ferrolite_runtime::exec::{Session, SessionOptions};
use ferrolite_runtime::meta::Preprocess;
use ferrolite_runtime::threads::topology::{format_cpu_list, parse_cpu_list};
use ferrolite_runtime::threads::{Placement, Topology};
use ferrolite_runtime::Classifier;
use ferrolite_runtime::Model;

/// Ferrolite: fast CNN inference on mobile-class CPUs.
#[derive(Parser, Debug)]
#[command(name = "ferrolite", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert an ONNX model into a .flb bundle.
    #[cfg(feature = "onnx")]
    Convert(convert::ConvertArgs),
    /// Run a model on a NumPy .npy input and write its first output as .npy.
    Run(run::RunArgs),
    /// Classify images and print the top-k classes.
    Classify(classify::ClassifyArgs),
    /// Show a model's inputs, outputs, operators, kernels and memory.
    Inspect(inspect::InspectArgs),
    /// Measure latency (median, p90, min), per op with --profile, against tract with --compare;
    /// the whole architecture zoo as one table with --zoo.
    Bench(bench::BenchArgs),
    /// Per-layer shapes, parameters, MACs, memory and receptive fields of a model.
    Summary(summary::SummaryArgs),
    /// The architecture zoo: list its models or export one as ONNX or a bundle.
    #[command(subcommand)]
    Zoo(zoo::ZooCommand),
    /// Accuracy on labeled image folders (top-1, top-5) and agreement with a reference model.
    Eval(eval::EvalArgs),
}

/// Execute the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "onnx")]
        Command::Convert(a) => convert::run(a),
        Command::Run(a) => run::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Zoo(c) => zoo::run(c),
    }
}

/// A count with a k / M / G suffix, for tables.
fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Parse a comma-separated list such as `1,3,224,224`.
fn parse_list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<T>()
                .map_err(|_| format!("{p:?} is not a valid number in {s:?}"))
        })
        .collect()
}

/// Parse an input shape such as `1,3,48,192`.
fn parse_shape(s: &str) -> Result<Vec<usize>, String> {
    let v: Vec<usize> = parse_list(s)?;
    if v.is_empty() || v.contains(&0) {
        return Err(format!("shape {s:?} must list positive dimensions"));
    }
    Ok(v)
}

/// A model argument shared by the commands that load one.
#[derive(clap::Args, Debug, Clone)]
struct ModelArgs {
    /// Shape of the first input when converting an ONNX model with symbolic dimensions.
    #[arg(long, value_parser = parse_shape)]
    input_shape: Option<::std::vec::Vec<usize>>,
}

/// Where a command's model runs: the thread options shared by the commands that run one.
#[derive(clap::Args, Debug, Clone, Default)]
struct ThreadArgs {
    /// Threads in all, the calling one included (default: one per big core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// CPUs to run on, as a Linux CPU list such as 0-3,5 (default: the big cores).
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
}

/// Set once the pool's note (pinning refused) has been printed.
static NOTE_SHOWN: AtomicBool = AtomicBool::new(false);

impl ThreadArgs {
    /// The session options these arguments ask for, checked against this machine (so a bad
    /// `--threads` / `--cpus` fails before any model is loaded). The CLI owns its main
    /// thread, so that thread is pinned too.
    fn options(&self) -> Result<SessionOptions> {
        let cpus = self
            .cpus
            .as_deref()
            .map(parse_cpu_list)
            .transpose()
            .map_err(|e| anyhow!(e))?;
        let opts = SessionOptions {
            threads: self.threads,
            cpus,
            pin_caller: true,
            ..SessionOptions::default()
        };
        self.placement_of(&opts)?;
        Ok(opts)
    }

    /// Where sessions with `opts` will run on this machine.
    fn placement_of(&self, opts: &SessionOptions) -> Result<Placement> {
        Placement::detect(opts.threads, opts.cpus.as_deref(), opts.pin).map_err(|e| anyhow!(e))
    }

    /// A session of `model` with these options.
    fn session(&self, model: Arc<Model>) -> Result<Session> {
        open_session(model, self.options()?)
    }
}

/// A session of `model` with `opts`; a refusal to pin (or to start a worker) is printed once
/// per process as a warning, and the run goes on as the pool could.
fn open_session(model: Arc<Model>, opts: SessionOptions) -> Result<Session> {
    let session = Session::with_options(model, opts)?;
    warn_pool_note(&session);
    Ok(session)
}

/// Print the pool's note (pinning refused, say) once per process.
fn warn_pool_note(session: &Session) {
    if let Some(note) = session.pool().note() {
        if !NOTE_SHOWN.swap(true, Ordering::Relaxed) {
            eprintln!("warning: {note}");
        }
    }
}

/// An image classifier for `model` (its own preprocessing, else `fallback`).
fn open_classifier(
    model: Arc<Model>,
    fallback: Option<&Preprocess>,
    opts: SessionOptions,
) -> Result<Classifier> {
    let classifier = Classifier::with_fallback(model, fallback, opts)?;
    warn_pool_note(classifier.session());
    Ok(classifier)
}

/// Decode an image file and preprocess it into the classifier's input.
fn load_image(classifier: &mut Classifier, path: &std::path::Path) -> Result<()> {
    let image = ferrolite_runtime::image::decode_file(path)?;
    classifier
        .set_image(&image.view())
        .with_context(|| format!("cannot preprocess {}", path.display()))
}

/// `2 on CPUs 0-1 (pinned)`: the session's thread count and CPUs.
fn placement_text(session: &Session) -> String {
    format!(
        "{} on CPUs {} ({})",
        session.threads(),
        format_cpu_list(&session.placement().cpus),
        if session.pinned() {
            "pinned"
        } else {
            "unpinned"
        }
    )
}

/// `threads: 2 on CPUs 0-1 (pinned); topology: 2 CPUs, …`: the placement and the machine.
fn placement_line(session: &Session) -> String {
    format!(
        "threads: {}; topology: {}",
        placement_text(session),
        Topology::detect().describe()
    )
}

/// Weight precisions on the command line (`convert --precision`, `bench --precision`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum PrecisionArg {
    Fp32,
    Fp16,
    Int8,
}

impl From<PrecisionArg> for ferrolite_runtime::meta::Precision {
    fn from(p: PrecisionArg) -> Self {
        use ferrolite_runtime::meta::Precision;
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

/// Where a model comes from.
#[derive(Debug, Clone)]
enum ModelSource {
    Path(PathBuf),
    Default,
}
