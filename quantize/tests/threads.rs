//! Results never depend on the thread count: zoo networks covering every step kind
//! (pointwise / grouped / direct / depthwise convolutions, fused inverted-residual blocks,
//! channel shuffles, concats, pools, squeeze-excite, attention) in fp32, fp16 and int8,
//! run on 1 to 4 threads with every step split as finely as its units allow, give the same
//! bytes as one thread, on every kernel tier this CPU has; and one model shared by sessions
//! on several threads at once gives every one of them the bytes of a sequential run.

mod common;

use std::sync::Arc;

use common::{random, runnable_tiers, scratch};
use ferrolite_models::zoo;
use ferrolite_quantize::calibrate::{calibrate, CalibMethod};
use ferrolite_quantize::int8::{quantize_model, split_activations};
use ferrolite_quantize::{convert_onnx, ConvertOptions};
use ferrolite_runtime::kernels::{for_isa, Isa};
use ferrolite_runtime::{bundle, Model, Precision, Session, SessionOptions};

/// Outputs of `model` on `input` with `threads` threads on tier `isa`; `min_part_ns = 0`
/// splits every step with more than one unit.
fn run(model: &Arc<Model>, isa: Isa, threads: usize, input: &[f32]) -> (Vec<u32>, usize) {
    let opts = SessionOptions {
        threads: Some(threads),
        pin: false,
        kernels: Some(for_isa(isa)),
        min_part_ns: 0,
        ..SessionOptions::default()
    };
    let mut s = Session::with_options(model.clone(), opts).expect("session");
    assert_eq!(s.threads(), threads);
    let split = (0..s.plan().steps().len())
        .filter(|&i| s.step_parts(i) > 1)
        .count();
    s.run(&[input]).expect("run");
    let bits = (0..s.output_shapes().len())
        .flat_map(|i| {
            s.output(i)
                .expect("output")
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        })
        .collect();
    (bits, split)
}

fn reload(m: &Model) -> Model {
    let bytes = bundle::to_bytes(&m.meta, &m.graph, m.weights.bytes()).expect("bundle");
    bundle::from_bytes(&bytes).expect("reload")
}

/// `spec` converted at `precision` (int8: calibrated on two seeded inputs).
fn model(spec: &str, precision: Precision) -> (Arc<Model>, Vec<f32>) {
    let z = zoo::find(spec).expect("zoo model");
    let path = scratch("threads").join(format!("{}.onnx", spec.replace(['?', '=', '&'], "_")));
    std::fs::write(&path, z.onnx(3).onnx.as_ref().expect("onnx")).expect("write");
    let shape = z.input_shape();
    let n: usize = shape.iter().product();
    let opts = ConvertOptions {
        precision: if precision == Precision::Int8 {
            Precision::Fp32
        } else {
            precision
        },
        ..Default::default()
    };
    let fp = convert_onnx(&path, &opts).expect("convert");
    std::fs::remove_file(&path).ok();
    let m = if precision == Precision::Int8 {
        let split = split_activations(&fp);
        let inputs = vec![random(n, 1), random(n, 2)];
        let calib = calibrate(&split, &inputs, CalibMethod::MinMax, || Ok(())).expect("calibrate");
        quantize_model(&split, &calib).expect("quantize").model
    } else {
        fp
    };
    (Arc::new(reload(&m)), random(n, 5))
}

fn check(spec: &str, precision: Precision) {
    let (m, x) = model(spec, precision);
    for isa in runnable_tiers() {
        let (one, _) = run(&m, isa, 1, &x);
        for threads in 2..=4 {
            let (bits, split) = run(&m, isa, threads, &x);
            assert!(split > 0, "{spec}: no step was split on {threads} threads");
            assert!(
                bits == one,
                "{spec} {precision:?} on {isa:?}: {threads} threads differ from 1 thread"
            );
        }
    }
}

#[test]
fn mobilenet_v2_fp32_fp16_int8() {
    // Fused inverted-residual blocks at 64x64 input, pointwise and depthwise steps, the FC.
    for p in [Precision::Fp32, Precision::Fp16, Precision::Int8] {
        check("mobilenet_v2?resolution=96", p);
    }
}

#[test]
fn mobilenet_v3_small_fp32_int8() {
    // Hard-swish, squeeze-excite gating (per-channel binary ops), 5x5 depthwise.
    for p in [Precision::Fp32, Precision::Int8] {
        check("mobilenet_v3_small?resolution=64", p);
    }
}

#[test]
fn shufflenets_fp32_int8() {
    // Channel split + shuffle (interleaves, byte copies), grouped pointwise (V1).
    for p in [Precision::Fp32, Precision::Int8] {
        check("shufflenet_v2_x0_5?resolution=64", p);
        check("shufflenet_v1_g3?resolution=64", p);
    }
}

#[test]
fn dense_and_pooling_networks_fp32_int8() {
    // Direct / im2col dense convolutions, max and average pools, concats.
    for p in [Precision::Fp32, Precision::Int8] {
        check("resnet18?resolution=64", p);
        check("squeezenet1_1?resolution=64", p);
        check("densenet121?resolution=64", p);
    }
}

#[test]
fn vision_transformer_fp32() {
    // MatMul, LayerNorm, Softmax, GELU.
    check("vit_tiny_16", Precision::Fp32);
}

/// The calling thread is pinned to the first CPU for each run only: its own affinity mask is
/// the same after the run as before.
#[cfg(target_os = "linux")]
#[test]
fn the_callers_affinity_is_restored_after_a_run() {
    use ferrolite_runtime::threads::topology::allowed_cpus;
    let (m, x) = model("mobilenet_v3_small?resolution=64", Precision::Fp32);
    std::thread::spawn(move || {
        let before = allowed_cpus();
        let mut s = Session::with_options(m, SessionOptions::default()).expect("session");
        s.run(&[&x]).expect("run");
        assert_eq!(allowed_cpus(), before);
    })
    .join()
    .expect("thread");
}

/// Output bits of one run of `session` on `input`.
fn bits_of(session: &mut Session, input: &[f32]) -> Vec<u32> {
    session.run(&[input]).expect("run");
    (0..session.output_shapes().len())
        .flat_map(|i| {
            session
                .output(i)
                .expect("output")
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn one_model_serves_many_sessions_on_many_threads_at_once() {
    // One `Arc<Model>` (one mapped set of weights) shared by four OS threads, each with a
    // session of its own (1- and 2-thread sessions mixed), 500 runs each over four inputs:
    // every output must have the bits of a sequential run.
    const RUNS: usize = 500;
    for precision in [Precision::Fp32, Precision::Int8] {
        let (m, x) = model("mobilenet_v3_small?resolution=64", precision);
        let inputs: Vec<Vec<f32>> = (0..4).map(|i| random(x.len(), 10 + i)).collect();
        let sequential = |threads: usize| {
            let opts = SessionOptions {
                threads: Some(threads),
                pin: false,
                ..SessionOptions::default()
            };
            Session::with_options(m.clone(), opts).expect("session")
        };
        let mut reference = sequential(1);
        let want: Vec<Vec<u32>> = inputs.iter().map(|x| bits_of(&mut reference, x)).collect();
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (inputs, want) = (&inputs, &want);
                let mut session = sequential(1 + worker % 2);
                scope.spawn(move || {
                    for run in 0..RUNS {
                        let k = (run + worker) % inputs.len();
                        assert!(
                            bits_of(&mut session, &inputs[k]) == want[k],
                            "{precision:?}: worker {worker}, run {run}: outputs differ from a \
                             sequential run"
                        );
                    }
                });
            }
        });
    }
}
