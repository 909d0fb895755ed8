//! Ferrolite int8 vs ONNX Runtime int8 (its own QDQ model of the same network) vs Ferrolite
//! fp32, batch 1, each on the same number of threads (one unless `--threads N`):
//! `cargo run --release -p ferrolite-bench --bin compare-int8 -- [--runs N] [--rounds R]
//! [--threads N] [--cpu N|any] FP32.onnx,OURS_INT8.flb,ORT_QDQ.onnx ...`
//!
//! `bench/int8.sh` makes both int8 models from the shared models and calibration images and
//! runs this. Rounds alternate between the three so machine drift hits all alike; times are
//! medians over rounds of per-round medians, ratios medians of per-round ratios. Pinned to
//! one CPU per thread as in `compare`. Prints a markdown table.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrolite_bench::{median, ort_round, parse_threads, pin, time, FerroliteRunner};
use ferrolite_runtime::threads::topology::format_cpu_list;

fn main() -> Result<()> {
    let mut runs = 30usize;
    let mut rounds = 7usize;
    let mut cpu = Some(None);
    let mut threads = 1usize;
    let mut triples = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cpu" => {
                cpu = match args.next().as_deref() {
                    Some("any") => None,
                    Some(v) => Some(Some(v.parse().with_context(|| {
                        format!("--cpu takes a CPU number or 'any', not {v:?}")
                    })?)),
                    None => bail!("--cpu takes a CPU number or 'any'"),
                }
            }
            "--threads" => threads = parse_threads(args.next().as_deref())?,
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(rounds)
                    .max(1)
            }
            _ => {
                let parts: Vec<&str> = a.split(',').collect();
                let [fp32, ours, ort] = parts.as_slice() else {
                    bail!("expected FP32.onnx,OURS_INT8.flb,ORT_QDQ.onnx, got {a:?}");
                };
                triples.push((fp32.to_string(), ours.to_string(), ort.to_string()));
            }
        }
    }
    if triples.is_empty() {
        bail!("usage: compare-int8 [--runs N] [--rounds R] [--threads N] [--cpu N|any] FP32.onnx,OURS.flb,ORT_QDQ.onnx...");
    }
    if let Some(c) = cpu {
        let cpus = pin(c, threads)?;
        eprintln!(
            "pinned to CPU{} {}",
            if cpus.len() == 1 { "" } else { "s" },
            format_cpu_list(&cpus)
        );
    }
    let per_round = runs.div_ceil(rounds).max(1);
    println!("| model | ferrolite fp32 ms | ferrolite int8 ms | ONNX Runtime int8 ms | int8 / ORT int8 | int8 / fp32 |");
    println!("|---|---|---|---|---|---|");
    for (fp32, ours, ort) in &triples {
        let shape = [1, 3, 224, 224];
        let mut f = FerroliteRunner::from_onnx(fp32.as_ref(), &shape, threads)?;
        let mut q = FerroliteRunner::from_bundle(ours.as_ref(), threads)?;
        eprintln!(
            "{fp32}: ferrolite {}, ONNX Runtime {threads} intra-op thread(s)",
            q.placement()
        );
        let (mut tf, mut tq, mut to) = (Vec::new(), Vec::new(), Vec::new());
        let (mut vs_ort, mut vs_fp32) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let a = time(2, per_round, || f.run())?.median_ms;
            let b = time(2, per_round, || q.run())?.median_ms;
            tf.push(a);
            tq.push(b);
            vs_fp32.push(b / a);
            if let Some(c) = ort_round(ort, &shape, per_round, threads)? {
                to.push(c);
                vs_ort.push(b / c);
            }
        }
        let name = Path::new(fp32)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy();
        let opt = |v: Vec<f64>| (!v.is_empty()).then(|| median(v));
        let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        println!(
            "| {name} ({}) | {:.2} | {:.2} | {} | {} | {:.2} |",
            q.isa(),
            median(tf),
            median(tq),
            fmt(opt(to)),
            fmt(opt(vs_ort)),
            median(vs_fp32)
        );
    }
    Ok(())
}
