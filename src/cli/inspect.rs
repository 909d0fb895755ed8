//! `ferrolite inspect`: what a model is made of and how it will run here.

use std::path::PathBuf;

use anyhow::Result;
use ferrolite_runtime::exec::Session;

use super::{human, load, ModelArgs, ModelSource};

/// Arguments of `ferrolite inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Model: a .flb bundle or an .onnx file.
    model: PathBuf,
    #[command(flatten)]
    model_args: ModelArgs,
}

/// Print the model description.
pub fn run(a: InspectArgs) -> Result<()> {
    let model = load::open(
        &ModelSource::Path(a.model.clone()),
        a.model_args.input_shape.as_deref(),
    )?;
    let session = Session::new(model.clone())?;
    let m = &model.meta;
    out!("model      {}", m.model_name)?;
    out!("producer   {}", m.producer)?;
    out!("precision  {:?}", m.precision)?;
    out!("cpu tier   {}", session.isa())?;
    for i in &m.inputs {
        out!("input      {} {:?}", i.name, i.shape)?;
        if let Some(p) = &i.preprocess {
            out!(
                "           resize shorter {:?}, crop {:?}, mean {:?}, std {:?}, {:?}, {:?}",
                p.resize_shorter,
                p.crop,
                p.mean,
                p.std,
                p.color,
                p.layout
            )?;
        }
    }
    for o in &m.outputs {
        out!("output     {} {:?}", o.name, o.shape)?;
    }
    out!("labels     {}", m.labels.len())?;
    out!()?;
    out!(
        "{:>4}  {:<16} {:<40} {:<22} {:>9} {:>9}  kernel",
        "#",
        "op",
        "node",
        "output",
        "params",
        "MACs"
    )?;
    let plan = session.plan();
    let (mut params, mut macs) = (0u64, 0u64);
    for (i, s) in plan.steps().iter().enumerate() {
        params += s.params;
        macs += s.macs;
        let mut node = s.node.clone();
        if node.len() > 40 {
            node = format!("…{}", &node[node.len() - 39..]);
        }
        out!(
            "{:>4}  {:<16} {:<40} {:<22} {:>9} {:>9}  {}",
            i,
            s.op,
            node,
            format!("{:?}", s.output_shape),
            human(s.params),
            human(s.macs),
            s.kernel
        )?;
    }
    out!()?;
    out!("ops            {}", plan.steps().len())?;
    out!("parameters     {}", human(params))?;
    out!("MACs           {}", human(macs))?;
    out!(
        "weight bytes   {}",
        human(model.weights.bytes().len() as u64)
    )?;
    out!(
        "arena bytes    {} (sum of all activations: {})",
        human(plan.arena_bytes() as u64),
        human(plan.naive_bytes() as u64)
    )?;
    for (key, value) in &m.records {
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
