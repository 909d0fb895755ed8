//! Ferrolite vs tract vs ONNX Runtime on the same ONNX files, batch 1, each on the same
//! number of threads (one unless `--threads N`):
//! `cargo run --release -p ferrolite-bench --bin compare -- [--runs N] [--rounds R] [--threads N] [--cpu N|any] MODEL.onnx...`
//!
//! Rounds alternate between the three runtimes so drift in machine speed hits all alike;
//! each time is the median over rounds of the per-round median, and each ratio the median
//! over rounds of the per-round ratio (so a noisy round moves both sides of its ratio).
//! `--rounds R` (default 7) sets the number of rounds, `--runs N` the timed runs in all.
//! The process (and so the ONNX Runtime child) is pinned to one CPU per thread, the last
//! ones it may run on unless `--cpu N` names the first (`--cpu any` leaves it free), which
//! takes thread migration out of the noise; Ferrolite pins each of its threads to one of
//! those CPUs, tract's rayon pool (tract-linalg's `multithread-mm`) and ONNX Runtime's
//! intra-op threads (`ort_bench.py --threads N`) run on them unpinned. tract runs in process;
//! ONNX Runtime runs through `bench/peers/ort_bench.py` (needs `pip install onnxruntime`),
//! and its column reads "n/a" when that is unavailable. Prints a markdown table.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrolite_bench::{
    allowed_cpus, median, ort_round, parse_threads, pin, time, FerroliteRunner, TractRunner,
};
use ferrolite_runtime::threads::topology::format_cpu_list;

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn main() -> Result<()> {
    let mut runs = 30usize;
    let mut rounds = 7usize;
    let mut cpu = Some(None);
    let mut threads = 1usize;
    let mut models = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--cpu" {
            cpu = match args.next().as_deref() {
                Some("any") => None,
                Some(v) => Some(Some(v.parse().with_context(|| {
                    format!("--cpu takes a CPU number or 'any', not {v:?}")
                })?)),
                None => bail!("--cpu takes a CPU number or 'any'"),
            };
        } else if a == "--threads" {
            threads = parse_threads(args.next().as_deref())?;
        } else if a == "--runs" {
            runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs);
        } else if a == "--rounds" {
            rounds = args
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(rounds)
                .max(1);
        } else {
            models.push(a);
        }
    }
    if models.is_empty() {
        bail!("usage: compare [--runs N] [--rounds R] [--threads N] [--cpu N|any] MODEL.onnx...");
    }
    let cpus = match cpu {
        Some(c) => {
            let cpus = pin(c, threads)?;
            eprintln!(
                "pinned to CPU{} {}",
                if cpus.len() == 1 { "" } else { "s" },
                format_cpu_list(&cpus)
            );
            cpus
        }
        None => allowed_cpus()?,
    };
    let per_round = runs.div_ceil(rounds).max(1);
    println!("| model | ferrolite ms | tract ms | ONNX Runtime ms | ferrolite / tract | ferrolite / ORT |");
    println!("|---|---|---|---|---|---|");
    for m in &models {
        let shape = [1, 3, 224, 224];
        let mut ours = FerroliteRunner::from_onnx(m.as_ref(), &shape, threads)?;
        let mut tract = TractRunner::from_onnx(m.as_ref(), &shape, threads, &cpus)?;
        eprintln!(
            "{m}: ferrolite {}, tract {threads} thread{}, ONNX Runtime {threads} intra-op thread{}",
            ours.placement(),
            plural(threads),
            plural(threads)
        );
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let (mut vs_tract, mut vs_ort) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let ta = time(2, per_round, || ours.run())?.median_ms;
            let tb = time(2, per_round, || tract.run())?.median_ms;
            a.push(ta);
            b.push(tb);
            vs_tract.push(ta / tb);
            if let Some(v) = ort_round(m, &shape, per_round, threads)? {
                c.push(v);
                vs_ort.push(ta / v);
            }
        }
        let (ma, mb) = (median(a), median(b));
        let mc = (!c.is_empty()).then(|| median(c));
        let r_ort = (!vs_ort.is_empty()).then(|| median(vs_ort));
        let name = Path::new(m)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy();
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        println!(
            "| {name} ({}) | {ma:.2} | {mb:.2} | {} | {:.2} | {} |",
            ours.isa(),
            fmt(mc),
            median(vs_tract),
            fmt(r_ort)
        );
    }
    Ok(())
}
