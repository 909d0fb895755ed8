//! `ferrolite zoo`: the architectures built in code, listed with their size and cost, and
//! exported as ONNX (for any runtime) or as a bundle.

use std::path::PathBuf;

use anyhow::{bail, Result};
use ferrolite_models::zoo;

/// Subcommands of `ferrolite zoo`.
#[derive(clap::Subcommand, Debug)]
pub enum ZooCommand {
    /// List every architecture: name, parameters, MACs, input size, paper.
    List {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write one architecture (seeded weights) as .onnx, or as a .flb bundle (fp32).
    Export {
        /// NAME or NAME?width=W&resolution=R.
        name: String,
        /// Output file; its extension (.onnx or .flb) chooses the format.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Execute a zoo subcommand.
pub fn run(c: ZooCommand) -> Result<()> {
    match c {
        ZooCommand::List { json } => list(json),
        ZooCommand::Export { name, output } => export(&name, &output),
    }
}

fn list(json: bool) -> Result<()> {
    let rows = zoo::catalog();
    if json {
        out!("{}", serde_json::to_string(&rows)?)?;
        return Ok(());
    }
    out!(
        "{:<20} {:>9} {:>9} {:>9}  {:<18} paper",
        "name",
        "params",
        "MACs",
        "input",
        "options"
    )?;
    for r in &rows {
        out!(
            "{:<20} {:>8.2}M {:>8.1}M {:>9}  {:<18} {}",
            r.name,
            r.params as f64 / 1e6,
            r.macs as f64 / 1e6,
            format!("{}x{}", r.input[2], r.input[3]),
            r.options.join(","),
            r.paper
        )?;
    }
    out!(
        "\n{} models; use them anywhere a model goes as zoo:NAME (e.g. `ferrolite bench \
         zoo:mobilenet_v2`), options as zoo:NAME?width=0.5&resolution=160",
        rows.len()
    )?;
    Ok(())
}

fn export(name: &str, output: &std::path::Path) -> Result<()> {
    let ext = output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("onnx") => {
            let model = zoo::find(name)?;
            let built = model.onnx(zoo::SEED);
            let bytes = built.onnx.expect("a build with weights yields ONNX");
            ferrolite_runtime::bundle::write_atomically(output, &bytes)?;
            out!(
                "wrote {} ({}, {:.2} M params, {} bytes)",
                output.display(),
                model.spec(),
                built.params as f64 / 1e6,
                bytes.len()
            )
        }
        Some("flb") => export_bundle(name, output),
        _ => bail!(
            "{}: the output name must end in .onnx or .flb (it chooses the format)",
            output.display()
        ),
    }
}

#[cfg(feature = "onnx")]
fn export_bundle(name: &str, output: &std::path::Path) -> Result<()> {
    let model = super::load::open(
        &super::ModelSource::Path(PathBuf::from(format!("zoo:{name}"))),
        None,
    )?;
    ferrolite_runtime::bundle::save(&model, output)?;
    out!("wrote {} ({})", output.display(), model.meta.model_name)
}

#[cfg(not(feature = "onnx"))]
fn export_bundle(name: &str, _output: &std::path::Path) -> Result<()> {
    zoo::find(name)?;
    bail!("exporting a bundle needs the ONNX converter, which this device build leaves out")
}
