//! `ferrolite bench`: latency of a model on this machine, optionally per op and side by
//! side with tract on the same ONNX file in the same process; with `--zoo`, one table row
//! per architecture of the zoo (as ncnn's benchncnn does), optionally drawn as an SVG chart.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ferrolite_models::zoo::{self, ZooModel};
use ferrolite_runtime::exec::{Session, SessionOptions};
use ferrolite_runtime::meta::Precision;
use ferrolite_runtime::stats::{bench_inputs, sample_buffer, BenchReport, LatencyStats};
use ferrolite_runtime::threads::topology::format_cpu_list;
use ferrolite_runtime::threads::{Placement, Pool, Topology};
use ferrolite_runtime::Model;
use indicatif::{ProgressBar, ProgressStyle};

use super::inspect::parts_cell;
use super::interrupt::{self, Interrupted};
use super::{load, placement_line, ModelArgs, ModelSource, PrecisionArg, ThreadArgs};

/// A runtime to compare against.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum Peer {
    Tract,
}

/// Arguments of `ferrolite bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model: a .flb bundle, an .onnx file or zoo:NAME (an architecture of the zoo); leave
    /// it out with --zoo.
    model: Option<PathBuf>,
    /// Benchmark the architecture zoo, one table row per model: every architecture, or the
    /// NAMEs given (NAME?width=W&resolution=R where the architecture has those options).
    #[arg(long, num_args = 0.., value_name = "NAME")]
    zoo: Option<Vec<String>>,
    /// Weights of zoo models: fp32 (the default); fp16 (half weights, as `convert
    /// --precision fp16`);
    /// int8 (post-training quantization calibrated on 4 deterministic synthetic images:
    /// seeded uniform-noise pixels normalised with ImageNet mean/std, percentile ranges; zoo
    /// weights are random, so only the speed is meaningful).
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Timed runs (per model).
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Untimed runs first (per model).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Print a per-op time table.
    #[arg(long)]
    profile: bool,
    /// Also run this peer on the same ONNX model, interleaved with ours (on as many threads
    /// as ours).
    #[arg(long, value_enum)]
    compare: Option<Peer>,
    /// Write an SVG chart: median latency per model with min-max whiskers (--zoo), or time
    /// per op kind and per kernel (MODEL --profile).
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    model_args: ModelArgs,
    #[command(flatten)]
    thread_args: ThreadArgs,
}

#[cfg(feature = "onnx")]
mod tract_peer {
    use anyhow::{Context, Result};
    use ferrolite_quantize::tract_onnx::prelude::multithread::{multithread_tract_scope, Executor};
    use ferrolite_quantize::tract_onnx::prelude::*;
    use ferrolite_quantize::tract_pool::tract_executor;
    use std::path::Path;
    use std::sync::Arc;

    /// tract's optimized plan of an ONNX model with a fixed input, and the executor it runs
    /// on with more than one thread.
    pub struct TractPeer {
        plan: Arc<TypedRunnableModel>,
        input: TValue,
        executor: Option<Executor>,
        threads: usize,
    }

    impl TractPeer {
        /// Plan the model; with `threads` > 1, tract runs on a pool of that many threads
        /// allowed on `cpus` (tract's own default is one thread).
        pub fn new(
            path: &Path,
            shape: &[usize],
            data: &[f32],
            threads: usize,
            cpus: &[usize],
        ) -> Result<Self> {
            let plan = ferrolite_quantize::tract_onnx::onnx()
                .model_for_path(path)?
                .with_input_fact(0, f32::fact(shape).into())?
                .into_optimized()?
                .into_runnable()
                .with_context(|| format!("tract cannot run {}", path.display()))?;
            let input = Tensor::from_shape(shape, data)?.into();
            // tract treats a one-thread pool as "use rayon's global pool": one thread is
            // its default single-threaded executor.
            let executor = (threads > 1)
                .then(|| tract_executor(threads, cpus))
                .transpose()?;
            Ok(TractPeer {
                plan,
                input,
                executor,
                threads: threads.max(1),
            })
        }

        /// Threads tract runs on.
        pub fn threads(&self) -> usize {
            self.threads
        }

