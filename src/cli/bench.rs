//! `ferrolite bench`: latency of a model on this machine, optionally per op and side by
//! side with tract on the same ONNX file in the same process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ferrolite_runtime::exec::Session;
use ferrolite_runtime::stats::LatencyStats;

use super::{load, ModelArgs, ModelSource};

/// A runtime to compare against.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum Peer {
    Tract,
}

/// Arguments of `ferrolite bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model: a .flb bundle or an .onnx file.
    model: PathBuf,
    /// Worker threads (1: single-threaded execution).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Print a per-op time table.
    #[arg(long)]
    profile: bool,
    /// Also run this peer on the same ONNX model, interleaved with ours.
    #[arg(long, value_enum)]
    compare: Option<Peer>,
    #[command(flatten)]
    model_args: ModelArgs,
}

/// Deterministic input values in [-1, 1].
fn input_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
        .collect()
}

#[cfg(feature = "onnx")]
mod tract_peer {
    use anyhow::{Context, Result};
    use ferrolite_quantize::tract_onnx::prelude::*;
    use std::path::Path;
    use std::sync::Arc;

    /// tract's optimized plan of an ONNX model with a fixed input.
    pub struct TractPeer {
        plan: Arc<TypedRunnableModel>,
        input: TValue,
    }

    impl TractPeer {
        pub fn new(path: &Path, shape: &[usize], data: &[f32]) -> Result<Self> {
            let plan = ferrolite_quantize::tract_onnx::onnx()
                .model_for_path(path)?
                .with_input_fact(0, f32::fact(shape).into())?
                .into_optimized()?
                .into_runnable()
                .with_context(|| format!("tract cannot run {}", path.display()))?;
            let input = Tensor::from_shape(shape, data)?.into();
            Ok(TractPeer { plan, input })
        }

        pub fn run(&self) -> Result<()> {
            self.plan.run(tvec![self.input.clone()])?;
            Ok(())
        }
    }
}

#[cfg(not(feature = "onnx"))]
mod tract_peer {
    use anyhow::{bail, Result};
    use std::path::Path;

    pub struct TractPeer;

    impl TractPeer {
        pub fn new(_: &Path, _: &[usize], _: &[f32]) -> Result<Self> {
            bail!("--compare tract needs a build with the `onnx` feature")
        }

        pub fn run(&self) -> Result<()> {
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct Report {
    model: String,
    median_ms: f64,
    p90_ms: f64,
    min_ms: f64,
    max_ms: f64,
    runs: usize,
    threads: usize,
    isa: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract_median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_tract: Option<f64>,
}

/// Benchmark the model.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.threads != 1 {
        bail!(
            "--threads {}: only single-threaded execution (--threads 1) is implemented",
            a.threads
        );
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let model = load::open(
        &ModelSource::Path(a.model.clone()),
        a.model_args.input_shape.as_deref(),
    )?;
    let mut session = Session::new(Arc::clone(&model))?;
    let shapes = session.input_shapes();
    let inputs: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| input_values(s.iter().product()))
        .collect();
    let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
    let peer = match a.compare {
        Some(Peer::Tract) => {
            if shapes.len() != 1 {
                bail!("--compare tract supports single-input models");
            }
            let is_bundle = std::fs::read(&a.model)
                .map(|b| ferrolite_runtime::bundle::looks_like_bundle(&b[..b.len().min(16)]))
                .unwrap_or(false);
            if is_bundle {
                bail!("--compare tract needs the ONNX model, not a bundle");
            }
            Some(tract_peer::TractPeer::new(
                &a.model, &shapes[0], &inputs[0],
            )?)
        }
        None => None,
    };
    for _ in 0..a.warmup {
        session.run(&refs)?;
        if let Some(p) = &peer {
            p.run()?;
        }
    }
    let steps = session.plan().steps().len();
    let mut per_step = vec![Duration::ZERO; steps];
    let (mut ours, mut theirs) = (Vec::with_capacity(a.runs), Vec::with_capacity(a.runs));
    for _ in 0..a.runs {
        let t = Instant::now();
        if a.profile {
            for (acc, d) in per_step.iter_mut().zip(session.run_profiled(&refs)?) {
                *acc += d;
            }
        } else {
            session.run(&refs)?;
        }
        ours.push(t.elapsed());
        if let Some(p) = &peer {
            let t = Instant::now();
            p.run()?;
            theirs.push(t.elapsed());
        }
    }
    let st = LatencyStats::from_samples(&ours);
    let tract = peer.as_ref().map(|_| LatencyStats::from_samples(&theirs));
    let report = Report {
        model: model.meta.model_name.clone(),
        median_ms: st.median_ms,
        p90_ms: st.p90_ms,
        min_ms: st.min_ms,
        max_ms: st.max_ms,
        runs: st.runs,
        threads: a.threads,
        isa: session.isa(),
        tract_median_ms: tract.map(|t| t.median_ms),
        ratio_vs_tract: tract.map(|t| st.median_ms / t.median_ms),
    };
    if a.json {
        out!("{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    out!(
        "{}  (cpu tier {}, {} thread, {} runs after {} warm-up)",
        report.model,
        report.isa,
        a.threads,
        a.runs,
        a.warmup
    )?;
    out!(
        "ferrolite  median {:8.3} ms   p90 {:8.3} ms   min {:8.3} ms",
        st.median_ms,
        st.p90_ms,
        st.min_ms
    )?;
    if let Some(t) = tract {
        out!(
            "tract      median {:8.3} ms   p90 {:8.3} ms   min {:8.3} ms",
            t.median_ms,
            t.p90_ms,
            t.min_ms
        )?;
        out!("ferrolite / tract = {:.2}", st.median_ms / t.median_ms)?;
    }
    if a.profile {
        print_profile(&session, &per_step, a.runs)?;
    }
    Ok(())
}

fn print_profile(session: &Session, per_step: &[Duration], runs: usize) -> Result<()> {
    let total: f64 = per_step.iter().map(|d| d.as_secs_f64()).sum::<f64>() / runs as f64;
    out!()?;
    out!(
        "{:>4}  {:<15} {:<36} {:>9} {:>7} {:>8}  kernel",
        "#",
        "op",
        "node",
        "ms",
        "share",
        "GFLOP/s"
    )?;
    for (i, (s, d)) in session.plan().steps().iter().zip(per_step).enumerate() {
        let secs = d.as_secs_f64() / runs as f64;
        let gflops = if secs > 0.0 {
            2.0 * s.macs as f64 / secs / 1e9
        } else {
            0.0
        };
        let mut node = s.node.clone();
        if node.chars().count() > 36 {
            node = format!(
                "…{}",
                node.chars()
                    .rev()
                    .take(35)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            );
        }
        out!(
            "{:>4}  {:<15} {:<36} {:>9.3} {:>6.1}% {:>8.2}  {}",
            i,
            s.op,
            node,
            secs * 1e3,
            100.0 * secs / total.max(1e-12),
            gflops,
            s.kernel
        )?;
    }
    Ok(())
}
