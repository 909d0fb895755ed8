//! Latency statistics for benchmarks: robust summaries of repeated timings, and the one
//! measurement behind `ferrolite bench` and Python's `Model.bench`.

use crate::exec::Session;
use crate::Result;
use std::time::{Duration, Instant};

/// Summary of repeated latency measurements, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyStats {
    /// Median of the samples.
    pub median_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// Fastest sample.
    pub min_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
    /// Number of samples.
    pub runs: usize,
}

impl LatencyStats {
    /// Summarise samples (NaN figures when empty).
    pub fn from_samples(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        if n == 0 {
            return LatencyStats {
                median_ms: f64::NAN,
                p90_ms: f64::NAN,
                min_ms: f64::NAN,
                max_ms: f64::NAN,
                runs: 0,
            };
        }
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        let p90 = ms[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
        LatencyStats {
            median_ms: median,
            p90_ms: p90,
            min_ms: ms[0],
            max_ms: ms[n - 1],
            runs: n,
        }
    }
}

/// Deterministic input values in [-1, 1]: what every benchmark feeds a model, so figures are
/// comparable between the CLI, Python and runs.
pub fn bench_input(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 31) % 255) as f32 / 127.5 - 1.0)
        .collect()
}

/// One [`bench_input`] per input of `session`.
pub fn bench_inputs(session: &Session) -> Vec<Vec<f32>> {
    session
        .input_shapes()
        .iter()
        .map(|s| bench_input(s.iter().product()))
        .collect()
}

/// One model's latency and where it ran: the figures of `ferrolite bench --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// The model's name as its bundle records it.
    pub model: String,
    /// Median latency of one run.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Timed runs.
    pub runs: usize,
    /// Threads per run, the caller included.
    pub threads: usize,
    /// The CPUs they may run on.
    pub cpus: Vec<usize>,
    /// Whether each thread was pinned to a CPU of its own.
    pub pinned: bool,
    /// The kernel tier.
    pub isa: &'static str,
}

impl BenchReport {
    /// The report of `stats` measured on `session`.
    pub fn new(session: &Session, stats: &LatencyStats) -> Self {
        BenchReport {
            model: session.model().meta.model_name.clone(),
            median_ms: stats.median_ms,
            p90_ms: stats.p90_ms,
            min_ms: stats.min_ms,
            max_ms: stats.max_ms,
            runs: stats.runs,
            threads: session.threads(),
            cpus: session.placement().cpus.clone(),
            pinned: session.pinned(),
            isa: session.isa(),
        }
    }
}

/// Time `runs` runs of `session` on [`bench_inputs`] after `warmup` untimed ones.
pub fn bench(session: &mut Session, warmup: usize, runs: usize) -> Result<BenchReport> {
    if runs == 0 {
        return Err(crate::Error::Input(
            "a benchmark needs at least one timed run".into(),
        ));
    }
    let inputs = bench_inputs(session);
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let stats = time_runs(warmup, runs, || session.run(&refs))?;
    Ok(BenchReport::new(session, &stats))
}

/// Samples reserved up front by [`sample_buffer`]: enough for any usual run count, while a
/// huge one (`runs=10**14`) grows the buffer as the runs happen instead of asking for all
/// of its memory at once.
const PREALLOCATED_SAMPLES: usize = 1 << 16;

/// An empty buffer for the timings of `runs` runs.
pub fn sample_buffer(runs: usize) -> Vec<Duration> {
    Vec::with_capacity(runs.min(PREALLOCATED_SAMPLES))
}

/// Time `f` `runs` times after `warmup` untimed calls.
pub fn time_runs<E>(
    warmup: usize,
    runs: usize,
    mut f: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<LatencyStats, E> {
    for _ in 0..warmup {
        f()?;
    }
    let mut samples = sample_buffer(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(LatencyStats::from_samples(&samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_runs_times_each_run_after_the_warmup_and_stops_at_an_error() {
        let mut calls = 0;
        let st = time_runs::<()>(2, 5, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, st.runs), (7, 5));
        let mut calls = 0;
        let failed = time_runs(1, 5, || {
            calls += 1;
            if calls == 3 {
                Err("third")
            } else {
                Ok(())
            }
        });
        assert_eq!((failed, calls), (Err("third"), 3));
        // A huge run count reserves a bounded buffer, not all of its memory at once.
        assert_eq!(sample_buffer(usize::MAX).capacity(), PREALLOCATED_SAMPLES);
    }

    #[test]
    fn median_p90_min_max() {
        let s: Vec<Duration> = [5u64, 1, 4, 2, 3, 10, 6, 7, 9, 8]
            .iter()
            .map(|&v| Duration::from_millis(v))
            .collect();
        let st = LatencyStats::from_samples(&s);
        assert_eq!(st.median_ms, 5.5);
        assert_eq!(st.p90_ms, 9.0);
        assert_eq!(st.min_ms, 1.0);
        assert_eq!(st.max_ms, 10.0);
        assert_eq!(st.runs, 10);
        assert!(LatencyStats::from_samples(&[]).median_ms.is_nan());
    }
}
