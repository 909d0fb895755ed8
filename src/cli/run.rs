//! `ferrolite run`: feed a `.npy` tensor, write the first output as `.npy`.

use std::path::PathBuf;

use super::npy::{read_npy, write_npy};
use super::{load, refuse_overwriting, ModelArgs, ModelSource, ThreadArgs};
use anyhow::{bail, Context, Result};
use ferrolite_runtime::meta::shape_text;

/// Arguments of `ferrolite run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Model: a .flb bundle or an .onnx file.
    model: PathBuf,
    /// Input tensor (.npy, float32 or float64, C order).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the first output (.npy, float32).
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    model_args: ModelArgs,
    #[command(flatten)]
    thread_args: ThreadArgs,
}

/// Run the model once on the input file.
pub fn run(a: RunArgs) -> Result<()> {
    a.thread_args.options()?;
    refuse_overwriting(&a.output, &[&a.model, &a.input])?;
    let model = load::open(
        &ModelSource::Path(a.model.clone()),
        a.model_args.input_shape.as_deref(),
    )?;
    let (shape, data) = read_npy(&a.input)?;
    let mut session = a.thread_args.session(model.clone())?;
    let expected = session.input_shapes();
    if expected.len() != 1 {
        bail!(
            "the model has {} inputs; `run` feeds exactly one",
            expected.len()
        );
    }
    if shape != expected[0] {
        bail!(
            "input {} has shape {} but the model expects {}",
            a.input.display(),
            shape_text(&shape),
            shape_text(&expected[0])
        );
    }
    session.run(&[&data])?;
    let out_shape = session.output_shapes()[0].clone();
    let values = session.output(0).context("the model has no output")?;
    write_npy(&a.output, &out_shape, values)?;
    eprintln!(
        "wrote {} with shape {}",
        a.output.display(),
        shape_text(&out_shape)
    );
    Ok(())
}