        pub fn run(&self) -> Result<()> {
            let input = tvec![self.input.clone()];
            match &self.executor {
                Some(e) => multithread_tract_scope(e.clone(), || self.plan.run(input))?,
                None => self.plan.run(input)?,
            };
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
        pub fn new(_: &Path, _: &[usize], _: &[f32], _: usize, _: &[usize]) -> Result<Self> {
            bail!("--compare tract needs a build with the `onnx` feature")
        }

        pub fn threads(&self) -> usize {
            1
        }

        pub fn run(&self) -> Result<()> {
            Ok(())
        }
    }
}

#[derive(serde::Serialize)]
struct Report {
    /// Ours, as the runtime reports it (Python's `Model.bench` returns the same).
    #[serde(flatten)]
    ours: BenchReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract_threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract_median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_tract: Option<f64>,
    /// Ctrl-C stopped the timing after `runs` runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupted: bool,
}

/// Timings of one model (and its peer) over the timed runs.
struct Timings {
    ours: LatencyStats,
    tract: Option<LatencyStats>,
    /// Summed time of each plan step over the runs (empty without profiling).
    per_step: Vec<Duration>,
}

/// Warm up, then time `runs` runs of `session` on `inputs`, each followed by one of `peer`.
/// Ctrl-C stops the runs: what was timed is returned, or [`Interrupted`] before any.
fn measure(
    session: &mut Session,
    inputs: &[Vec<f32>],
    peer: Option<&tract_peer::TractPeer>,
    a: &BenchArgs,
) -> Result<Timings> {
    let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
    for _ in 0..a.warmup {
        if interrupt::requested() {
            break;
        }
        session.run(&refs)?;
        if let Some(p) = peer {
            p.run()?;
        }
    }
    let steps = if a.profile {
        session.plan().steps().len()
    } else {
        0
    };
    let mut per_step = vec![Duration::ZERO; steps];
    let (mut ours, mut theirs) = (sample_buffer(a.runs), sample_buffer(a.runs));
    for _ in 0..a.runs {
        if interrupt::requested() {
            break;
        }
        let t = Instant::now();
        if a.profile {
            for (acc, d) in per_step.iter_mut().zip(session.run_profiled(&refs)?) {
                *acc += d;
            }
        } else {
            session.run(&refs)?;
        }
        ours.push(t.elapsed());
        if let Some(p) = peer {
            let t = Instant::now();
            p.run()?;
            theirs.push(t.elapsed());
        }
    }
    if ours.is_empty() {
        return Err(Interrupted("before the first timed run".into()).into());
    }
    Ok(Timings {
        ours: LatencyStats::from_samples(&ours),
        tract: peer.map(|_| LatencyStats::from_samples(&theirs)),
        per_step,
    })
}

/// A session over `model` with `opts` and its deterministic inputs.
fn session_with_inputs(
    model: Arc<Model>,
    opts: SessionOptions,
) -> Result<(Session, Vec<Vec<f32>>)> {
    let session = super::open_session(model, opts)?;
    let inputs = bench_inputs(&session);
    Ok((session, inputs))
}

/// The tract peer on the ONNX file `onnx` for a single-input session, on as many threads as
/// the session and allowed on the CPUs of `placement`.
fn tract_for(
    onnx: &Path,
    session: &Session,
    inputs: &[Vec<f32>],
    placement: &Placement,
) -> Result<tract_peer::TractPeer> {
    let shapes = session.input_shapes();
    if shapes.len() != 1 {
        bail!("--compare tract supports single-input models");
    }
    tract_peer::TractPeer::new(
        onnx,
        &shapes[0],
        &inputs[0],
        session.threads(),
        &placement.cpus,
    )
}

/// The line saying where tract runs.
fn tract_line(threads: usize, placement: &Placement) -> String {
    if threads > 1 {
        format!(
            "tract: {threads} threads (its rayon executor) on CPUs {}, unpinned",
            format_cpu_list(&placement.cpus)
        )
    } else {
        "tract: 1 thread".to_string()
    }
}

/// The chart file of `--plot`, created before benchmarking so that a bad path fails at once,
/// and removed again if it is dropped unwritten (the benchmark failed).
struct PlotFile {
    path: PathBuf,
    file: File,
    written: bool,
}

impl PlotFile {
    fn create(path: &Path) -> Result<PlotFile> {
        if !cfg!(feature = "plot") {
            bail!("--plot needs a build with the `plot` feature (SVG charts)");
        }
        let is_svg = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        if !is_svg {
            bail!(
                "--plot {} : the chart is SVG, name the file *.svg",
                path.display()
            );
        }
        let file = File::create(path)
            .with_context(|| format!("cannot write the chart {}", path.display()))?;
        Ok(PlotFile {
            path: path.to_path_buf(),
            file,
            written: false,
        })
    }

