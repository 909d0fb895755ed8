//! `ferrolite inspect`: what a model is made of and how it will run here.

use std::path::PathBuf;

use anyhow::Result;
use ferrolite_runtime::meta::{shape_text, COUNTS_RECORD, LABEL_IDS_RECORD};
use ferrolite_runtime::summary::model_counts;
use ferrolite_runtime::threads::Topology;

use super::{human, load, placement_text, ModelArgs, ModelSource, ThreadArgs};

/// Arguments of `ferrolite inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Model: a .flb bundle or an .onnx file.
    model: PathBuf,
    #[command(flatten)]
    model_args: ModelArgs,
    /// The placement to show the plan for (how many parts each step splits into).
    #[command(flatten)]
    thread_args: ThreadArgs,
}

/// Print the model description.
pub fn run(a: InspectArgs) -> Result<()> {
    a.thread_args.options()?;
    let model = load::open(
        &ModelSource::Path(a.model.clone()),
        a.model_args.input_shape.as_deref(),
    )?;
    let session = a.thread_args.session(model.clone())?;
    let m = &model.meta;
    out!("model      {}", m.model_name)?;
    out!("producer   {}", m.producer)?;
    out!("precision  {}", m.precision)?;
    out!("cpu tier   {}", session.isa())?;
    out!("threads    {}", placement_text(&session))?;
    out!("topology   {}", Topology::detect().describe())?;
    for i in &m.inputs {
        out!("input      {} {}", i.name, shape_text(&i.shape))?;
        if let Some(p) = &i.preprocess {
            out!("           {p}")?;
        }
    }
    for o in &m.outputs {
        out!("output     {} {}", o.name, shape_text(&o.shape))?;
    }
    out!("labels     {}", m.labels.len())?;
    out!()?;
    out!(
        "{:>4}  {:<16} {:<40} {:<22} {:>9} {:>9} {:>5}  kernel",
        "#",
        "op",
        "node",
        "output",
        "weights",
        "MACs",
        "parts"
    )?;
    let plan = session.plan();
    let (mut split, mut most) = (0usize, 1usize);
    for (i, s) in plan.steps().iter().enumerate() {
        let parts = session.step_parts(i);
        if parts > 1 {
            split += 1;
            most = most.max(parts);
        }
        let mut node = s.node.clone();
        if node.len() > 40 {
            node = format!("…{}", &node[node.len() - 39..]);
        }
        out!(
            "{:>4}  {:<16} {:<40} {:<22} {:>9} {:>9} {:>5}  {}",
            i,
            s.op,
            node,
            shape_text(&s.output_shape),
            human(s.params),
            human(s.macs),
            parts_cell(parts),
            s.kernel
        )?;
    }
    out!()?;
    out!("ops            {}", plan.steps().len())?;
    out!(
        "split steps    {split} (into up to {most} parts on {} thread{}; the rest run on \
         the calling thread)",
        session.threads(),
        if session.threads() == 1 { "" } else { "s" }
    )?;
    let (counts, source) = model_counts(m, &model.graph);
    out!(
        "parameters     {} ({}): {}",
        human(counts.params),
        counts.params,
        source.describe()
    )?;
    out!(
        "MACs           {} ({}): convolutions and matrix products",
        human(counts.macs),
        counts.macs
    )?;
    out!(
        "weight bytes   {} (the \"weights\" column: constant values each step reads, \
         BatchNorm folded in)",
        human(model.weights.bytes().len() as u64)
    )?;
    out!(
        "arena bytes    {} (sum of all activations: {})",
        human(plan.arena_bytes() as u64),
        human(plan.naive_bytes() as u64)
    )?;
    // The counts are printed above; class ids are one per label.
    let shown = |key: &str| key != COUNTS_RECORD && key != LABEL_IDS_RECORD;
    for (key, value) in m.records.iter().filter(|(k, _)| shown(k)) {
        out!()?;
        match value {
            serde_json::Value::Array(rows) => {
                out!("{key}:")?;
                for r in rows {
                    out!("  {}", record_line(r))?;
                }
            }
            other => out!("{key}: {}", record_line(other))?,
        }
    }
    Ok(())
}

/// The "parts" cell of a step: how many parts it splits into on the session's threads (1:
/// it stays on the calling thread; "-": nothing to run, as for a reshape).
pub(super) fn parts_cell(parts: usize) -> String {
    match parts {
        0 => "-".to_string(),
        n => n.to_string(),
    }
}

/// One record as `field value, field value` (strings unquoted).
fn record_line(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{k} {}", record_line(v)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
