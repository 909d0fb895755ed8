//! Ferrolite benchmark helpers: timing loops with robust statistics, and the peer runners
//! used to compare Ferrolite against tract on the same ONNX file in the same process, each on
//! the same number of threads.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
pub use ferrolite_quantize::tract_pool::tract_executor;
use ferrolite_runtime::exec::{Session, SessionOptions};
pub use ferrolite_runtime::stats::LatencyStats;
use ferrolite_runtime::threads::topology::format_cpu_list;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use tract_onnx::prelude::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// Time `f` `runs` times after `warmup` untimed calls (the runtime's own timing loop).
pub use ferrolite_runtime::stats::time_runs as time;

/// Session options for `threads` threads: pinned one per CPU of those this process may use
/// (see [`pin`]), the benchmark's main thread included.
fn session_options(threads: usize) -> SessionOptions {
    SessionOptions {
        threads: Some(threads),
        pin_caller: true,
        ..SessionOptions::default()
    }
}

/// Make a session, printing a refusal to pin (the run goes on unpinned).
fn session(model: ferrolite_runtime::Model, threads: usize) -> Result<Session> {
    let session = Session::with_options(Arc::new(model), session_options(threads))?;
    if let Some(note) = session.pool().note() {
        eprintln!("warning: {note}");
    }
    Ok(session)
}

/// A Ferrolite session ready to run on a fixed input.
pub struct FerroliteRunner {
    session: Session,
    input: Vec<f32>,
}

impl FerroliteRunner {
    /// Convert the ONNX model in memory and prepare a session on `threads` threads.
    pub fn from_onnx(path: &Path, input_shape: &[usize], threads: usize) -> Result<Self> {
        let opts = ferrolite_quantize::ConvertOptions {
            input_shape: Some(input_shape.to_vec()),
            ..Default::default()
        };
        let model = ferrolite_quantize::convert_onnx(path, &opts)?;
        let session = session(model, threads)?;
        let input = (0..input_shape.iter().product::<usize>())
            .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
            .collect();
        Ok(FerroliteRunner { session, input })
    }

    /// Load a `.flb` bundle and prepare a session on its first input's shape, on `threads`
    /// threads.
    pub fn from_bundle(path: &Path, threads: usize) -> Result<Self> {
        let model = ferrolite_runtime::bundle::load(path)?;
        let session = session(model, threads)?;
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

    /// Threads a run uses, the caller included.
    pub fn threads(&self) -> usize {
        self.session.threads()
    }

    /// `2 threads on CPUs 0-1 (pinned)`.
    pub fn placement(&self) -> String {
        self.session.placement().describe()
    }
}

/// tract's optimized plan of the same ONNX file, the in-process peer.
pub struct TractRunner {
    plan: Arc<TypedRunnableModel>,
    input: TValue,
    executor: Option<Executor>,
}

impl TractRunner {
    /// Load and optimize the model with tract, to run on `threads` threads allowed on `cpus`
    /// (empty: wherever this process may run).
    pub fn from_onnx(
        path: &Path,
        input_shape: &[usize],
        threads: usize,
        cpus: &[usize],
    ) -> Result<Self> {
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
        // tract treats a one-thread pool as "use rayon's global pool": one thread is its
        // default single-threaded executor.
        let executor = (threads > 1)
            .then(|| tract_executor(threads, cpus))
            .transpose()?;
        Ok(TractRunner {
            plan,
            input,
            executor,
        })
    }

    /// One inference.
    pub fn run(&mut self) -> Result<()> {
        let input = tvec![self.input.clone()];
        match &self.executor {
            Some(e) => multithread_tract_scope(e.clone(), || self.plan.run(input))?,
            None => self.plan.run(input)?,
        };
        Ok(())
    }
}

/// Median of a non-empty sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One round of ONNX Runtime timings on `threads` intra-op threads; `None` when the peer
/// cannot run here. The child inherits this process's CPU affinity (see [`pin`]).
pub fn ort_round(model: &str, shape: &[usize], runs: usize, threads: usize) -> Result<Option<f64>> {
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
            "--threads",
            &threads.to_string(),
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

/// The CPUs this process may run on, ascending.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).context("reading the CPU affinity")?;
    Ok((0..CpuSet::count())
        .filter(|&c| allowed.is_set(c).unwrap_or(false))
        .collect())
}

/// Pin this process to `n` CPUs (one per benchmark thread) of those it may use: from `first`
/// on (the next `n` it may use), or the last `n` when `None` (on big.LITTLE boards the big
/// cores are usually numbered last). Returns the CPUs. Everything started afterwards (a
/// session's workers, tract's pool, the ONNX Runtime child) inherits the set; a session then
/// pins each of its threads to one of them.
pub fn pin(first: Option<usize>, n: usize) -> Result<Vec<usize>> {
    let n = n.max(1);
    let allowed = allowed_cpus()?;
    let cpus: Vec<usize> = match first {
        Some(c) => {
            if !allowed.contains(&c) {
                bail!(
                    "--cpu {c}: not a CPU this process may use ({})",
                    format_cpu_list(&allowed)
                );
            }
            allowed
                .iter()
                .copied()
                .filter(|&x| x >= c)
                .take(n)
                .collect()
        }
        None => allowed[allowed.len().saturating_sub(n)..].to_vec(),
    };
    if cpus.len() < n {
        bail!(
            "--threads {n}: only {} CPU{} to pin to ({}); use fewer threads or --cpu any",
            cpus.len(),
            if cpus.len() == 1 { "" } else { "s" },
            format_cpu_list(&cpus)
        );
    }
    let mut set = CpuSet::new();
    for &c in &cpus {
        set.set(c)
            .with_context(|| format!("CPU {c} is out of range"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("pinning to CPUs {}", format_cpu_list(&cpus)))?;
    Ok(cpus)
}

/// Parse a `--threads` value: a positive count.
pub fn parse_threads(v: Option<&str>) -> Result<usize> {
    match v.map(str::parse::<usize>) {
        Some(Ok(n)) if n >= 1 => Ok(n),
        _ => bail!(
            "--threads takes a positive thread count, not {:?}",
            v.unwrap_or("nothing")
        ),
    }
}
