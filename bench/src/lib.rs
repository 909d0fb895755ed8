//! Ferrolite benchmark helpers: timing loops with robust statistics, and the peer runners
//! used to compare Ferrolite against tract on the same ONNX file in the same process.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrolite_runtime::exec::Session;
pub use ferrolite_runtime::stats::LatencyStats;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
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

    /// Load a `.flb` bundle and prepare a session on its first input's shape.
    pub fn from_bundle(path: &Path) -> Result<Self> {
        let model = ferrolite_runtime::bundle::load(path)?;
        let session = Session::new(Arc::new(model))?;
        let n: usize = session
            .input_shapes()
            .first()
            .context("the bundle has no input")?
            .iter()
            .product();
        let input = (0..n)
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

/// Median of a non-empty sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One round of ONNX Runtime timings; `None` when the peer cannot run here.
pub fn ort_round(model: &str, shape: &[usize], runs: usize) -> Result<Option<f64>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/ort_bench.py");
    let shape = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = match Command::new("python3")
        .arg(&script)
        .arg(model)
        .args([
            "--shape",
            &shape,
            "--runs",
            &runs.to_string(),
            "--warmup",
            "3",
        ])
        .output()
    {
        Ok(o) => o,
        Err(_) => return Ok(None),
    };
    if !out.status.success() {
        eprintln!(
            "ONNX Runtime peer unavailable: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("ONNX Runtime peer printed no JSON")?;
    Ok(v["median_ms"].as_f64())
}

/// Pin this process to `cpu`, or to the last CPU of its current set when `None`.
pub fn pin(cpu: Option<usize>) -> Result<usize> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).context("reading the CPU affinity")?;
    let cpu = match cpu {
        Some(c) => c,
        None => (0..CpuSet::count())
            .rev()
            .find(|&c| allowed.is_set(c).unwrap_or(false))
            .context("no CPU in this process's affinity set")?,
    };
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to CPU {cpu}"))?;
    Ok(cpu)
}
