//! Ferrolite benchmark helpers: timing loops with robust statistics, and the peer runners
//! used to compare Ferrolite against tract on the same ONNX file in the same process.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrolite_runtime::exec::Session;
pub use ferrolite_runtime::stats::LatencyStats;
use tract_onnx::prelude::*;

/// Time `f` `runs` times after `warmup` untimed calls.
pub fn time<F: FnMut() -> Result<()>>(
    warmup: usize,
    runs: usize,
    mut f: F,
) -> Result<LatencyStats> {
    for _ in 0..warmup {
        f()?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(LatencyStats::from_samples(&samples))
}

/// A Ferrolite session ready to run on a fixed input.
pub struct FerroliteRunner {
    session: Session,
    input: Vec<f32>,
}

impl FerroliteRunner {
    /// Convert the ONNX model in memory and prepare a session.
    pub fn from_onnx(path: &Path, input_shape: &[usize]) -> Result<Self> {
        let opts = ferrolite_quantize::ConvertOptions {
            input_shape: Some(input_shape.to_vec()),
            ..Default::default()
        };
        let model = ferrolite_quantize::convert_onnx(path, &opts)?;
        let session = Session::new(Arc::new(model))?;
        let input = (0..input_shape.iter().product::<usize>())
            .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
            .collect();
        Ok(FerroliteRunner { session, input })
    }

    /// One inference.
    pub fn run(&mut self) -> Result<()> {
        self.session.run(&[&self.input])?;
        Ok(())
    }

    /// Name of the kernel tier in use.
    pub fn isa(&self) -> &'static str {
        self.session.isa()
    }
}

/// tract's optimized plan of the same ONNX file, the in-process peer.
pub struct TractRunner {
    plan: Arc<TypedRunnableModel>,
    input: TValue,
}

impl TractRunner {
    /// Load and optimize the model with tract.
    pub fn from_onnx(path: &Path, input_shape: &[usize]) -> Result<Self> {
        let plan = tract_onnx::onnx()
            .model_for_path(path)?
            .with_input_fact(0, f32::fact(input_shape).into())?
            .into_optimized()?
            .into_runnable()
            .with_context(|| format!("tract cannot plan {}", path.display()))?;
        let n: usize = input_shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let input = Tensor::from_shape(input_shape, &data)?.into();
        Ok(TractRunner { plan, input })
    }

    /// One inference.
    pub fn run(&mut self) -> Result<()> {
        self.plan.run(tvec![self.input.clone()])?;
        Ok(())
    }
}
