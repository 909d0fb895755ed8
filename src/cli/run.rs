//! `ferrolite run`: feed a `.npy` tensor, write the first output as `.npy`.

use std::path::PathBuf;

use super::{load, ModelArgs, ModelSource, ThreadArgs};
use anyhow::{bail, Context, Result};

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

/// Read an .npy file as f32 values with its shape.
pub fn read_npy(path: &PathBuf) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{} is not a valid .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!(
            "{}: Fortran-ordered arrays are not supported",
            path.display()
        );
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => bail!(
            "{}: dtype {other:?} is not supported (use float32)",
            path.display()
        ),
    };
    let data: Vec<f32> = match descr.as_str() {
        "<f4" => npy.into_vec::<f32>()?,
        "<f8" => npy
            .into_vec::<f64>()?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => bail!(
            "{}: dtype {other} is not supported (use float32)",
            path.display()
        ),
    };
    Ok((shape, data))
}

/// Write f32 values with a shape as an .npy file.
pub fn write_npy(path: &PathBuf, shape: &[usize], data: &[f32]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
        .writer(std::io::BufWriter::new(file))
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(())
}

/// Run the model once on the input file.
pub fn run(a: RunArgs) -> Result<()> {
    a.thread_args.options()?;
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
            "input {} has shape {:?} but the model expects {:?}",
            a.input.display(),
            shape,
            expected[0]
        );
    }
    session.run(&[&data])?;
    let out_shape = session.output_shapes()[0].clone();
    write_npy(&a.output, &out_shape, session.output(0))?;
    eprintln!("wrote {} with shape {:?}", a.output.display(), out_shape);
    Ok(())
}