    fn write(mut self, svg: &str) -> Result<()> {
        use std::io::Write as _;
        self.file
            .write_all(svg.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot write the chart {}", self.path.display()))?;
        self.written = true;
        Ok(())
    }
}

impl Drop for PlotFile {
    fn drop(&mut self) {
        if !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Benchmark the model, or the zoo with `--zoo`.
pub fn run(a: BenchArgs) -> Result<()> {
    // A bad --threads / --cpus fails before any model is built.
    a.thread_args.options()?;
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    interrupt::watch();
    let plot = a.plot.as_deref().map(PlotFile::create).transpose()?;
    match (&a.model, &a.zoo) {
        (Some(m), Some(_)) => bail!(
            "give either MODEL ({}) or --zoo [NAME ...], not both",
            m.display()
        ),
        (None, None) => bail!(
            "nothing to benchmark: give a MODEL (.flb, .onnx or zoo:NAME), or --zoo [NAME ...] \
             for the architecture zoo"
        ),
        (Some(m), None) => bench_model(&a, m, plot),
        (None, Some(names)) => bench_zoo(&a, names, plot),
    }
}

/// Benchmark one model; with `plot`, chart its profile there.
fn bench_model(a: &BenchArgs, path: &Path, plot: Option<PlotFile>) -> Result<()> {
    if plot.is_some() && !a.profile {
        bail!(
            "--plot of one model charts its per-op profile: add --profile (or chart the zoo \
             with --zoo)"
        );
    }
    let zoo_onnx = load::zoo_spec(path).map(load::write_zoo_onnx).transpose()?;
    let model = match &zoo_onnx {
        Some(z) => {
            if a.model_args.input_shape.is_some() {
                bail!("--input-shape does not apply to zoo models: use zoo:NAME?resolution=R");
            }
            let precision = a.precision.map_or(Precision::Fp32, Precision::from);
            Arc::new(load::convert_zoo(z, precision)?)
        }
        None => {
            if let Some(p) = a.precision {
                bail!(
                    "--precision {} applies to zoo models (zoo:NAME or --zoo); convert other \
                     models with `ferrolite convert --precision`",
                    precision_name(p.into())
                );
            }
            load::open(
                &ModelSource::Path(path.to_path_buf()),
                a.model_args.input_shape.as_deref(),
            )?
        }
    };
    let opts = a.thread_args.options()?;
    let placement = a.thread_args.placement_of(&opts)?;
    let (mut session, inputs) = session_with_inputs(Arc::clone(&model), opts)?;
    let peer = match a.compare {
        Some(Peer::Tract) => {
            let onnx = zoo_onnx.as_ref().map_or(path, |z| z.path.as_path());
            let is_bundle = std::fs::read(onnx)
                .map(|b| ferrolite_runtime::bundle::looks_like_bundle(&b[..b.len().min(16)]))
                .unwrap_or(false);
            if is_bundle {
                bail!("--compare tract needs the ONNX model, not a bundle");
            }
            Some(tract_for(onnx, &session, &inputs, &placement)?)
        }
        None => None,
    };
    let t = measure(&mut session, &inputs, peer.as_ref(), a)?;
    let st = t.ours;
    let report = Report {
        ours: BenchReport::new(&session, &st),
        tract_threads: peer.as_ref().map(|p| p.threads()),
        tract_median_ms: t.tract.map(|t| t.median_ms),
        ratio_vs_tract: t.tract.map(|t| st.median_ms / t.median_ms),
        interrupted: st.runs < a.runs,
    };
    if let Some(file) = plot {
        file.write(&profile_chart(&session, &report, &t.per_step, a.runs)?)?;
    }
    if a.json {
        out!("{}", serde_json::to_string(&report)?)?;
        return interrupted_after(&report, a.runs);
    }
    out!(
        "{}  (cpu tier {}, {} thread{}, {} runs after {} warm-up{})",
        report.ours.model,
        report.ours.isa,
        report.ours.threads,
        if report.ours.threads == 1 { "" } else { "s" },
        report.ours.runs,
        a.warmup,
        if report.interrupted {
            format!("; interrupted, of {}", a.runs)
        } else {
            String::new()
        }
    )?;
    out!("{}", placement_line(&session))?;
    if let Some(p) = &peer {
        out!("{}", tract_line(p.threads(), &placement))?;
    }
    out!(
        "ferrolite  median {:8.3} ms   p90 {:8.3} ms   min {:8.3} ms",
        st.median_ms,
        st.p90_ms,
        st.min_ms
    )?;
    if let Some(t) = t.tract {
        out!(
            "tract      median {:8.3} ms   p90 {:8.3} ms   min {:8.3} ms",
            t.median_ms,
            t.p90_ms,
            t.min_ms
        )?;
        out!("ferrolite / tract = {:.2}", st.median_ms / t.median_ms)?;
    }
    if a.profile {
        print_profile(&session, &t.per_step, report.ours.runs)?;
    }
    interrupted_after(&report, a.runs)
}

/// [`Interrupted`] when Ctrl-C cut `report`'s runs short of `asked`.
fn interrupted_after(report: &Report, asked: usize) -> Result<()> {
    if report.interrupted {
        return Err(Interrupted(format!(
            "the figures above are of {} of {asked} runs",
            report.ours.runs
        ))
        .into());
    }
    Ok(())
}

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "fp32",
        Precision::Fp16 => "fp16",
        Precision::Int8 => "int8",
    }
}

/// One row of the zoo table.
#[derive(serde::Serialize)]
struct ZooRow {
    model: String,
    input: Vec<usize>,
    params: u64,
    macs: u64,
    min_ms: f64,
    median_ms: f64,
    p90_ms: f64,
    max_ms: f64,
    gmac_per_s: f64,
    isa: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract_median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_tract: Option<f64>,
}

/// A zoo model that could not be built, converted or run.
#[derive(serde::Serialize)]
struct ZooFailure {
    model: String,
    error: String,
}

/// What `bench --zoo --json` prints.
#[derive(serde::Serialize)]
struct ZooReport {
    precision: &'static str,
    /// Threads ours ran on, the caller included.
    threads: usize,
    /// The CPUs they may run on.
    cpus: Vec<usize>,
    /// Whether each thread was pinned to a CPU of its own (in every model's session).
    pinned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tract_threads: Option<usize>,
    runs: usize,
    warmup: usize,
    models: Vec<ZooRow>,
    failed: Vec<ZooFailure>,
}

/// The zoo models `--zoo NAME ...` names, or every architecture when none is named.
fn zoo_models(names: &[String]) -> Result<Vec<ZooModel>> {
    if names.is_empty() {
        let all = zoo::architectures();
        if all.is_empty() {
            bail!("the architecture zoo of this build is empty");
        }
        return all
            .iter()
            .map(|arch| zoo::find(arch.name).map_err(anyhow::Error::from))
            .collect();
    }
    names
        .iter()
        .map(|name| {
            let spec = name.strip_prefix("zoo:").unwrap_or(name);
            let is_file = spec.contains(['/', '\\'])
                || spec.ends_with(".flb")
                || spec.ends_with(".onnx")
                || Path::new(spec).is_file();
            if is_file {
                bail!(
                    "--zoo takes names of zoo architectures, and {name:?} is a model file: \
                     benchmark it with `ferrolite bench {name}`"
                );
            }
            zoo::find(spec).map_err(|e| anyhow!("--zoo {name}: {e}"))
        })
        .collect()
}

fn with_units(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// The threads every zoo model runs on: where they run, and the pool once the first model
/// has made it (the later models share it, so the workers start once, from a caller whose
/// affinity is still that of the process).
struct ZooThreads {
    opts: SessionOptions,
    placement: Placement,
    pool: Option<Arc<Pool>>,
    /// Whether every session so far had its threads pinned.
    pinned: bool,
}

/// Build, convert and time one zoo model.
fn bench_zoo_model(
    a: &BenchArgs,
    m: &ZooModel,
    precision: Precision,
    threads: &mut ZooThreads,
    bar: &ProgressBar,
) -> Result<ZooRow> {
    let spec = m.spec();
    bar.set_message(format!("{spec}: building"));
    let onnx = load::write_zoo_onnx(&spec)?;
    bar.set_message(match precision {
        Precision::Int8 => format!("{spec}: converting, calibrating and quantizing to int8"),
        p => format!("{spec}: converting to {}", precision_name(p)),
    });
    let model = Arc::new(load::convert_zoo(&onnx, precision)?);
    let opts = SessionOptions {
        pool: threads.pool.clone(),
        ..threads.opts.clone()
    };
    let (mut session, inputs) = session_with_inputs(model, opts)?;
    threads
        .pool
        .get_or_insert_with(|| Arc::clone(session.pool()));
    threads.pinned &= session.pinned();
    let peer = match a.compare {
        Some(Peer::Tract) => {
            bar.set_message(format!("{spec}: optimizing with tract"));
            Some(tract_for(
                &onnx.path,
                &session,
                &inputs,
                &threads.placement,
            )?)
        }
        None => None,
    };
    bar.set_message(format!("{spec}: running"));
    let t = measure(&mut session, &inputs, peer.as_ref(), a)?;
    let count = m.count();
    let st = t.ours;
    Ok(ZooRow {
        model: spec,
        input: m.input_shape(),
        params: count.params,
        macs: count.macs,
        min_ms: st.min_ms,
        median_ms: st.median_ms,
        p90_ms: st.p90_ms,
        max_ms: st.max_ms,
        gmac_per_s: count.macs as f64 / (st.median_ms * 1e-3) / 1e9,
        isa: session.isa(),
        tract_median_ms: t.tract.map(|t| t.median_ms),
        ratio_vs_tract: t.tract.map(|t| st.median_ms / t.median_ms),
    })
}

/// Benchmark zoo models one after the other (one built at a time, so memory stays that of
/// the largest), printing each table row as it is measured; with `plot`, chart them there.
fn bench_zoo(a: &BenchArgs, names: &[String], plot: Option<PlotFile>) -> Result<()> {
    if !cfg!(feature = "onnx") {
        bail!("--zoo builds models with the ONNX converter, which this build leaves out");
    }
    if a.profile {
        bail!("--profile measures one model: `ferrolite bench zoo:NAME --profile`");
    }
    if a.model_args.input_shape.is_some() {
        bail!("--input-shape does not apply to zoo models: use --zoo NAME?resolution=R");
    }
    let models = zoo_models(names)?;
    let precision = a.precision.map_or(Precision::Fp32, Precision::from);
    let opts = a.thread_args.options()?;
    let placement = a.thread_args.placement_of(&opts)?;
    let mut threads = ZooThreads {
        opts,
        pinned: !placement.pin.is_empty(),
        placement,
        pool: None,
    };
    let n_threads = threads.placement.threads;
    let tract_threads = a.compare.map(|_| n_threads);
    let name_width = models
        .iter()
        .map(|m| m.spec().chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let bar = ProgressBar::new(models.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len}  {elapsed}  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !a.json {
        out!(
            "ferrolite zoo benchmark: {}, {} thread{}, {} runs after {} warm-up; times in ms",
            precision_name(precision),
            n_threads,
            if n_threads == 1 { "" } else { "s" },
            a.runs,
            a.warmup
        )?;
        let p = &threads.placement;
        out!(
            "threads: {n_threads} on CPUs {} ({}); topology: {}",
            format_cpu_list(&p.cpus),
            if p.pin.is_empty() {
                "unpinned"
            } else {
                "pinned"
            },
            Topology::detect().describe()
        )?;
        if let Some(t) = tract_threads {
            out!("{}", tract_line(t, p))?;
        }
        let peer_columns = if a.compare.is_some() {
            format!(" {:>9} {:>6}", "tract", "ratio")
        } else {
            String::new()
        };
        out!(
            "{:<name_width$} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>8}{peer_columns}  tier",
            "model",
            "input",
            "params",
            "MACs",
            "min",
            "median",
            "max",
            "GMAC/s",
        )?;
    }
    let (mut rows, mut failed) = (Vec::new(), Vec::new());
    for m in &models {
        if interrupt::requested() {
            break;
        }
        match bench_zoo_model(a, m, precision, &mut threads, &bar) {
            Ok(row) => {
                if !a.json {
                    bar.suspend(|| print_zoo_row(&row, name_width))?;
                }
                rows.push(row);
            }
            Err(e) if e.is::<Interrupted>() => break,
            Err(e) => {
                bar.suspend(|| eprintln!("zoo:{}: {e:#}", m.spec()));
                failed.push(ZooFailure {
                    model: m.spec(),
                    error: format!("{e:#}"),
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(file) = plot {
        if !rows.is_empty() {
            file.write(&zoo_chart(&rows, precision, n_threads, a)?)?;
        }
    }
    let failed_names: Vec<String> = failed.iter().map(|f| f.model.clone()).collect();
    let measured = rows.len();
    if a.json {
        let report = ZooReport {
            precision: precision_name(precision),
            threads: n_threads,
            cpus: threads.placement.cpus.clone(),
            pinned: threads.pinned,
            tract_threads,
            runs: a.runs,
            warmup: a.warmup,
            models: rows,
            failed,
        };
        out!("{}", serde_json::to_string(&report)?)?;
    }
    if interrupt::requested() {
        return Err(Interrupted(format!(
            "the table above has {measured} of {} models",
            models.len()
        ))
        .into());
    }
    if !failed_names.is_empty() {
        bail!(
            "{} of {} zoo models failed: {}",
            failed_names.len(),
            models.len(),
            failed_names.join(", ")
        );
    }
    Ok(())
}

fn print_zoo_row(r: &ZooRow, name_width: usize) -> Result<()> {
    let input = match r.input.as_slice() {
        [_, _, h, w] => format!("{h}x{w}"),
        other => ferrolite_runtime::meta::shape_text(other),
    };
    let peer = match (r.tract_median_ms, r.ratio_vs_tract) {
        (Some(t), Some(ratio)) => format!(" {t:>9.3} {ratio:>6.2}"),
        _ => String::new(),
    };
    out!(
        "{:<name_width$} {:>9} {:>8} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>8.2}{peer}  {}",
        r.model,
        input,
        with_units(r.params),
        with_units(r.macs),
        r.min_ms,
        r.median_ms,
        r.max_ms,
        r.gmac_per_s,
        r.isa
    )
}

/// Ratio of the slowest to the fastest median above which the zoo chart's axis is
/// logarithmic (a linear one would flatten the small models to nothing).
#[cfg(feature = "plot")]
const LOG_SCALE_SPREAD: f64 = 30.0;

/// Median latency per zoo model with min-max whiskers.
#[cfg(feature = "plot")]
fn zoo_chart(
    rows: &[ZooRow],
    precision: Precision,
    threads: usize,
    a: &BenchArgs,
) -> Result<String> {
    use super::plot::{svg, Bar, Panel};
    let mut tiers: Vec<&str> = rows.iter().map(|r| r.isa).collect();
    tiers.dedup();
    let title = format!(
        "ferrolite zoo · {} · cpu tier {} · {} thread{}",
        precision_name(precision),
        tiers.join("/"),
        threads,
        if threads == 1 { "" } else { "s" }
    );
    let medians = rows.iter().map(|r| r.median_ms).filter(|m| *m > 0.0);
    let spread = medians.clone().fold(0.0, f64::max) / medians.fold(f64::INFINITY, f64::min);
    let log_scale = spread > LOG_SCALE_SPREAD;
    let panel = Panel {
        title: format!(
            "median latency per model (whiskers: min – max of {} run{})",
            a.runs,
            if a.runs == 1 { "" } else { "s" }
        ),
        x_label: if log_scale { "ms (log scale)" } else { "ms" }.into(),
        log_scale,
        bars: rows
            .iter()
            .map(|r| Bar {
                label: r.model.clone(),
                value: r.median_ms,
                range: Some((r.min_ms, r.max_ms)),
                note: format!("{:.2} ms · {:.1} GMAC/s", r.median_ms, r.gmac_per_s),
            })
            .collect(),
    };
    svg(&title, &[panel])
}

#[cfg(not(feature = "plot"))]
fn zoo_chart(_: &[ZooRow], _: Precision, _: usize, _: &BenchArgs) -> Result<String> {
    bail!("--plot needs a build with the `plot` feature (SVG charts)")
}

/// Bars kept per breakdown of a profile chart; the rest are summed as "other".
#[cfg(feature = "plot")]
const TOP_GROUPS: usize = 15;

/// Sum `ms` by key, largest first, keeping the top [`TOP_GROUPS`] and one "other" bar.
#[cfg(feature = "plot")]
fn top_groups<'a>(items: impl Iterator<Item = (&'a str, f64)>) -> Vec<(String, f64, usize)> {
    let mut sums: Vec<(String, f64, usize)> = Vec::new();
    for (key, ms) in items {
        match sums.iter_mut().find(|(k, _, _)| k == key) {
            Some(entry) => {
                entry.1 += ms;
                entry.2 += 1;
            }
            None => sums.push((key.to_string(), ms, 1)),
        }
    }
    sums.sort_by(|x, y| y.1.total_cmp(&x.1));
    if sums.len() > TOP_GROUPS + 1 {
        let rest = sums.split_off(TOP_GROUPS);
        let other = rest.iter().fold(0.0, |acc, r| acc + r.1);
        let steps = rest.iter().map(|r| r.2).sum();
        sums.push((format!("other ({} more)", rest.len()), other, steps));
    }
    sums
}

/// Time per op kind and per kernel of a profiled run.
#[cfg(feature = "plot")]
fn profile_chart(
    session: &Session,
    report: &Report,
    per_step: &[Duration],
    runs: usize,
) -> Result<String> {
    use super::plot::{svg, Bar, Panel};
    let steps = session.plan().steps();
    let ms: Vec<f64> = per_step
        .iter()
        .map(|d| d.as_secs_f64() * 1e3 / runs as f64)
        .collect();
    let total: f64 = ms.iter().sum::<f64>().max(1e-12);
    let panel = |title: &str, groups: Vec<(String, f64, usize)>| Panel {
        title: title.to_string(),
        x_label: "ms per run".into(),
        log_scale: false,
        bars: groups
            .into_iter()
            .map(|(label, value, count)| Bar {
                label,
                value,
                range: None,
                note: format!(
                    "{value:.3} ms · {:.1} % · {count} step{}",
                    100.0 * value / total,
                    if count == 1 { "" } else { "s" }
                ),
            })
            .collect(),
    };
    let by_op = top_groups(steps.iter().zip(&ms).map(|(s, &t)| (s.op, t)));
    let by_kernel = top_groups(steps.iter().zip(&ms).map(|(s, &t)| (s.kernel, t)));
    let title = format!(
        "{} · cpu tier {} · median {:.3} ms · {} runs",
        report.ours.model, report.ours.isa, report.ours.median_ms, runs
    );
    svg(
        &title,
        &[
            panel("time per op kind", by_op),
            panel("time per kernel", by_kernel),
        ],
    )
}

#[cfg(not(feature = "plot"))]
fn profile_chart(_: &Session, _: &Report, _: &[Duration], _: usize) -> Result<String> {
    bail!("--plot needs a build with the `plot` feature (SVG charts)")
}

fn print_profile(session: &Session, per_step: &[Duration], runs: usize) -> Result<()> {
    let total: f64 = per_step.iter().map(|d| d.as_secs_f64()).sum::<f64>() / runs as f64;
    out!()?;
    out!(
        "{:>4}  {:<15} {:<36} {:>9} {:>7} {:>8} {:>5}  kernel",
        "#",
        "op",
        "node",
        "ms",
        "share",
        "GFLOP/s",
        "parts"
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
            "{:>4}  {:<15} {:<36} {:>9.3} {:>6.1}% {:>8.2} {:>5}  {}",
            i,
            s.op,
            node,
            secs * 1e3,
            100.0 * secs / total.max(1e-12),
            gflops,
            parts_cell(session.step_parts(i)),
            s.kernel
        )?;
    }
    Ok(())
}
