//! Shared helpers for the parity tests: run a model with tract (the reference) and with
//! Ferrolite (converted, written as a bundle, re-read and executed), and compare.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferrolite_quantize::{convert_onnx, ConvertOptions};
use ferrolite_runtime::{bundle, exec::Session, Model};
use tract_onnx::prelude::*;

/// Deterministic pseudo-random values in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A scratch directory unique to this test process and name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolite-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run the ONNX model with tract on the given inputs.
pub fn tract_run(path: &Path, inputs: &[(Vec<usize>, Vec<f32>)]) -> Vec<Vec<f32>> {
    let mut model = tract_onnx::onnx()
        .model_for_path(path)
        .expect("tract parses");
    for (i, (shape, _)) in inputs.iter().enumerate() {
        model = model
            .with_input_fact(i, f32::fact(shape).into())
            .expect("input fact");
    }
    let plan = model
        .into_optimized()
        .expect("tract optimizes")
        .into_runnable()
        .expect("tract plan");
    let tv: TVec<TValue> = inputs
        .iter()
        .map(|(s, d)| Tensor::from_shape(s, d).unwrap().into())
        .collect();
    plan.run(tv)
        .expect("tract runs")
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Convert with Ferrolite, round-trip through the bundle format, and load.
pub fn ferrolite_model(path: &Path, input_shape: Option<Vec<usize>>) -> Model {
    let opts = ConvertOptions {
        input_shape,
        ..Default::default()
    };
    let model = convert_onnx(path, &opts).unwrap_or_else(|e| panic!("convert: {e:#}"));
    let bytes = bundle::to_bytes(&model.meta, &model.graph, model.weights.bytes()).expect("bundle");
    bundle::from_bytes(&bytes).expect("bundle reload")
}

/// Run a Ferrolite model with the kernels chosen for this CPU.
pub fn ferrolite_run(model: Model, inputs: &[(Vec<usize>, Vec<f32>)]) -> Vec<Vec<f32>> {
    run_session(Session::new(Arc::new(model)).expect("session"), inputs)
}

/// Run a Ferrolite model with the kernels of one tier.
pub fn ferrolite_run_tier(
    model: Arc<Model>,
    isa: ferrolite_runtime::kernels::Isa,
    inputs: &[(Vec<usize>, Vec<f32>)],
) -> Vec<Vec<f32>> {
    let kernels = ferrolite_runtime::kernels::for_isa(isa);
    run_session(
        Session::with_kernels(model, kernels).expect("session"),
        inputs,
    )
}

/// The kernel tiers this CPU can run.
pub fn runnable_tiers() -> Vec<ferrolite_runtime::kernels::Isa> {
    use ferrolite_runtime::kernels::{CpuFeatures, Isa};
    let f = CpuFeatures::detect();
    [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|&i| f.supports(i))
        .collect()
}

fn run_session(mut session: Session, inputs: &[(Vec<usize>, Vec<f32>)]) -> Vec<Vec<f32>> {
    let refs: Vec<&[f32]> = inputs.iter().map(|(_, d)| d.as_slice()).collect();
    session.run(&refs).expect("run");
    (0..session.output_shapes().len())
        .map(|i| session.output(i).expect("output").to_vec())
        .collect()
}

/// max |a - b| / max |b|.
pub fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "output lengths differ");
    let max_ref = reference
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-30);
    let max_diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if ours.iter().any(|v| v.is_nan()) != reference.iter().any(|v| v.is_nan()) {
        return f32::INFINITY;
    }
    max_diff / max_ref
}

/// Compare every output of Ferrolite against tract within `tol` relative error.
pub fn check_parity(path: &Path, inputs: &[(Vec<usize>, Vec<f32>)], tol: f32) -> Model {
    let reference = tract_run(path, inputs);
    let model = ferrolite_model(path, None);
    let summary = model.graph.clone();
    let ours = ferrolite_run(model, inputs);
    assert_eq!(ours.len(), reference.len(), "number of outputs");
    for (i, (o, r)) in ours.iter().zip(&reference).enumerate() {
        let err = relative_error(o, r);
        assert!(
            err <= tol,
            "{}: output {i} relative error {err:e} > {tol:e}",
            path.display()
        );
    }
    Model {
        meta: Default::default(),
        graph: summary,
        weights: ferrolite_runtime::Weights::Owned(Default::default()),
    }
}

/// A real model from `../shared/models` beside the repo, or `None` after saying why the
/// caller skips: the shared models exist in the project workplace only, not in git.
pub fn shared_model(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP {name}: {} not found (the shared models sit beside the repo in the project workplace only)",
            p.display()
        );
        None
    }
}
