//! Command-line interface: argument definitions and one module per command.

/// `println!` that returns an error instead of panicking when stdout is gone (a reader such
/// as `head` closed the pipe); `main` ends quietly on that error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(anyhow::Error::from)
    }};
}

mod bench;
mod classify;
#[cfg(feature = "onnx")]
mod convert;
mod decode;
mod eval;
mod image_model;
mod inspect;
mod load;
#[cfg(feature = "plot")]
mod plot;
mod run;
mod summary;
mod zoo;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
