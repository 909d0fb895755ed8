//! `ferrolite summary`: per-layer output shapes, parameters, MACs, activation memory and
//! receptive fields, then totals, weight memory per precision and the planned peak arena.

use std::path::PathBuf;

use anyhow::Result;
use ferrolite_runtime::exec::{Session, SessionOptions};
use ferrolite_runtime::summary::{recorded_counts, summarize, CountsSource, Summary};

use super::{human, load, ModelArgs, ModelSource};

/// Arguments of `ferrolite summary`.
#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// Model: a .flb bundle, an .onnx file or zoo:NAME.
    model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model_args: ModelArgs,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    model: String,
    #[serde(flatten)]
    summary: &'a Summary,
    /// What `params` counts ([`ferrolite_runtime::summary::Counts`]).
    params_counted: &'static str,
    /// Activation memory the runtime's plan actually reserves (fused, with buffer reuse).
    peak_arena_bytes: usize,
}

fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
}

/// Print the summary.
pub fn run(a: SummaryArgs) -> Result<()> {
    let source = ModelSource::Path(a.model.clone());
    let shape = a.model_args.input_shape.as_deref();
    let authored = load::open_unfused(&source, shape)?;
    let mut summary = summarize(&authored.graph);
    let counted = match recorded_counts(&authored.meta) {
        Some(c) => {
            (summary.params, summary.macs) = (c.params, c.macs);
            CountsSource::Source
        }
        None => CountsSource::Graph,
    };
    let planned = load::open(&source, shape)?;
    // Only the plan's arena size is read: one thread, no pool.
    let peak = Session::with_options(planned, SessionOptions::single_thread())?
        .plan()
        .arena_bytes();
    let report = Report {
        model: authored.meta.model_name.clone(),
        summary: &summary,
        params_counted: counted.describe(),
        peak_arena_bytes: peak,
    };
    if a.json {
        out!("{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    out!("{}", report.model)?;
    out!(
        "{:>4}  {:<15} {:<30} {:<20} {:>10} {:>10} {:>10} {:>9}",
        "#",
        "op",
        "name",
        "output",
        "weights",
        "MACs",
        "act mem",
        "RF"
    )?;
    for (i, l) in summary.layers.iter().enumerate() {
        let mut name = l.name.clone();
        if name.chars().count() > 30 {
            name = name.chars().take(29).collect::<String>() + "…";
        }
        let shape = l
            .output_shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        let rf = l
            .receptive_field
            .map_or("global".to_string(), |[h, w]| format!("{h}x{w}"));
        out!(
            "{:>4}  {:<15} {:<30} {:<20} {:>10} {:>10} {:>10} {:>9}",
            i,
            l.op,
            name,
            shape,
            human(l.params),
            human(l.macs),
            mib(l.activation_bytes),
            rf
        )?;
    }
    out!()?;
    out!(
        "parameters     {} ({}): {}",
        human(summary.params),
        summary.params,
        report.params_counted
    )?;
    out!(
        "MACs           {} ({}): convolutions and matrix products",
        human(summary.macs),
        summary.macs
    )?;
    out!(
        "weights        fp32 {}   fp16 {}   int8 {}",
        mib(summary.weight_bytes_fp32),
        mib(summary.weight_bytes_fp16),
        mib(summary.weight_bytes_int8)
    )?;
    out!(
        "activations    {} in all, largest {}",
        mib(summary.activation_bytes),
        mib(summary.largest_activation_bytes)
    )?;
    out!(
        "peak arena     {} (the runtime's plan: fused layers, reused buffers)",
        mib(peak as u64)
    )?;
    Ok(())
}
